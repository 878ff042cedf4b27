"""Wan2.1 I2V's CLIP image encoder (open-clip XLM-RoBERTa ViT-H/14 vision tower) from either published layout.

Wan I2V feeds the DiT ``clip_fea`` = the tokens after block 31 of the 32 (``wan/modules/clip.py``:
``CLIPModel.visual`` → ``VisionTransformer.forward(use_31_block=True)`` = ``transformer[:-1]``, after
``pre_norm``) → ``[B, 257, 1280]``. In transformers' ``CLIPVisionModel`` that is ``hidden_states[-2]``
(``hidden_states[0]`` is the input of block 1, after ``pre_layrnorm``); diffusers' ``WanImageToVideoPipeline
.encode_image`` takes the same ``hidden_states[-2]``.

Layouts:

- diffusers: ``image_encoder/`` (``CLIPVisionModel`` or ``...WithProjection`` config + safetensors; the
  projection is not used) and optionally ``image_processor/`` (its ``image_mean`` / ``image_std`` are read);
- Wan's original ``models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth``: the whole CLIP; the ``visual.*``
  tensors map to ``CLIPVisionModel`` by :func:`wan_clip_key_table` (fused ``to_qkv`` split into q/k/v in that
  order, as ``SelfAttention.forward`` views it ``[.., 3, heads, head_dim]``). The text tower (``textual.*``),
  ``log_scale`` and the unused image head ``visual.head`` are skipped and reported. The config for it matches
  Wan's ViT: exact-erf GELU (``activation='gelu'``, not open-clip's quick_gelu), LayerNorm eps 1e-5, patch
  embedding without bias (``pre_norm=True``), a class token, learned positions; ``num_heads`` is not in the
  tensors (16 for ViT-H/14, head dim 80) and is taken as ``hidden // 80`` unless given.

Preprocessing follows ``CLIPModel.visual``: images in [-1, 1] resized to the model's square size with bicubic
``F.interpolate`` (align_corners False, no crop), mapped to [0, 1], normalised with open-clip's (OpenAI) mean / std.
diffusers instead centre-crops with its ``CLIPImageProcessor``; this module keeps Wan's stretch.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from avatarv.errors import CheckpointError
from avatarv.models.vae.wan_vae_pth import load_exactly, read_wan_pth, rename_with_table

CLIP_PTH_NAME = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
SKIPPED_PREFIXES = ("textual.", "log_scale", "visual.head")  # not part of the image features


def wan_clip_key_table(num_layers: int) -> dict[str, str]:
    """Every ``visual.*`` key of Wan's ``XLMRobertaCLIP`` → its ``CLIPVisionModel`` name, except the fused
    ``to_qkv`` (see :func:`split_fused_qkv`), which maps to ``<layer>.self_attn.qkv_proj.*`` here."""
    table = {"visual.patch_embedding.weight": "embeddings.patch_embedding.weight",
             "visual.cls_embedding": "embeddings.class_embedding",  # [1, 1, D] → [D]
             "visual.pos_embedding": "embeddings.position_embedding.weight",  # [1, N + 1, D] → [N + 1, D]
             "visual.pre_norm.weight": "pre_layrnorm.weight", "visual.pre_norm.bias": "pre_layrnorm.bias",
             "visual.post_norm.weight": "post_layernorm.weight", "visual.post_norm.bias": "post_layernorm.bias"}
    for i in range(num_layers):
        wan, ours = f"visual.transformer.{i}", f"encoder.layers.{i}"
        for p in ("weight", "bias"):
            table[f"{wan}.norm1.{p}"] = f"{ours}.layer_norm1.{p}"
            table[f"{wan}.attn.to_qkv.{p}"] = f"{ours}.self_attn.qkv_proj.{p}"
            table[f"{wan}.attn.proj.{p}"] = f"{ours}.self_attn.out_proj.{p}"
            table[f"{wan}.norm2.{p}"] = f"{ours}.layer_norm2.{p}"
            table[f"{wan}.mlp.0.{p}"] = f"{ours}.mlp.fc1.{p}"
            table[f"{wan}.mlp.2.{p}"] = f"{ours}.mlp.fc2.{p}"
    return table


def split_fused_qkv(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``*.qkv_proj.{weight,bias}`` ``[3D, ...]`` → ``q_proj`` / ``k_proj`` / ``v_proj`` ``[D, ...]`` each; the
    embeddings reshaped to transformers' shapes."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if ".qkv_proj." in key:
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0), strict=True):
                out[key.replace("qkv_proj", name)] = part.contiguous()
        elif key == "embeddings.class_embedding":
            out[key] = value.reshape(-1)
        elif key == "embeddings.position_embedding.weight":
            out[key] = value.reshape(value.shape[-2], value.shape[-1])
        else:
            out[key] = value
    return out


def clip_config_from_wan(state: dict[str, torch.Tensor], num_heads: int | None = None):
    """The ``CLIPVisionConfig`` of Wan's vision tower, from the tensor shapes (ViT-H/14: 1280 wide, 32 blocks,
    5120 MLP, patch 14, 257 positions → image 224)."""
    from transformers import CLIPVisionConfig

    hidden, _, patch, _ = state["visual.patch_embedding.weight"].shape  # [D, 3, p, p]
    layers = len({k.split(".")[2] for k in state if k.startswith("visual.transformer.")})
    positions = state["visual.pos_embedding"].shape[-2]  # 1 + (image / patch)²
    grid = round((positions - 1) ** 0.5)
    mlp = state["visual.transformer.0.mlp.0.weight"].shape[0]  # [4D, D]
    return CLIPVisionConfig(hidden_size=int(hidden), intermediate_size=int(mlp), num_hidden_layers=layers,
                            num_attention_heads=num_heads or max(1, int(hidden) // 80), image_size=grid * int(patch),
                            patch_size=int(patch), hidden_act="gelu", layer_norm_eps=1e-5)


class ClipVisionEncoder:
    """``encode(images)`` → the block-(N−1) tokens Wan I2V gives its DiT."""

    def __init__(self, model, mean: tuple[float, ...] = OPENAI_MEAN, std: tuple[float, ...] = OPENAI_STD,
                 skipped: list[str] | None = None):
        self.model = model.eval().requires_grad_(False)
        self.mean, self.std = mean, std
        self.skipped = skipped or []  # checkpoint keys not loaded (text tower, ...)

    @property
    def image_size(self) -> int:
        return int(self.model.config.image_size)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in [-1, 1] → ``[B, 3, S, S]`` normalised (Wan ``CLIPModel.visual``)."""
        size = (self.image_size, self.image_size)
        x = F.interpolate(images.float(), size=size, mode="bicubic", align_corners=False)
        x = x.mul(0.5).add(0.5)  # [0, 1] (not clamped, as Wan)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in [-1, 1] → ``[B, 1 + (S/p)², D]`` (Wan2.1: ``[B, 257, 1280]``). Videos
        ``[B, 3, T, H, W]`` give their B·T frames in batch-major order, as ``CLIPModel.visual`` (Wan passes the
        conditioning frame as ``cond_image[:, :, -1:]``)."""
        if images.ndim == 5:
            images = images.transpose(1, 2).flatten(0, 1)  # [B, 3, T, H, W] → [B·T, 3, H, W]
        param = next(self.model.parameters())
        pixels = self.preprocess(images.to(param.device)).to(param.dtype)
        out = self.model(pixel_values=pixels, output_hidden_states=True)
        return out.hidden_states[-2]  # after block N−1 of N (hidden_states[0] = embeddings after pre_layrnorm)


def _processor_stats(folder: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    cfg = folder / "preprocessor_config.json"
    if not cfg.is_file():
        return OPENAI_MEAN, OPENAI_STD
    data = json.loads(cfg.read_text())
    return tuple(data.get("image_mean", OPENAI_MEAN)), tuple(data.get("image_std", OPENAI_STD))


def _from_transformers_folder(folder: Path, dtype: torch.dtype) -> ClipVisionEncoder:
    from transformers import CLIPVisionModel

    model, info = CLIPVisionModel.from_pretrained(str(folder), local_files_only=True, dtype=dtype,
                                                  output_loading_info=True)
    if info.get("missing_keys"):
        raise CheckpointError(f"CLIP vision checkpoint misses {len(info['missing_keys'])} keys: "
                              f"{', '.join(sorted(info['missing_keys'])[:8])}", folder)
    mean, std = _processor_stats(folder.parent / "image_processor")
    return ClipVisionEncoder(model, mean, std, skipped=sorted(info.get("unexpected_keys", [])))


def _from_wan_pth(file: Path, dtype: torch.dtype, num_heads: int | None) -> ClipVisionEncoder:
    from transformers import CLIPVisionModel

    state = read_wan_pth(file)
    if "visual.patch_embedding.weight" not in state or "visual.pos_embedding" not in state:
        raise CheckpointError("not a Wan CLIP checkpoint (no visual.patch_embedding / visual.pos_embedding)", file)
    config = clip_config_from_wan(state, num_heads)
    table = wan_clip_key_table(config.num_hidden_layers)
    renamed, skipped = rename_with_table(state, table, file, "Wan CLIP", skip=SKIPPED_PREFIXES)
    model = CLIPVisionModel(config)
    split = split_fused_qkv(renamed)
    names = {k: v for k, v in table.items() if "qkv_proj" not in v}  # for the errors: q/k/v as parts of to_qkv
    names.update({f"{k} ({n[0]} rows)": v.replace("qkv_proj", n) for k, v in table.items() if "qkv_proj" in v
                  for n in ("q_proj", "k_proj", "v_proj")})
    load_exactly(model, split, names, file, "Wan CLIP")
    return ClipVisionEncoder(model.to(dtype), skipped=skipped)


def load_clip_vision(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                     num_heads: int | None = None) -> ClipVisionEncoder:
    """Wan I2V's CLIP image encoder from a local path, never downloading. ``path``: an ``image_encoder/`` folder;
    a diffusers pipeline folder holding one; Wan's ``.pth``; or a Wan checkpoint folder holding it.
    ``num_heads``: for the ``.pth`` only (default ``hidden // 80``, 16 for ViT-H/14)."""
    path = Path(path)
    if path.is_dir() and (path / "image_encoder" / "config.json").is_file():
        path = path / "image_encoder"
    if path.is_dir() and (path / CLIP_PTH_NAME).is_file():
        path = path / CLIP_PTH_NAME
    if path.is_file():
        encoder = _from_wan_pth(path, dtype, num_heads)
    elif (path / "config.json").is_file():
        encoder = _from_transformers_folder(path, dtype)
    elif path.exists():
        raise CheckpointError(f"not a CLIP image encoder (no config.json, image_encoder/ or {CLIP_PTH_NAME})", path)
    else:
        raise CheckpointError("no such image-encoder file or folder", path)
    encoder.model.to(device)
    return encoder

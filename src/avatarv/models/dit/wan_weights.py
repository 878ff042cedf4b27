"""Load Wan2.1 DiT checkpoints (original or diffusers key layout) into the VideoRef DiT.

Explicit key tables, applied to the part of the key after any ``model.diffusion_model.`` prefix.
The original layout is Wan2.1's ``WanModel`` (``blocks.N.self_attn.q``, ``norm3`` = the affine norm before
cross-attention, ``ffn.0``/``ffn.2``, ``head.head``); the diffusers layout is ``WanTransformer3DModel``
(``attn1.to_q``, ``norm2`` = that norm, ``ffn.net.0.proj``, ``scale_shift_table``, ``proj_out``). Diffusers'
own converter (``convert_wan_transformer_to_diffusers``) swaps ``norm2``/``norm3`` the same way.
Everything avatarv adds (reference embedding, audio cross-attention, motion stream, guidance embedding)
is absent from Wan checkpoints and keeps its identity initialisation.

Wan2.1 I2V's CLIP image branch (``img_emb`` + per block ``cross_attn.k_img / v_img / norm_k_img``; diffusers
``condition_embedder.image_embedder`` + ``attn2.add_k_proj / add_v_proj / norm_added_k``) loads into a DiT
built with ``image_dim`` > 0 (``models/dit/image_embedding.py``, ``cross_attention.py``), strictly like the rest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from avatarv.config import DiTConfig
from avatarv.errors import CheckpointError

# (regex on the Wan key, replacement giving our key). First match wins; unmatched keys are unexpected.
ORIGINAL_TO_OURS: list[tuple[str, str]] = [
    (r"^patch_embedding\.(weight|bias)$", r"patch_embedding.\1"),
    (r"^text_embedding\.(0|2)\.(weight|bias)$", r"text_embedding.\1.\2"),
    (r"^time_embedding\.(0|2)\.(weight|bias)$", r"time_embedding.\1.\2"),
    (r"^time_projection\.1\.(weight|bias)$", r"time_projection.1.\1"),
    (r"^blocks\.(\d+)\.self_attn\.(q|k|v|o)\.(weight|bias)$", r"blocks.\1.self_attn.\2.\3"),
    (r"^blocks\.(\d+)\.self_attn\.(norm_q|norm_k)\.weight$", r"blocks.\1.self_attn.\2.weight"),
    (r"^blocks\.(\d+)\.cross_attn\.(q|k|v|o)\.(weight|bias)$", r"blocks.\1.cross_attn.\2.\3"),
    (r"^blocks\.(\d+)\.cross_attn\.(norm_q|norm_k)\.weight$", r"blocks.\1.cross_attn.\2.weight"),
    (r"^blocks\.(\d+)\.norm3\.(weight|bias)$", r"blocks.\1.cross_attn_norm.\2"),
    (r"^blocks\.(\d+)\.ffn\.0\.(weight|bias)$", r"blocks.\1.ffn.fc1.\2"),
    (r"^blocks\.(\d+)\.ffn\.2\.(weight|bias)$", r"blocks.\1.ffn.fc2.\2"),
    (r"^blocks\.(\d+)\.modulation$", r"blocks.\1.modulation"),
    (r"^head\.modulation$", r"head.modulation"),
    (r"^head\.head\.(weight|bias)$", r"head.proj.\1"),
    # I2V image branch (Wan2.1 model.py: MLPProj ``img_emb.proj``, WanI2VCrossAttention)
    (r"^img_emb\.proj\.(0|1|3|4)\.(weight|bias)$", r"image_embedding.proj.\1.\2"),
    (r"^blocks\.(\d+)\.cross_attn\.(k_img|v_img)\.(weight|bias)$", r"blocks.\1.cross_attn.\2.\3"),
    (r"^blocks\.(\d+)\.cross_attn\.norm_k_img\.weight$", r"blocks.\1.cross_attn.norm_k_img.weight"),
]

DIFFUSERS_TO_OURS: list[tuple[str, str]] = [
    (r"^patch_embedding\.(weight|bias)$", r"patch_embedding.\1"),
    (r"^condition_embedder\.text_embedder\.linear_1\.(weight|bias)$", r"text_embedding.0.\1"),
    (r"^condition_embedder\.text_embedder\.linear_2\.(weight|bias)$", r"text_embedding.2.\1"),
    (r"^condition_embedder\.time_embedder\.linear_1\.(weight|bias)$", r"time_embedding.0.\1"),
    (r"^condition_embedder\.time_embedder\.linear_2\.(weight|bias)$", r"time_embedding.2.\1"),
    (r"^condition_embedder\.time_proj\.(weight|bias)$", r"time_projection.1.\1"),
    (r"^blocks\.(\d+)\.attn1\.to_(q|k|v)\.(weight|bias)$", r"blocks.\1.self_attn.\2.\3"),
    (r"^blocks\.(\d+)\.attn1\.to_out\.0\.(weight|bias)$", r"blocks.\1.self_attn.o.\2"),
    (r"^blocks\.(\d+)\.attn1\.(norm_q|norm_k)\.weight$", r"blocks.\1.self_attn.\2.weight"),
    (r"^blocks\.(\d+)\.attn2\.to_(q|k|v)\.(weight|bias)$", r"blocks.\1.cross_attn.\2.\3"),
    (r"^blocks\.(\d+)\.attn2\.to_out\.0\.(weight|bias)$", r"blocks.\1.cross_attn.o.\2"),
    (r"^blocks\.(\d+)\.attn2\.(norm_q|norm_k)\.weight$", r"blocks.\1.cross_attn.\2.weight"),
    (r"^blocks\.(\d+)\.norm2\.(weight|bias)$", r"blocks.\1.cross_attn_norm.\2"),
    (r"^blocks\.(\d+)\.ffn\.net\.0\.proj\.(weight|bias)$", r"blocks.\1.ffn.fc1.\2"),
    (r"^blocks\.(\d+)\.ffn\.net\.2\.(weight|bias)$", r"blocks.\1.ffn.fc2.\2"),
    (r"^blocks\.(\d+)\.scale_shift_table$", r"blocks.\1.modulation"),
    (r"^scale_shift_table$", r"head.modulation"),
    (r"^proj_out\.(weight|bias)$", r"head.proj.\1"),
    # I2V image branch (diffusers transformer_wan.py: WanImageEmbedding, WanAttention's added K/V)
    (r"^condition_embedder\.image_embedder\.norm1\.(weight|bias)$", r"image_embedding.proj.0.\1"),
    (r"^condition_embedder\.image_embedder\.ff\.net\.0\.proj\.(weight|bias)$", r"image_embedding.proj.1.\1"),
    (r"^condition_embedder\.image_embedder\.ff\.net\.2\.(weight|bias)$", r"image_embedding.proj.3.\1"),
    (r"^condition_embedder\.image_embedder\.norm2\.(weight|bias)$", r"image_embedding.proj.4.\1"),
    (r"^blocks\.(\d+)\.attn2\.add_k_proj\.(weight|bias)$", r"blocks.\1.cross_attn.k_img.\2"),
    (r"^blocks\.(\d+)\.attn2\.add_v_proj\.(weight|bias)$", r"blocks.\1.cross_attn.v_img.\2"),
    (r"^blocks\.(\d+)\.attn2\.norm_added_k\.weight$", r"blocks.\1.cross_attn.norm_k_img.weight"),
]

# Wan2.1 I2V's CLIP image branch. Loaded when the DiT has one (image_dim > 0); into a DiT without one it is
# skipped only when the caller allows it (``skip_image_branch=True``), and always reported.
IMAGE_BRANCH = [
    r"^img_emb\.",
    r"\.cross_attn\.(k_img|v_img|norm_k_img)\.",
    r"^condition_embedder\.image_embedder\.",
    r"\.attn2\.(add_k_proj|add_v_proj|norm_added_k)\.",
]

# Our parameters that Wan does not have (identity-initialised; missing from Wan checkpoints by design).
AVATARV_ONLY = [
    r"^ref_embedding$",
    r"^audio_embedding\.",
    r"^motion_embedding\.",
    r"^motion_head\.",
    r"^guidance_embedding\.",
    r"^behaviour_embedding\.",
    r"^audio_position$",
    r"^blocks\.\d+\.audio_(norm|attn)\.",
]

# diffusers-layout keys its own loader ignores (``WanTransformer3DModel._keys_to_ignore_on_load_unexpected``): a
# ``norm_added_q`` some converted I2V checkpoints carry and no forward uses. Ignored here too, and reported.
IGNORED = {"diffusers": [r"^blocks\.\d+\.attn2\.norm_added_q\.weight$"], "original": []}

PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.")


def detect_layout(keys) -> str:
    keys = list(keys)
    if any(k.startswith("condition_embedder.") or ".attn1." in k for k in keys):
        return "diffusers"
    if any(k.startswith("time_embedding.") or ".self_attn." in k for k in keys):
        return "original"
    raise CheckpointError("not a Wan DiT state dict: found neither Wan nor diffusers key names")


def _strip(key: str) -> str:
    for p in PREFIXES:
        if key.startswith(p):
            return key[len(p) :]
    return key


@dataclass
class LoadReport:
    layout: str
    loaded: list[str] = field(default_factory=list)
    skipped_image_branch: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # keys diffusers' own loader ignores (IGNORED)
    missing: list[str] = field(default_factory=list)  # Wan parameters of ours the checkpoint lacks
    unexpected: list[str] = field(default_factory=list)
    avatarv_only: list[str] = field(default_factory=list)  # kept at their identity init


def map_wan_state_dict(state: dict[str, torch.Tensor], layout: str = "auto", skip_image_branch: bool = False):
    """Rename a Wan state dict to our keys. Returns (mapped state dict, partial LoadReport)."""
    state = {_strip(k): v for k, v in state.items()}
    layout = detect_layout(state) if layout == "auto" else layout
    table = {"original": ORIGINAL_TO_OURS, "diffusers": DIFFUSERS_TO_OURS}.get(layout)
    if table is None:
        raise CheckpointError(f"unknown Wan layout {layout!r} (original | diffusers | auto)")
    compiled = [(re.compile(p), r) for p, r in table]
    report = LoadReport(layout=layout)
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if skip_image_branch and any(re.search(p, key) for p in IMAGE_BRANCH):
            report.skipped_image_branch.append(key)
            continue
        if any(re.match(p, key) for p in IGNORED[layout]):
            report.ignored.append(key)
            continue
        for pat, repl in compiled:
            if pat.match(key):
                mapped[pat.sub(repl, key)] = value
                break
        else:
            report.unexpected.append(key)
    return mapped, report


def load_wan_state_dict(
    model: torch.nn.Module, state: dict[str, torch.Tensor], layout: str = "auto", skip_image_branch: bool = False
) -> LoadReport:
    """Load a Wan state dict into ``model``; raise CheckpointError listing missing/unexpected/misshaped keys.

    ``skip_image_branch`` applies only to a model without an image branch: one with it loads it strictly."""
    skip_image_branch = skip_image_branch and getattr(model, "image_embedding", None) is None
    mapped, report = map_wan_state_dict(state, layout, skip_image_branch)
    own = model.state_dict()
    ours_only = [re.compile(p) for p in AVATARV_ONLY]
    bad_shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in mapped.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    report.unexpected += [k for k in mapped if k not in own]
    for k in own:
        if k in mapped:
            report.loaded.append(k)
        elif any(p.search(k) for p in ours_only):
            report.avatarv_only.append(k)
        else:
            report.missing.append(k)
    problems = []
    if report.missing:
        problems.append(f"missing {len(report.missing)} keys: {', '.join(report.missing[:8])}")
    if report.unexpected:
        problems.append(f"unexpected {len(report.unexpected)} keys: {', '.join(report.unexpected[:8])}")
    if bad_shapes:
        problems.append(f"{len(bad_shapes)} shape mismatches: {'; '.join(bad_shapes[:4])}")
    if problems:
        raise CheckpointError(f"Wan {report.layout} checkpoint does not match the DiT config: " + "; ".join(problems))
    model.load_state_dict({k: mapped[k] for k in report.loaded}, strict=False)
    return report


def read_safetensors_dir(directory: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a directory of ``*.safetensors`` shards (or one file)."""
    from safetensors.torch import load_file

    path = Path(directory)
    if not path.exists():
        raise CheckpointError("no such checkpoint file or directory", path)
    files = [path] if path.is_file() else sorted(path.glob("*.safetensors"))
    if not files:
        raise CheckpointError("no *.safetensors files in the checkpoint directory", path)
    state: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            state.update(load_file(str(f)))
        except Exception as err:  # safetensors raises its own error types for corrupt headers
            raise CheckpointError(f"cannot read safetensors shard: {err}", f) from None
    return state


def read_safetensors_shapes(directory: str | Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape in a directory of ``*.safetensors`` shards (or one file), from the headers alone
    (``safe_open``: no tensor is loaded). Keys without any ``model.diffusion_model.`` prefix."""
    from safetensors import safe_open

    path = Path(directory)
    files = [path] if path.is_file() else sorted(path.glob("*.safetensors"))
    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (safe_open handles are not mappings)
                    shapes[_strip(key)] = tuple(handle.get_slice(key).get_shape())
        except Exception as err:  # safetensors raises its own error types for corrupt headers
            raise CheckpointError(f"cannot read safetensors header: {err}", f) from None
    return shapes


# What a config.json may omit, and where the tensors say it: (config key, key of a tensor, its axis).
# WanModel's defaults when neither says (Wan2.1 model.py: text_dim 4096, in_dim 16; img_emb = MLPProj(1280, dim)
# for model_type i2v / flf2v).
_FROM_SHAPES = {
    "original": {"text_dim": ("text_embedding.0.weight", 1), "in_dim": ("patch_embedding.weight", 1),
                 "image_dim": ("img_emb.proj.0.weight", 0)},
    "diffusers": {"text_dim": ("condition_embedder.text_embedder.linear_1.weight", 1),
                  "in_channels": ("patch_embedding.weight", 1),
                  "image_dim": ("condition_embedder.image_embedder.norm1.weight", 0)},
}
WAN_CLIP_DIM = 1280


def _from_shapes(config: dict, key: str, layout: str, shapes: dict | None, default):
    if config.get(key) is not None:
        return config[key]
    tensor, axis = _FROM_SHAPES[layout][key]
    if shapes and tensor in shapes:
        return shapes[tensor][axis]
    return default


def dit_config_from_wan(config: dict, shapes: dict[str, tuple[int, ...]] | None = None, **extras) -> DiTConfig:
    """DiTConfig from a Wan ``config.json`` (original ``WanModel`` or diffusers ``WanTransformer3DModel``).

    What the config omits (Wan2.1-I2V's original config.json has no ``text_dim``, and no layout states the
    CLIP dim) is read off ``shapes`` (tensor shapes from the checkpoint's headers, :func:`read_safetensors_shapes`)
    when given, else WanModel's defaults. ``image_dim`` > 0 builds the I2V image branch."""
    if "num_attention_heads" in config:  # diffusers
        layout, heads = "diffusers", config["num_attention_heads"]
        base = dict(
            dim=heads * config["attention_head_dim"], num_heads=heads, num_layers=config["num_layers"],
            ffn_dim=config["ffn_dim"], latent_channels=config.get("out_channels", 16),
            text_dim=_from_shapes(config, "text_dim", layout, shapes, 4096), freq_dim=config["freq_dim"],
            eps=config.get("eps", 1e-6), patch_size=tuple(config.get("patch_size", (1, 2, 2))),
            image_dim=_from_shapes(config, "image_dim", layout, shapes, 0),
        )
        in_ch = _from_shapes(config, "in_channels", layout, shapes, 16)
    else:  # original Wan
        layout = "original"
        i2v = config.get("model_type", "t2v") in ("i2v", "flf2v")
        base = dict(
            dim=config["dim"], num_heads=config["num_heads"], num_layers=config["num_layers"],
            ffn_dim=config["ffn_dim"], latent_channels=config.get("out_dim", 16),
            text_dim=_from_shapes(config, "text_dim", layout, shapes, 4096), freq_dim=config["freq_dim"],
            eps=config.get("eps", 1e-6), patch_size=tuple(config.get("patch_size", (1, 2, 2))),
            image_dim=_from_shapes(config, "image_dim", layout, shapes, WAN_CLIP_DIM if i2v else 0),
        )
        in_ch = _from_shapes(config, "in_dim", layout, shapes, 16)
    base["cond_channels"] = in_ch - base["latent_channels"]
    base.update(extras)
    return DiTConfig(**base)


def load_wan_dit(directory: str | Path, skip_image_branch: bool = True, **extras):
    """Build a VideoRef DiT from a local Wan checkpoint directory (config.json + safetensors shards).

    An I2V checkpoint builds the DiT with its CLIP image branch and loads it (pass ``image_dim=0`` to leave it
    out: then ``skip_image_branch`` says whether its keys may be skipped)."""
    from avatarv.models.dit.model import VideoRefDiT

    directory = Path(directory)
    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError("no config.json in the Wan checkpoint directory", directory)
    cfg = dit_config_from_wan(json.loads(cfg_path.read_text()), read_safetensors_shapes(directory), **extras)
    model = VideoRefDiT(cfg)
    report = load_wan_state_dict(model, read_safetensors_dir(directory), skip_image_branch=skip_image_branch)
    return model, report

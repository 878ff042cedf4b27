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

InfiniteTalk / MultiTalk's audio adapter (MeiGen-AI/InfiniteTalk ``wan/modules/multitalk_model.py``: ``audio_proj``
= ``AudioProjModel``, per block ``norm_x`` and ``audio_cross_attn``) ships as one unprefixed ``infinitetalk.safetensors``
(or ``multitalk.safetensors``) that InfiniteTalk merges with Wan's shards before a strict ``load_state_dict``
(``wan/multitalk.py``). Its keys keep their names in our DiT (built with ``audio_adapter="infinitetalk"``) and go
through :data:`AUDIO_ADAPTER_TO_OURS` before the Wan tables in both layouts: ``audio_cross_attn.q_linear`` contains
``cross_attn.q``, so no Wan pattern may ever see them.

Checkpoint files: a directory of shards listed by ``diffusion_pytorch_model.safetensors.index.json`` (Wan's own
upload and diffusers' ``transformer/`` alike), or of ``*.safetensors`` without an index, or one file
(:func:`wan_checkpoint_files`). ``models/dit/streaming_load.py`` loads them shard by shard into the run dtype.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from avatarv.config import DiTConfig
from avatarv.errors import CheckpointError

# InfiniteTalk / MultiTalk audio adapter: identical names in our DiT. Tried before either Wan table (see above).
AUDIO_ADAPTER_TO_OURS: list[tuple[str, str]] = [
    (r"^audio_proj\.(proj1|proj1_vf|proj2|proj3|norm)\.(weight|bias)$", r"audio_proj.\1.\2"),
    (r"^blocks\.(\d+)\.norm_x\.(weight|bias)$", r"blocks.\1.norm_x.\2"),
    (r"^blocks\.(\d+)\.audio_cross_attn\.(q_linear|kv_linear|proj)\.(weight|bias)$",
     r"blocks.\1.audio_cross_attn.\2.\3"),
]
AUDIO_ADAPTER_KEY = re.compile(r"^(audio_proj\.|blocks\.\d+\.(norm_x|audio_cross_attn)\.)")

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
    keys = [k for k in keys if not AUDIO_ADAPTER_KEY.match(k)]
    if any(k.startswith("condition_embedder.") or ".attn1." in k for k in keys):
        return "diffusers"
    if any(k.startswith("time_embedding.") or ".self_attn." in k for k in keys):
        return "original"
    raise CheckpointError("not a Wan DiT state dict: found neither Wan nor diffusers key names")


def strip_prefix(key: str) -> str:
    """The key without any ``model.diffusion_model.`` / ``diffusion_model.`` / ``model.`` prefix."""
    return _strip(key)


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


def is_avatarv_only(key: str) -> bool:
    """A parameter avatarv adds to Wan's (absent from Wan checkpoints; keeps its identity init)."""
    return any(re.search(p, key) for p in AVATARV_ONLY)


def classify_keys(report: LoadReport, own, present) -> list[str]:
    """Sort the model's keys ``own`` into loaded (in ``present``) / avatarv's own / missing on ``report``;
    returns the missing ones."""
    missing = []
    for k in own:
        if k in present:
            report.loaded.append(k)
        elif is_avatarv_only(k):
            report.avatarv_only.append(k)
        else:
            report.missing.append(k)
            missing.append(k)
    return missing


class KeyMapper:
    """Wan key (prefix stripped) → our key, for one layout: the audio-adapter table first, then the layout's.

    :meth:`__call__` returns our key, or ``None`` for a key to skip (``skipped`` / ``ignored`` say why), and
    raises nothing: an unmatched key is returned as ``KeyMapper.UNEXPECTED``."""

    UNEXPECTED = "<unexpected>"

    def __init__(self, layout: str, skip_image_branch: bool = False):
        table = {"original": ORIGINAL_TO_OURS, "diffusers": DIFFUSERS_TO_OURS}.get(layout)
        if table is None:
            raise CheckpointError(f"unknown Wan layout {layout!r} (original | diffusers | auto)")
        self.layout = layout
        self.skip_image_branch = skip_image_branch
        self.table = [(re.compile(p), r) for p, r in AUDIO_ADAPTER_TO_OURS + table]
        self.image_branch = [re.compile(p) for p in IMAGE_BRANCH]
        self.ignored = [re.compile(p) for p in IGNORED[layout]]

    def __call__(self, key: str, report: LoadReport | None = None) -> str | None:
        if self.skip_image_branch and any(p.search(key) for p in self.image_branch):
            if report is not None:
                report.skipped_image_branch.append(key)
            return None
        if any(p.match(key) for p in self.ignored):
            if report is not None:
                report.ignored.append(key)
            return None
        for pat, repl in self.table:
            if pat.match(key):
                return pat.sub(repl, key)
        return self.UNEXPECTED


def map_wan_state_dict(state: dict[str, torch.Tensor], layout: str = "auto", skip_image_branch: bool = False):
    """Rename a Wan state dict (with or without the InfiniteTalk audio adapter merged in) to our keys.
    Returns (mapped state dict, partial LoadReport)."""
    state = {_strip(k): v for k, v in state.items()}
    layout = detect_layout(state) if layout == "auto" else layout
    mapper = KeyMapper(layout, skip_image_branch)
    report = LoadReport(layout=layout)
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        ours = mapper(key, report)
        if ours == KeyMapper.UNEXPECTED:
            report.unexpected.append(key)
        elif ours is not None:
            mapped[ours] = value
    return mapped, report


def load_wan_state_dict(
    model: torch.nn.Module, state: dict[str, torch.Tensor], layout: str = "auto", skip_image_branch: bool = False
) -> LoadReport:
    """Load a Wan state dict into ``model``; raise CheckpointError listing missing/unexpected/misshaped keys.

    ``skip_image_branch`` applies only to a model without an image branch: one with it loads it strictly."""
    skip_image_branch = skip_image_branch and getattr(model, "image_embedding", None) is None
    mapped, report = map_wan_state_dict(state, layout, skip_image_branch)
    own = model.state_dict()
    bad_shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in mapped.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    report.unexpected += [k for k in mapped if k not in own]
    classify_keys(report, own, mapped)
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


INDEX_NAMES = ("diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json")


def wan_checkpoint_dir(path: str | Path) -> Path:
    """The folder holding a Wan DiT's weights: ``path`` itself, or its ``transformer/`` (a diffusers pipeline)."""
    path = Path(path)
    sub = path / "transformer"
    if path.is_dir() and not _own_shards(path) and sub.is_dir():
        return sub
    return path


def _own_shards(directory: Path) -> bool:
    return any(directory.glob("*.safetensors")) or any((directory / n).is_file() for n in INDEX_NAMES)


def wan_checkpoint_files(path: str | Path) -> list[Path]:
    """The safetensors files of a Wan DiT checkpoint, in load order.

    ``path`` is one file, or a folder (or a diffusers pipeline whose ``transformer/`` is one) with either an index
    (``diffusion_pytorch_model.safetensors.index.json``: its ``weight_map`` names the shards, as Wan2.1-I2V-14B's
    ``diffusion_pytorch_model-0000N-of-00007.safetensors`` and diffusers' ``save_pretrained`` write them) or,
    without an index, every ``*.safetensors`` in it. A shard the index names but the folder lacks is an error."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError("no such checkpoint file or directory", path)
    if path.is_file():
        return [path]
    path = wan_checkpoint_dir(path)
    for name in INDEX_NAMES:
        index = path / name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError, TypeError) as err:
                raise CheckpointError(f"unreadable shard index ({err!r}; expected a 'weight_map')", index) from None
            files = [path / f for f in sorted(set(weight_map.values()))]
            absent = [f.name for f in files if not f.is_file()]
            if absent:
                raise CheckpointError(f"{len(absent)} shard(s) named by {name} are missing: {', '.join(absent)}", path)
            return files
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise CheckpointError("no *.safetensors files in the checkpoint directory", path)
    return files


def read_safetensors_header(file: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{key: (dtype, shape)}`` of one safetensors file from its JSON header alone (no tensor is read).
    dtype as safetensors writes it: F32, BF16, F16, F8_E4M3, … Keys as stored (prefixes kept)."""
    file = Path(file)
    try:
        with open(file, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if not 2 <= size <= 100_000_000:
                raise ValueError(f"header length {size}")
            header = json.loads(handle.read(size))
        return {k: (v["dtype"], tuple(v["shape"])) for k, v in header.items() if k != "__metadata__"}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"cannot read safetensors header: {err}", file) from None


def read_safetensors_dir(directory: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a Wan checkpoint (:func:`wan_checkpoint_files`: indexed shards, a folder, or one file).
    Everything in host memory at the checkpoint's dtype: for the 14B model use ``streaming_load`` instead."""
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for f in wan_checkpoint_files(directory):
        try:
            state.update(load_file(str(f)))
        except Exception as err:  # safetensors raises its own error types for corrupt headers
            raise CheckpointError(f"cannot read safetensors shard: {err}", f) from None
    return state


def read_safetensors_shapes(directory: str | Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape in a Wan checkpoint (:func:`wan_checkpoint_files`), from the headers alone (no tensor
    is loaded). Keys without any ``model.diffusion_model.`` prefix."""
    shapes: dict[str, tuple[int, ...]] = {}
    for f in wan_checkpoint_files(directory):
        shapes.update({_strip(k): shape for k, (_, shape) in read_safetensors_header(f).items()})
    return shapes


# InfiniteTalk's audio adapter, read off the audio file's shapes (multitalk_model.py AudioProjModel):
# proj1 [hidden, window·layers·C], proj1_vf [hidden, (window + vae_scale − 1)·layers·C] (the first latent frame sees
# one video frame, the others vae_scale), proj3 [tokens·token_dim, hidden], norm [token_dim] when
# norm_output_audio, audio_cross_attn.kv_linear [2·dim, token_dim].
def infinitetalk_adapter_config(shapes: dict[str, tuple[int, ...]], audio_dim: int = 768,
                                vae_scale: int = 4) -> dict:
    """DiTConfig fields of the InfiniteTalk audio adapter from the audio file's tensor shapes.

    The shapes fix the product layers·C (wav2vec hidden layers × width) but not each factor: ``audio_dim`` (the
    wav2vec width, 768 for chinese-wav2vec2-base) splits it. ``vae_scale`` is the VAE's temporal stride (4)."""
    need = ["audio_proj.proj1.weight", "audio_proj.proj1_vf.weight", "audio_proj.proj3.weight",
            "blocks.0.audio_cross_attn.kv_linear.weight"]
    absent = [k for k in need if k not in shapes]
    if absent:
        raise CheckpointError(f"not an InfiniteTalk/MultiTalk audio adapter: no {', '.join(absent)}")
    hidden, in1 = shapes["audio_proj.proj1.weight"]
    in_vf = shapes["audio_proj.proj1_vf.weight"][1]
    token_dim = shapes["blocks.0.audio_cross_attn.kv_linear.weight"][1]
    layers_x_width, rest = divmod(in_vf - in1, vae_scale - 1)
    window, rest2 = divmod(in1, layers_x_width) if layers_x_width > 0 else (0, 1)
    layers, rest3 = divmod(layers_x_width, audio_dim) if layers_x_width > 0 else (0, 1)
    tokens, rest4 = divmod(shapes["audio_proj.proj3.weight"][0], token_dim)
    if rest or rest2 or rest3 or rest4 or window < 1 or layers < 1:
        raise CheckpointError(
            f"audio adapter shapes do not factor (proj1 {in1}, proj1_vf {in_vf} inputs, vae_scale {vae_scale}, "
            f"wav2vec width {audio_dim}, proj3 {shapes['audio_proj.proj3.weight'][0]} outputs, tokens of {token_dim})")
    return dict(audio_adapter="infinitetalk", audio_dim=audio_dim, audio_layers=layers, audio_frame_window=window,
                audio_hidden_dim=hidden, audio_context_tokens=tokens, audio_token_dim=token_dim,
                audio_norm_output="audio_proj.norm.weight" in shapes, audio_tokens_per_frame=vae_scale)


# Wan2.1-I2V-14B-480P's config.json (Wan-AI/Wan2.1-I2V-14B-480P on the Hub; text_dim and the CLIP width are WanModel
# defaults). With the InfiniteTalk adapter of :data:`INFINITETALK_AUDIO` it is InfiniteTalk's model
# (wan/configs/wan_multitalk_14B.py; multitalk_model.py WanModel defaults).
WAN_I2V_14B_CONFIG = {"_class_name": "WanModel", "dim": 5120, "eps": 1e-06, "ffn_dim": 13824, "freq_dim": 256,
                      "in_dim": 36, "model_type": "i2v", "num_heads": 40, "num_layers": 40, "out_dim": 16,
                      "text_len": 512}
INFINITETALK_AUDIO = dict(audio_adapter="infinitetalk", audio_dim=768, audio_layers=12, audio_frame_window=5,
                          audio_hidden_dim=512, audio_context_tokens=32, audio_token_dim=768, audio_norm_output=True,
                          audio_tokens_per_frame=4)


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


def dit_config_from_wan(config: dict, shapes: dict[str, tuple[int, ...]] | None = None,
                        audio_shapes: dict[str, tuple[int, ...]] | None = None, **extras) -> DiTConfig:
    """DiTConfig from a Wan ``config.json`` (original ``WanModel`` or diffusers ``WanTransformer3DModel``).

    What the config omits (Wan2.1-I2V's original config.json has no ``text_dim``, and no layout states the
    CLIP dim) is read off ``shapes`` (tensor shapes from the checkpoint's headers, :func:`read_safetensors_shapes`)
    when given, else WanModel's defaults. ``image_dim`` > 0 builds the I2V image branch. ``audio_shapes`` (the
    headers of an InfiniteTalk / MultiTalk audio file; Wan's config.json says nothing of audio) add the
    InfiniteTalk adapter (:func:`infinitetalk_adapter_config`). ``extras`` override everything."""
    shapes = None if shapes is None else {_strip(k): v for k, v in shapes.items()}  # headers may keep prefixes
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
    if audio_shapes is not None:
        audio_shapes = {_strip(k): v for k, v in audio_shapes.items()}
        base.update(infinitetalk_adapter_config(audio_shapes, extras.get("audio_dim", 768),
                                                extras.get("audio_tokens_per_frame", 4)))
    base.update(extras)
    return DiTConfig(**base)


def wan_config_json(directory: str | Path) -> dict:
    """The ``config.json`` of a Wan checkpoint folder (or of a diffusers pipeline's ``transformer/``)."""
    directory = wan_checkpoint_dir(directory)
    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError("no config.json in the Wan checkpoint directory", directory)
    try:
        return json.loads(cfg_path.read_text())
    except ValueError as err:
        raise CheckpointError(f"unreadable config.json: {err}", cfg_path) from None


def load_wan_dit(directory: str | Path, skip_image_branch: bool = True, audio: str | Path | None = None, **extras):
    """Build a VideoRef DiT from a local Wan checkpoint directory (config.json + safetensors shards), in fp32 in
    host memory (small models and tests; ``streaming_load.load_dit_streaming`` for the 14B one).

    An I2V checkpoint builds the DiT with its CLIP image branch and loads it (pass ``image_dim=0`` to leave it
    out: then ``skip_image_branch`` says whether its keys may be skipped). ``audio``: an InfiniteTalk / MultiTalk
    audio file, merged in as InfiniteTalk does (``wan/multitalk.py``) and loaded strictly with the rest."""
    from avatarv.models.dit.model import VideoRefDiT

    directory = wan_checkpoint_dir(directory)
    audio_shapes = None
    if audio is not None:
        audio_shapes = {k: shape for k, (_, shape) in read_safetensors_header(audio).items()}
    cfg = dit_config_from_wan(wan_config_json(directory), read_safetensors_shapes(directory), audio_shapes, **extras)
    model = VideoRefDiT(cfg)
    state = read_safetensors_dir(directory)
    if audio is not None:
        state.update(read_safetensors_dir(audio))
    report = load_wan_state_dict(model, state, skip_image_branch=skip_image_branch)
    return model, report

"""The weights folder ``avatarv generate --weights DIR`` reads (InfiniteTalk mode), and where each part lives in it.

Two layouts are accepted.

avatarv's own (one folder per part; each part in Wan's original or in diffusers' form)::

    DIR/wan/         Wan2.1-I2V-14B-480P: config.json + diffusion_pytorch_model-0000N-of-00007.safetensors + index
                     (or one diffusion_pytorch_model.safetensors), or diffusers' transformer/ folder (or a whole
                     diffusers pipeline: then text_encoder/, tokenizer/, image_encoder/ and vae/ may live here too)
    DIR/audio/       infinitetalk.safetensors (InfiniteTalk single or multi) or multitalk.safetensors (MultiTalk)
    DIR/wav2vec/     chinese-wav2vec2-base (config.json + model.safetensors or pytorch_model.bin)
    DIR/t5/          models_t5_umt5-xxl-enc-bf16.pth + google/umt5-xxl/ (tokenizer), or text_encoder/ + tokenizer/
    DIR/clip/        models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth, or image_encoder/
    DIR/vae/         Wan2.1_VAE.pth, or diffusers' vae/ (or this folder is it: config.json + safetensors)
    DIR/lora/        *.safetensors, optional, each merged at scale 1

InfiniteTalk's, exactly as its README downloads it (MeiGen-AI/InfiniteTalk README "Model Preparation";
``generate_infinitetalk.py --ckpt_dir weights/Wan2.1-I2V-14B-480P --wav2vec_dir weights/chinese-wav2vec2-base
--infinitetalk_dir weights/InfiniteTalk/single/infinitetalk.safetensors``; the t5 / clip / vae file names are
``wan/configs/wan_multitalk_14B.py``'s)::

    DIR/Wan2.1-I2V-14B-480P/    Wan's shards + config.json + models_t5_umt5-xxl-enc-bf16.pth + google/umt5-xxl/
                                + models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth + Wan2.1_VAE.pth
    DIR/chinese-wav2vec2-base/
    DIR/InfiniteTalk/single/infinitetalk.safetensors   (multi/infinitetalk.safetensors: ``audio_variant="multi"``)
    DIR/lora/*.safetensors      optional, as above

:func:`resolve_weights` finds the parts (or names every missing one); :func:`check_weights` also reads what each
holds from file headers (safetensors) or a memory-mapped ``torch.load`` (``.pth`` / ``.bin``), never the tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from avatarv.errors import CheckpointError
from avatarv.models.dit.lora import LoraSpec

PARTS = ("wan", "audio", "wav2vec", "t5", "clip", "vae")
WAN_FOLDER = "Wan2.1-I2V-14B-480P"  # the folder name InfiniteTalk's README downloads into
T5_PTH = "models_t5_umt5-xxl-enc-bf16.pth"
T5_TOKENIZER = "google/umt5-xxl"
CLIP_PTH = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
VAE_PTH = "Wan2.1_VAE.pth"
AUDIO_FILES = ("infinitetalk.safetensors", "single/infinitetalk.safetensors", "multitalk.safetensors")


@dataclass(frozen=True)
class WeightsParts:
    """One path per part, as the loaders take them (``t5`` / ``clip`` / ``vae``: Wan's ``.pth`` or a diffusers
    folder; ``wan``: the folder holding the DiT's config.json and shards)."""

    root: Path | None
    layout: str  # "avatarv" | "infinitetalk" | "parts" (no folder: every part named alone)
    wan: Path
    audio: Path
    wav2vec: Path
    t5: Path
    clip: Path
    vae: Path
    loras: tuple[LoraSpec, ...] = ()


@dataclass(frozen=True)
class _Found:
    path: Path | None
    expected: str  # what was looked for, for the error line


def _first(expected: str, *candidates: Path | None, test=Path.exists) -> _Found:
    for c in candidates:
        if c is not None and test(c):
            return _Found(c, expected)
    return _Found(None, expected)


def _is_wan(p: Path) -> bool:
    from avatarv.models.dit.wan_weights import wan_checkpoint_dir

    d = wan_checkpoint_dir(p)
    return (d / "config.json").is_file() and (any(d.glob("*.safetensors")))


def _is_hf_folder(p: Path) -> bool:
    return (p / "config.json").is_file()


def _is_wav2vec(p: Path) -> bool:
    return _is_hf_folder(p) and ((p / "model.safetensors").is_file() or (p / "pytorch_model.bin").is_file())


def detect_layout(root: Path | None) -> str:
    if root is None:
        return "parts"
    if (root / WAN_FOLDER).is_dir() and not (root / "wan").is_dir():
        return "infinitetalk"
    return "avatarv"


def _locate(root: Path | None, audio_variant: str = "single") -> tuple[str, dict[str, _Found]]:
    layout = detect_layout(root)
    if layout == "parts":
        return layout, {p: _Found(None, f"--{p}") for p in PARTS}
    if layout == "infinitetalk":
        wan = root / WAN_FOLDER
        audio = [root / "InfiniteTalk" / audio_variant / "infinitetalk.safetensors"]
        return layout, {
            "wan": _first(f"{wan}/config.json + diffusion_pytorch_model-*.safetensors", wan, test=_is_wan),
            "audio": _first(str(audio[0]), *audio, test=Path.is_file),
            "wav2vec": _first(f"{root / 'chinese-wav2vec2-base'}/config.json + model.safetensors or "
                              "pytorch_model.bin", root / "chinese-wav2vec2-base", test=_is_wav2vec),
            "t5": _first(str(wan / T5_PTH), wan / T5_PTH, test=Path.is_file),
            "clip": _first(str(wan / CLIP_PTH), wan / CLIP_PTH, test=Path.is_file),
            "vae": _first(str(wan / VAE_PTH), wan / VAE_PTH, test=Path.is_file),
        }
    wan, t5, clip, vae = root / "wan", root / "t5", root / "clip", root / "vae"
    return layout, {
        "wan": _first(f"{wan}/config.json + diffusion_pytorch_model*.safetensors (or {wan}/transformer/)", wan,
                      test=_is_wan),
        "audio": _first(f"{root / 'audio'}/infinitetalk.safetensors or multitalk.safetensors",
                        *(root / "audio" / n for n in AUDIO_FILES), test=Path.is_file),
        "wav2vec": _first(f"{root / 'wav2vec'}/config.json + model.safetensors or pytorch_model.bin",
                          root / "wav2vec", test=_is_wav2vec),
        "t5": _pth_or_folder(t5 / T5_PTH, t5 / "text_encoder", wan / "text_encoder"),
        "clip": _pth_or_folder(clip / CLIP_PTH, clip / "image_encoder", wan / "image_encoder"),
        "vae": _pth_or_folder(vae / VAE_PTH, vae / "vae", vae, wan / "vae"),
    }


def _pth_or_folder(pth: Path, *folders: Path) -> _Found:
    """Wan's ``.pth`` file, else the first diffusers folder (one with a config.json)."""
    expected = f"{pth} or {folders[0]}/"
    if pth.is_file():
        return _Found(pth, expected)
    return _first(expected, *folders, test=_is_hf_folder)


def t5_tokenizer(t5: Path) -> tuple[Path, bool]:
    """Where the UMT5 tokenizer of a t5 part is (``avatarv.models.encoders.umt5.load_umt5_encoder``'s rule):
    ``google/umt5-xxl/`` beside Wan's ``.pth``, ``tokenizer/`` beside diffusers' ``text_encoder/`` or inside it.
    Returns (the expected folder, whether it is there)."""
    if t5.is_file():
        tok = t5.parent / T5_TOKENIZER
        return tok, tok.is_dir() and any(tok.iterdir())
    for tok in (t5.parent / "tokenizer", t5):
        if (tok / "tokenizer_config.json").is_file() or (tok / "spiece.model").is_file() \
                or (tok / "tokenizer.json").is_file():
            return tok, True
    return t5.parent / "tokenizer", False


def _loras(root: Path | None) -> tuple[LoraSpec, ...]:
    if root is None or not (root / "lora").is_dir():
        return ()
    return tuple(LoraSpec(p) for p in sorted((root / "lora").glob("*.safetensors")))


def resolve_weights(root: str | Path | None, overrides: Mapping[str, str | Path] | None = None,
                    audio_variant: str = "single") -> WeightsParts:
    """The parts of a weights folder (either layout; see the module docstring), each replaceable by an
    ``overrides[part]`` path (parts: wan, audio, wav2vec, t5, clip, vae). Raises :class:`CheckpointError` with
    one line per missing part, naming the file or folder expected."""
    root = None if root is None else Path(root)
    if root is not None and not root.is_dir():
        raise CheckpointError("no such weights folder", root)
    overrides = {k: Path(v) for k, v in (overrides or {}).items() if v is not None}
    unknown = set(overrides) - set(PARTS)
    if unknown:
        raise CheckpointError(f"unknown weight parts {sorted(unknown)} (known: {', '.join(PARTS)})")
    layout, found = _locate(root, audio_variant)
    paths, lines = {}, []
    for part in PARTS:
        if part in overrides:
            if not overrides[part].exists():
                lines.append(f"{part}: {overrides[part]} does not exist")
            paths[part] = overrides[part]
        elif found[part].path is not None:
            paths[part] = found[part].path
        else:
            lines.append(f"{part}: expected {found[part].expected}")
    if "t5" in paths and paths["t5"].exists():
        tok, ok = t5_tokenizer(paths["t5"])
        if not ok:
            lines.append(f"t5 tokenizer: expected {tok}/")
    if lines:
        where = f"{root}: " if root is not None else ""
        raise CheckpointError(f"{where}{len(lines)} weight part(s) missing ({layout} layout)\n  " + "\n  ".join(lines))
    return WeightsParts(root=root, layout=layout, loras=_loras(root), **paths)


# ------------------------------------------------------------------------------------------------ check
@dataclass
class PartReport:
    part: str
    path: Path | None
    expected: str
    files: int = 0
    params: int = 0
    dtypes: dict[str, int] = field(default_factory=dict)  # dtype → parameter count
    detail: str = ""
    problem: str | None = None  # missing, or present but unusable

    @property
    def ok(self) -> bool:
        return self.path is not None and self.problem is None


@dataclass
class WeightsReport:
    root: Path | None
    layout: str
    parts: list[PartReport]

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.parts)

    def problems(self) -> list[str]:
        return [f"{p.part}: {p.problem}" for p in self.parts if not p.ok]


def human_count(n: int) -> str:
    """A parameter count for a table: 18.88B, 23.6M, 512."""
    return f"{n / 1e9:.2f}B" if n >= 1e8 else f"{n / 1e6:.1f}M" if n >= 1e5 else str(n)


_TORCH_DTYPES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16", "float8_e4m3fn": "F8_E4M3",
                 "float8_e5m2": "F8_E5M2", "int8": "I8", "float64": "F64", "int64": "I64", "uint8": "U8"}


def _count_safetensors(files: list[Path], part: PartReport) -> dict[str, tuple[int, ...]]:
    from avatarv.models.dit.wan_weights import read_safetensors_header

    shapes = {}
    for f in files:
        for key, (dtype, shape) in read_safetensors_header(f).items():
            n = 1
            for s in shape:
                n *= s
            part.dtypes[dtype] = part.dtypes.get(dtype, 0) + n
            part.params += n
            shapes[key] = shape
    part.files += len(files)
    return shapes


def _count_torch(file: Path, part: PartReport) -> None:
    """A ``.pth`` / ``.bin`` memory-mapped (``mmap=True``): shapes and dtypes without reading tensor data."""
    import torch

    try:
        state = torch.load(str(file), map_location="cpu", mmap=True, weights_only=True)
    except Exception as err:  # torch raises many types for corrupt / pickled-object files
        raise CheckpointError(f"cannot read with torch.load(weights_only=True): {err}", file) from None
    stack = [state]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, torch.Tensor):
            name = _TORCH_DTYPES.get(str(item.dtype).removeprefix("torch."), str(item.dtype))
            part.dtypes[name] = part.dtypes.get(name, 0) + item.numel()
            part.params += item.numel()
    part.files += 1


def _weights_in(folder: Path) -> list[Path]:
    from avatarv.models.dit.wan_weights import wan_checkpoint_files

    try:
        return wan_checkpoint_files(folder)
    except CheckpointError:
        return [*sorted(folder.glob("*.bin")), *sorted(folder.glob("*.pth"))]


def _inspect(part: PartReport) -> dict | None:
    """Fill ``part`` from headers; return the tensor shapes of safetensors parts (the wan and audio checks use them)."""
    path = part.path
    if path.is_file():
        if path.suffix == ".safetensors":
            return _count_safetensors([path], part)
        _count_torch(path, part)
        return None
    files = _weights_in(path)
    if not files:
        part.problem = f"no weights in {path}"
        return None
    safet = [f for f in files if f.suffix == ".safetensors"]
    shapes = _count_safetensors(safet, part) if safet else None
    for f in files:
        if f.suffix != ".safetensors":
            _count_torch(f, part)
    return shapes


def _wav2vec_width(wav2vec: PartReport) -> int:
    """The wav2vec hidden width (its config.json), which the adapter's shapes cannot tell from its layer count."""
    from avatarv.models.encoders.infinitetalk_audio import wav2vec_width

    if wav2vec.path is None:
        return 768  # chinese-wav2vec2-base
    try:
        return wav2vec_width(wav2vec.path)
    except CheckpointError:
        return 768  # chinese-wav2vec2-base


def _check_wan_and_audio(wan: PartReport, audio: PartReport, audio_shapes: dict | None, audio_dim: int) -> None:
    """The DiT built from Wan's config.json + the audio file's shapes must take every key of both, strictly
    (``streaming_load.plan_dit_load``: headers only)."""
    from avatarv.models.dit.streaming_load import parameter_groups, plan_dit_load
    from avatarv.models.dit.wan_weights import (
        dit_config_from_wan,
        read_safetensors_shapes,
        wan_checkpoint_files,
        wan_config_json,
    )

    files = wan_checkpoint_files(wan.path)
    extras = {"audio_dim": audio_dim} if audio_shapes else {}
    cfg = dit_config_from_wan(wan_config_json(wan.path), read_safetensors_shapes(wan.path), audio_shapes, **extras)
    plan = plan_dit_load([*files, audio.path] if audio_shapes else files, cfg)
    model = plan.model
    counts = parameter_groups((k, p.numel()) for k, p in model.named_parameters())
    wan.detail = (f"{plan.report.layout} layout, {len(files)} file(s), dim {cfg.dim}, {cfg.num_layers} layers"
                  + (", CLIP branch" if cfg.image_dim else ""))
    if audio_shapes:
        audio.detail = (f"InfiniteTalk adapter: {human_count(counts['audio_adapter'])} params, window "
                        f"{cfg.audio_frame_window}, {cfg.audio_layers} wav2vec layers × {cfg.audio_dim}, "
                        f"{cfg.audio_context_tokens} tokens × {cfg.audio_token_dim}")


def check_weights(root: str | Path | None, overrides: Mapping[str, str | Path] | None = None,
                  audio_variant: str = "single") -> WeightsReport:
    """What each part of a weights folder holds (files, parameter count per dtype), and what is missing or does not
    fit, from headers alone: no tensor is loaded. Never raises for a missing part: it is reported."""
    root = None if root is None else Path(root)
    layout, found = _locate(root if root is not None and root.is_dir() else None, audio_variant)
    if root is not None and layout == "parts":
        layout = "avatarv"
        found = {p: _Found(None, f"{root} (no such folder)") for p in PARTS}
    overrides = {k: Path(v) for k, v in (overrides or {}).items() if v is not None}
    parts = []
    for name in PARTS:
        path = overrides.get(name, found[name].path)
        expected = str(overrides[name]) if name in overrides else found[name].expected
        part = PartReport(name, path if path is not None and path.exists() else None, expected)
        if part.path is None:
            part.problem = f"missing (expected {expected})"
        parts.append(part)
    by = {p.part: p for p in parts}
    shapes: dict[str, dict | None] = {}
    for part in parts:
        if part.path is not None:
            try:
                shapes[part.part] = _inspect(part)
            except CheckpointError as err:
                part.problem = str(err)
    audio_shapes = shapes.get("audio")
    if by["audio"].ok and audio_shapes is not None:
        from avatarv.models.dit.wan_weights import AUDIO_ADAPTER_KEY, strip_prefix

        stray = [k for k in audio_shapes if not AUDIO_ADAPTER_KEY.match(strip_prefix(k))]
        if stray:
            by["audio"].problem = f"not an InfiniteTalk/MultiTalk audio file: {len(stray)} other keys ({stray[0]}, …)"
    if by["t5"].path is not None:
        tok, ok = t5_tokenizer(by["t5"].path)
        by["t5"].detail = f"tokenizer {tok}" if ok else ""
        if not ok and by["t5"].problem is None:
            by["t5"].problem = f"tokenizer missing (expected {tok}/)"
    if by["wan"].ok:
        try:
            _check_wan_and_audio(by["wan"], by["audio"], audio_shapes if by["audio"].ok else None,
                                 _wav2vec_width(by["wav2vec"]))
        except CheckpointError as err:
            msg = str(err)
            audio_words = (str(by["audio"].path), "audio adapter", "audio_proj", "norm_x", "audio_cross_attn")
            blame_audio = by["audio"].ok and any(w in msg for w in audio_words)
            (by["audio"] if blame_audio else by["wan"]).problem = msg
    if layout == "avatarv" or layout == "infinitetalk":
        for spec in _loras(root):
            lora = PartReport("lora", spec.path, "optional")
            try:
                _inspect(lora)
            except CheckpointError as err:
                lora.problem = str(err)
            parts.append(lora)
    return WeightsReport(root, layout, parts)

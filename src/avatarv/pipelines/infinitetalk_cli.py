"""``avatarv generate --weights DIR`` (or the parts one by one): the InfiniteTalk mode from the command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from avatarv.errors import InputError


@dataclass
class WeightsArgs:
    """What the user named: a weights folder and/or single parts (a part named overrides the folder's)."""

    weights: Path | None = None
    wan: Path | None = None
    audio_adapter: Path | None = None
    wav2vec: Path | None = None
    t5: Path | None = None
    clip: Path | None = None
    vae: Path | None = None
    loras: list[str] = field(default_factory=list)  # FILE or FILE:SCALE

    def given(self) -> bool:
        return any(getattr(self, n) is not None for n in ("weights", "wan", "audio_adapter", "wav2vec", "t5", "clip",
                                                          "vae")) or bool(self.loras)


def parse_lora(text: str, alpha_mode: str = "ignore"):
    """``FILE[:SCALE]`` → LoraSpec (a Windows drive letter is not a scale: only a trailing number is)."""
    from avatarv.models.dit.lora import LoraSpec

    path, sep, scale = text.rpartition(":")
    if sep and path:
        try:
            return LoraSpec(Path(path), float(scale), alpha_mode)
        except ValueError:
            pass
    return LoraSpec(Path(text), 1.0, alpha_mode)


def parse_resolution(text: str | None) -> tuple[int, int] | None:
    """``HxW`` → (h, w); None → None (the aspect bucket)."""
    if text is None:
        return None
    h, sep, w = text.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        return int(h), int(w)
    except ValueError:
        raise InputError(f"--resolution: expected HxW (e.g. 480x832), got {text!r}") from None


def resolve_parts(args: WeightsArgs) -> dict[str, Path]:
    """The six part paths: from the weights folder's layout (``avatarv.weights.layout``), each overridden by a
    part named alone. A part neither gives is one :class:`CheckpointError` line naming what was expected."""
    from avatarv.weights.layout import resolve_weights

    overrides = {"wan": args.wan, "audio": args.audio_adapter, "wav2vec": args.wav2vec, "t5": args.t5,
                 "clip": args.clip, "vae": args.vae}
    parts = resolve_weights(args.weights, {k: v for k, v in overrides.items() if v is not None})
    return {"wan": parts.wan, "audio_file": parts.audio, "wav2vec": parts.wav2vec, "t5": parts.t5,
            "clip": parts.clip, "vae": parts.vae, "loras": list(getattr(parts, "loras", []) or [])}


def run_infinitetalk(ref: Path, out: Path, speeches, weights: WeightsArgs, opts, dtype: str | None = None,
                     offload: str = "none", device: str | None = None) -> dict:
    """Load the parts (one line per missing one, before anything is written), then generate with a progress bar.
    ``device``: None → CUDA when present, else the CPU."""
    import torch

    from avatarv.pipelines.infinitetalk import OFFLOAD_MODES

    if offload not in OFFLOAD_MODES:
        raise InputError(f"--offload must be one of {', '.join(OFFLOAD_MODES)}, got {offload!r}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA device here")
    from tqdm import tqdm

    from avatarv.media import read_video
    from avatarv.pipelines.infinitetalk import InfiniteTalkPipeline

    if not str(out).lower().endswith(".mp4"):
        raise InputError("the output must be an .mp4 file", out)
    parts = resolve_parts(weights)
    loras = [*parts.pop("loras"), *(parse_lora(x) for x in weights.loras)]
    reference = read_video(ref)
    bar = tqdm(total=0, desc="preparing: loading the weights", unit="step")
    try:
        pipe = InfiniteTalkPipeline.from_paths(**parts, loras=loras, dtype=dtype, device=device, offload=offload,
                                               on_part=lambda p: bar.set_description(f"preparing: loading {p}"))
        bar.set_description("generating")
        frames = max(len(s) for s in speeches) * 25 // 16000
        if opts.seconds is not None:
            frames = min(frames, round(opts.seconds * 25))
        step = opts.frame_num - opts.motion_frames
        bar.reset(total=(1 + max(0, -(-(frames - opts.frame_num) // step))) * opts.steps)

        def progress(chunk, step):
            bar.set_postfix(chunk=chunk + 1)
            bar.update(1)

        return pipe.generate(reference, speeches, out, opts, progress=progress)
    finally:
        bar.close()


__all__ = ["WeightsArgs", "parse_lora", "parse_resolution", "resolve_parts", "run_infinitetalk"]

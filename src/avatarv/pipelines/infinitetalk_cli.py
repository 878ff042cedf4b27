"""``avatarv generate --weights DIR`` (or the parts one by one): the InfiniteTalk mode from the command line."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
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


@contextlib.contextmanager
def process_group(device: str):
    """Under ``torchrun`` (``WORLD_SIZE`` > 1): the default process group (``distributed.state.init_distributed``:
    NCCL on CUDA, each rank its ``LOCAL_RANK`` GPU; gloo on the CPU) → (rank, world, device), left at the end;
    otherwise (0, 1, device)."""
    from avatarv.distributed.state import init_distributed

    cuda = device.startswith("cuda")
    info = init_distributed(cuda=cuda)
    if not info.distributed:
        yield 0, 1, device
        return
    import torch.distributed as dist

    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', info.rank))}"
    try:
        yield info.rank, info.size, device
    finally:
        dist.barrier()
        dist.destroy_process_group()


def run_infinitetalk(ref: Path, out: Path, speeches, weights: WeightsArgs, opts, dtype: str | None = None,
                     offload: str = "none", device: str | None = None, fsdp: bool = False, fp8: bool = False,
                     on_step: Callable[[int, int, int], None] | None = None) -> dict:
    """Load the parts (one line per missing one, before anything is written), then generate with a progress bar.
    ``device``: None → CUDA when present, else the CPU. Under ``torchrun`` every rank runs the same job on the same
    inputs with Ulysses sequence parallelism over the DiT (``fsdp``: FSDP2 shards its weights too); rank 0 writes
    ``out``. ``on_step(chunk, step, total_steps)`` after every denoising step (beside the progress bar)."""
    import torch

    from avatarv.pipelines.infinitetalk import OFFLOAD_MODES

    if offload not in OFFLOAD_MODES:
        raise InputError(f"--offload must be one of {', '.join(OFFLOAD_MODES)}, got {offload!r}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA device here")
    from avatarv.media import read_video

    if not str(out).lower().endswith(".mp4"):
        raise InputError("the output must be an .mp4 file", out)
    if fsdp and offload == "blocks":
        raise InputError("--fsdp shards the DiT's weights over the GPUs; it does not combine with --offload blocks")
    parts = resolve_parts(weights)
    loras = [*parts.pop("loras"), *(parse_lora(x) for x in weights.loras)]
    reference = read_video(ref)
    with process_group(device) as (rank, world, device), tempfile.TemporaryDirectory() as scratch:
        target = out if rank == 0 else Path(scratch) / f"rank{rank}.mp4"  # one file, written by rank 0
        return _generate(reference, target, speeches, parts, loras, opts, dtype, offload, device, world, fsdp,
                         show=rank == 0, fp8=fp8, on_step=on_step)


def _generate(reference, out, speeches, parts, loras, opts, dtype, offload, device, world, fsdp, show,
              fp8: bool = False, on_step=None) -> dict:
    from tqdm import tqdm

    from avatarv.pipelines.infinitetalk import InfiniteTalkPipeline

    bar = tqdm(total=0, desc="preparing: loading the weights", unit="step", disable=not show)
    try:
        pipe = InfiniteTalkPipeline.from_paths(**parts, loras=loras, dtype=dtype, device=device, offload=offload,
                                               fp8=fp8, on_part=lambda p: bar.set_description(f"preparing: loading {p}"))
        if world > 1:
            from avatarv.distributed import apply_ulysses

            apply_ulysses(pipe.dit)
            if fsdp:
                from avatarv.distributed.fsdp import apply_fsdp

                apply_fsdp(pipe.dit, cpu_offload=False)
        bar.set_description("generating")
        frames = max(len(s) for s in speeches) * 25 // 16000
        if opts.seconds is not None:
            frames = min(frames, round(opts.seconds * 25))
        step = opts.frame_num - opts.motion_frames
        bar.reset(total=(1 + max(0, -(-(frames - opts.frame_num) // step))) * opts.steps)

        def progress(chunk, step):
            bar.set_postfix(chunk=chunk + 1)
            bar.update(1)
            if on_step is not None:
                on_step(chunk, step, bar.total)

        return pipe.generate(reference, speeches, out, opts, progress=progress)
    finally:
        bar.close()


__all__ = ["WeightsArgs", "parse_lora", "parse_resolution", "resolve_parts", "run_infinitetalk"]

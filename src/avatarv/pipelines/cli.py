"""``avatarv generate`` (the main job) and ``avatarv demo`` (it, on the bundled examples)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from avatarv.errors import CheckpointError, ConfigError, InputError


def _speech_from_args(audio: Path | None, text: str | None, voice: Path | None):
    from avatarv.media import read_audio

    if (audio is None) == (text is None):
        raise InputError("give exactly one of --audio SPEECH or --text \"...\"")
    if audio is not None:
        return read_audio(audio)
    try:
        from avatarv.voice import text_to_speech
    except ImportError:
        raise InputError("--text needs the voice engine (avatarv.voice), which is not installed in this build") from None
    return text_to_speech(text, voice)


def parse_guidance(text: str | None):
    """``--guidance audio=3,ref=1.5`` → GuidanceScales (None: the pipeline's default); a clear error otherwise."""
    if text is None:
        return None
    from avatarv.diffusion import GuidanceScales

    try:
        return GuidanceScales.parse(text)
    except ValueError as err:
        raise ConfigError(f"--guidance: {err}") from None


@dataclass
class PipelineSource:
    """Which weights a job runs: a checkpoint folder, untrained random weights of a preset (tests, smoke
    runs), or (neither given) the bundled checkpoint found on the search path (``avatarv.resources``)."""

    checkpoint: Path | None = None
    preset: str | None = None
    dtype: str | None = None  # auto | fp32 | bf16 (avatarv.precision)
    decoder: str = "auto"  # auto | full | tiny (AvatarPipeline.from_checkpoint)

    def load(self, seed: int = 0):
        from avatarv.pipelines.generate import AvatarPipeline
        from avatarv.resources import find_checkpoint

        if self.checkpoint is not None and self.preset is not None:
            raise InputError("give at most one of --checkpoint DIR and --preset NAME (random weights)")
        if self.preset is not None:
            return AvatarPipeline.random(self.preset, seed=seed, dtype=self.dtype)
        return AvatarPipeline.from_checkpoint(self.checkpoint or find_checkpoint(), dtype=self.dtype,
                                              decoder=self.decoder)

    def sampling_defaults(self) -> dict:
        """The sampling a checkpoint was made for (``pipeline.json``'s ``sampling``: steps, sampler, guidance; a
        distilled student's), or {} (random weights, or a checkpoint without one)."""
        from avatarv.resources import find_checkpoint

        if self.preset is not None:
            return {}
        try:
            folder = self.checkpoint or find_checkpoint()
        except CheckpointError:
            return {}
        meta = Path(folder) / "pipeline.json"
        try:
            return dict(json.loads(meta.read_text()).get("sampling") or {}) if meta.is_file() else {}
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{meta}: not valid JSON ({err})") from None


def sampling_options(defaults: dict, steps: int | None, sampler: str | None, guidance: str | None,
                     fallback_steps: int = 24) -> dict:
    """Steps, sampler and guidance of a job: what the command line says, else the checkpoint's sampling
    (``PipelineSource.sampling_defaults``), else the pipeline's defaults."""
    out = {"steps": steps or int(defaults.get("steps", fallback_steps)),
           "sampler": sampler or str(defaults.get("sampler", "overshoot"))}
    scales = parse_guidance(guidance if guidance is not None else defaults.get("guidance"))
    if scales is not None:
        out["guidance"] = scales
    return out


def run_generation(ref: Path, out: Path, speech, opts, source: PipelineSource) -> dict:
    """The main job: reference video ``ref`` + ``speech`` (float32 mono at 16 kHz) → ``out`` (mp4), with
    ``opts`` (``GenerationOptions``) and the weights of ``source``; a progress bar from the first preparation
    phase to the last step. Returns the pipeline's summary."""
    from tqdm import tqdm

    from avatarv.media import read_video

    if not str(out).lower().endswith(".mp4"):
        raise InputError("the output must be an .mp4 file", out)
    if opts.scene_image is not None and opts.scene_prompt is not None:
        raise InputError("give at most one of --scene IMAGE and --scene-prompt \"...\"")
    reference = read_video(ref)
    bar = tqdm(total=0, desc="preparing: loading the model", unit="step")
    try:
        pipe = source.load(seed=opts.seed)
        if pipe.random_weights:
            bar.write(f"avatarv: NOTE: running the {source.preset!r} preset with untrained random weights; the "
                      "video shows noise, not a person", file=sys.stderr)
        plan = pipe.plan(len(speech), opts)  # made once: the bar's total and the job's chunks
        n_chunks = len(plan.chunks())
        bar.reset(total=n_chunks * opts.steps)

        def progress(chunk, step):
            if bar.n == 0:
                bar.set_description("generating")
            bar.set_postfix(chunk=f"{chunk.index + 1}/{n_chunks}")
            bar.update(1)

        return pipe.generate(reference, speech, out, opts, progress=progress, on_phase=lambda p: phase(bar, p),
                             plan=plan)
    finally:
        bar.close()


def phase(bar, name: str) -> None:
    """Show what the job is doing before its first denoising step (nothing sits at 0 % silently)."""
    bar.set_description(f"preparing: {name}")
    bar.refresh()


def generate(
    ref: Path = typer.Option(..., "--ref", help="Reference video of the person (mp4, mov, ...)."),
    out: Path = typer.Option(..., "--out", help="Output mp4 (written as it is generated)."),
    audio: Path = typer.Option(None, "--audio", help="Speech to say (wav, mp3, m4a, or a video's audio)."),
    text: str = typer.Option(None, "--text", help="Text to say (needs the voice engine)."),
    voice: Path = typer.Option(None, "--voice", help="Voice sample for --text."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Pipeline checkpoint directory (default: the bundled "
                                    "world-small, found on the checkpoint search path: $AVATARV_CHECKPOINTS, "
                                    "./checkpoints, ~/.local/share/avatarv/checkpoints)."),
    preset: str = typer.Option(None, "--preset", help="Untrained RANDOM weights of this preset instead of a "
                               "checkpoint (tests and smoke runs: the video shows noise)."),
    seconds: float = typer.Option(None, "--seconds", help="Duration (default: the speech's)."),
    steps: int = typer.Option(None, "--steps", min=1, help="Denoising steps (default 24; InfiniteTalk mode 40)."),
    sampler: str = typer.Option(None, "--sampler", help="overshoot | euler | x0 (default: the checkpoint's, else "
                                "overshoot; InfiniteTalk mode euler, as InfiniteTalk)."),
    seed: int = typer.Option(0, "--seed"),
    scene: Path = typer.Option(None, "--scene", help="Scene image for the first frame (bypasses the image engine)."),
    scene_engine: bool = typer.Option(False, "--scene-engine", help="Generate the scene image from diverse "
                                      "reference frames (identity-preserving image engine)."),
    preview: Path = typer.Option(None, "--preview", help="Also stream the low-resolution video (before SR) here."),
    refine: bool = typer.Option(True, "--refine/--no-refine", help="Run the SR refiner when the checkpoint has one."),
    prompt: str = typer.Option("", "--prompt", help="Text condition of the video (checkpoints with a text encoder)."),
    scene_prompt: str = typer.Option(None, "--scene-prompt", help="Describe the scene: the image engine makes the "
                                     "first frame from it and diverse reference frames."),
    motion_out: Path = typer.Option(None, "--motion-out", help="Also write the generated motion stream (head "
                                    "pose, mouth, blink, smile per frame) to this .npz."),
    motion_continuity: bool = typer.Option(True, "--motion-continuity/--no-motion-continuity",
                                           help="Start each chunk's motion from the previous chunk's."),
    step_cache: float = typer.Option(0.0, "--step-cache", min=0.0, help="Step caching: skip the DiT's block stack "
                                     "while its first block's residual changes by less than this (accumulated "
                                     "relative L1; e.g. 0.1). 0 (default): off."),
    decoder: str = typer.Option("auto", "--decoder", help="auto (the checkpoint's tiny fast decoder when it has "
                                "one) | full (the VAE's own decoder) | tiny."),
    tail_encoder: str = typer.Option("auto", "--tail-encoder", help="What re-encodes each chunk's tail as the next "
                                     "chunk's prefix: auto (the checkpoint's tiny tail encoder when it has one) | "
                                     "full (the VAE's encoder) | tiny."),
    colour_correction: float = typer.Option(1.0, "--colour-correction", min=0.0, max=1.0, help="Colour anchor: "
                                            "move each frame's Lab mean/std towards the scene image's by this "
                                            "fraction (InfiniteTalk's color correction, whose command line also "
                                            "defaults to 1; 0: off)."),
    guidance: str = typer.Option(None, "--guidance", help="Classifier-free guidance per condition, e.g. "
                                 "audio=3,ref=1.5 (ref, audio, text; default 1 each: one model pass per step; "
                                 "audio=3 alone costs three, scales that differ everywhere four)."),
    dtype: str = typer.Option(None, "--dtype", help="Compute precision: auto (bf16 where the hardware computes "
                              "it natively, fp32 elsewhere; AVATARV_DTYPE overrides auto) | bf16 | fp32."),
    weights: Path = typer.Option(None, "--weights", help="InfiniteTalk mode: a folder of real weights (Wan2.1-I2V "
                                 "+ InfiniteTalk + encoders; layout in the README; `avatarv weights check DIR`)."),
    wan: Path = typer.Option(None, "--wan", help="InfiniteTalk mode: the Wan2.1-I2V DiT (overrides --weights')."),
    audio_adapter: Path = typer.Option(None, "--audio-adapter", help="InfiniteTalk / MultiTalk audio file."),
    wav2vec: Path = typer.Option(None, "--wav2vec", help="chinese-wav2vec2-base folder."),
    t5: Path = typer.Option(None, "--t5", help="UMT5-XXL encoder (diffusers folder or Wan's .pth)."),
    clip: Path = typer.Option(None, "--clip", help="CLIP ViT-H/14 vision (diffusers image_encoder/ or Wan's .pth)."),
    vae: Path = typer.Option(None, "--vae", help="Wan2.1 VAE (diffusers vae/ or Wan2.1_VAE.pth)."),
    lora: list[str] = typer.Option(None, "--lora", help="LoRA FILE[:SCALE] merged at load (repeatable)."),
    audio2: Path = typer.Option(None, "--audio2", help="InfiniteTalk mode: the second speaker's speech."),
    size: str = typer.Option("infinitetalk-480", "--size", help="infinitetalk-480 | infinitetalk-720 buckets."),
    resolution: str = typer.Option(None, "--resolution", help="HxW instead of the aspect bucket (multiples of 16)."),
    frame_num: int = typer.Option(81, "--frame-num", help="InfiniteTalk mode: frames per chunk (4n+1)."),
    motion_frames: int = typer.Option(9, "--motion-frames", help="InfiniteTalk mode: frames carried over (4n+1)."),
    text_scale: float = typer.Option(5.0, "--text-scale", help="InfiniteTalk mode: text guidance (1: two passes)."),
    audio_scale: float = typer.Option(4.0, "--audio-scale", help="InfiniteTalk mode: audio guidance."),
    video_ref: bool = typer.Option(False, "--video-ref/--no-video-ref", help="InfiniteTalk mode: also attend to "
                                   "the whole reference video (avatarv's sparse reference attention)."),
    offload: str = typer.Option("none", "--offload", help="InfiniteTalk mode: none | model (each model on the "
                                "device only while it runs) | blocks (also the DiT's blocks streamed from host "
                                "memory: 14B at 480p in ~11 GiB of GPU memory; python -m "
                                "avatarv.distributed.memory_plan)."),
    device: str = typer.Option(None, "--device", help="InfiniteTalk mode: cuda | cpu (default: cuda if present)."),
    fsdp: bool = typer.Option(False, "--fsdp", help="InfiniteTalk mode under torchrun: FSDP2-shard the DiT's "
                              "weights over the GPUs (Ulysses sequence parallelism is always on there)."),
    fp8: bool = typer.Option(False, "--fp8", help="InfiniteTalk mode: the DiT blocks' weights in FP8 e4m3 (FP8 "
                             "matmuls on Ada/Hopper GPUs; elsewhere weight-only: half the memory of bf16)."),
    watermark: bool = typer.Option(True, "--watermark/--no-watermark", help="Embed an invisible watermark (a random "
                                   "64-bit id; `avatarv watermark detect OUT`); recorded in the mp4's metadata."),
) -> None:
    """Generate a talking video of the person in --ref saying --audio (or --text)."""
    from avatarv.pipelines.generate import GenerationOptions
    from avatarv.pipelines.infinitetalk_cli import WeightsArgs
    from avatarv.provenance.watermark import mark_output

    parts = WeightsArgs(weights, wan, audio_adapter, wav2vec, t5, clip, vae, list(lora or []))
    if parts.given():
        from avatarv.media import read_audio
        from avatarv.pipelines.infinitetalk import InfiniteTalkOptions
        from avatarv.pipelines.infinitetalk_cli import parse_resolution, run_infinitetalk

        if checkpoint is not None or preset is not None:
            raise InputError("--weights / --wan … (InfiniteTalk) and --checkpoint / --preset are exclusive")
        speeches = [_speech_from_args(audio, text, voice)] + ([read_audio(audio2)] if audio2 is not None else [])
        it = InfiniteTalkOptions(size=size, resolution=parse_resolution(resolution), frame_num=frame_num,
                                 motion_frames=motion_frames, steps=steps or 40, seed=seed,
                                 prompt=prompt or "", seconds=seconds, text_scale=text_scale, audio_scale=audio_scale,
                                 sampler=sampler or "euler", video_ref=video_ref)
        summary = run_infinitetalk(ref, out, speeches, parts, it, None if dtype is None else _dtype(dtype),
                                   offload=offload, device=device, fsdp=fsdp, fp8=fp8)
        if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 wrote the video
            typer.echo(json.dumps({**summary, "watermark": mark_output(out, enabled=watermark)}))
        return

    source = PipelineSource(checkpoint, preset, None if dtype is None else _dtype(dtype), decoder=decoder)
    opts = GenerationOptions(seconds=seconds, seed=seed,
                             scene_image=None if scene is None else str(scene), scene_engine=scene_engine,
                             preview_path=None if preview is None else str(preview), refine=refine,
                             prompt=prompt or "", scene_prompt=scene_prompt,
                             motion_path=None if motion_out is None else str(motion_out),
                             motion_continuity=motion_continuity, step_cache=step_cache,
                             colour_correction=colour_correction, tail_encoder=tail_encoder,
                             **sampling_options(source.sampling_defaults(), steps, sampler, guidance))
    speech = _speech_from_args(audio, text, voice)
    summary = run_generation(ref, out, speech, opts, source)
    typer.echo(json.dumps({**summary, "watermark": mark_output(out, enabled=watermark)}))


def _demo_checkpoint(teacher: bool) -> Path:
    """The demo's weights: ``world-small-distilled`` when found (unless ``teacher``), else ``world-small``."""
    from avatarv.resources import DEFAULT_CHECKPOINT, DISTILLED_CHECKPOINT, find_checkpoint

    if not teacher:
        try:
            return find_checkpoint(DISTILLED_CHECKPOINT)
        except CheckpointError:
            pass
    return find_checkpoint(DEFAULT_CHECKPOINT)


def _dtype(name: str) -> str:
    from avatarv.precision import parse_dtype

    return parse_dtype(name, "--dtype")


def demo(
    out: Path = typer.Option(Path("out") / "demo.mp4", "--out"),
    steps: int = typer.Option(None, "--steps", help="Default: 24 with a trained checkpoint, 4 with random weights."),
    dtype: str = typer.Option(None, "--dtype", help="auto (default) | bf16 | fp32; see generate --help."),
    teacher: bool = typer.Option(False, "--teacher", help="The undistilled world model (24 steps) instead of the "
                                 "distilled one."),
    step_cache: float = typer.Option(0.0, "--step-cache", min=0.0, help="Step caching threshold (0: off)."),
    decoder: str = typer.Option("auto", "--decoder", help="auto | full | tiny; see generate --help."),
    tail_encoder: str = typer.Option("auto", "--tail-encoder", help="auto | full | tiny; see generate --help."),
    colour_correction: float = typer.Option(1.0, "--colour-correction", min=0.0, max=1.0,
                                            help="Colour anchor strength (0: off); see generate --help."),
) -> None:
    """Run generate on the bundled examples (ref.mp4 + speech.wav) with the bundled checkpoint: the distilled
    world model (its own steps and sampler) when it is there, else the teacher."""
    from avatarv.media import read_audio
    from avatarv.pipelines.generate import GenerationOptions
    from avatarv.resources import example

    ref, speech = example("ref.mp4"), example("speech.wav")
    for path in (ref, speech):
        if not path.is_file():
            raise InputError("demo input missing (make examples writes it)", path)
    try:
        source = PipelineSource(_demo_checkpoint(teacher), dtype=None if dtype is None else _dtype(dtype),
                                decoder=decoder)
    except CheckpointError as err:
        typer.echo(f"avatarv demo: {err}; using tiny RANDOM weights", err=True)
        source = PipelineSource(preset="tiny", dtype=None if dtype is None else _dtype(dtype))
    opts = GenerationOptions(step_cache=step_cache, colour_correction=colour_correction, tail_encoder=tail_encoder,
                             **sampling_options(source.sampling_defaults(), steps, None, None,
                                                fallback_steps=4 if source.preset else 24))
    summary = run_generation(ref, out, read_audio(speech), opts, source)
    typer.echo(json.dumps(summary))
    typer.echo(f"avatarv demo: wrote {summary['out']} ({summary['seconds']:.2f} s, {summary['chunks']} chunks)")

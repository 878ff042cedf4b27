"""``avatarv generate`` (the main job) and ``avatarv demo`` (it, on the bundled examples)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from avatarv.errors import ConfigError, InputError

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CHECKPOINT = REPO_ROOT / "checkpoints" / "world-small"
EXAMPLES = REPO_ROOT / "examples"


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


def run_generation(
    ref: Path, out: Path, audio: Path | None = None, text: str | None = None, voice: Path | None = None,
    checkpoint: Path | None = None, preset: str = "tiny", seconds: float | None = None, steps: int = 24,
    sampler: str = "overshoot", seed: int = 0, scene: Path | None = None, scene_engine: bool = False,
    preview: Path | None = None, refine: bool = True, prompt: str = "", scene_prompt: str | None = None,
    motion_out: Path | None = None, motion_continuity: bool = True, guidance: str | None = None,
    dtype: str | None = None,
) -> dict:
    from tqdm import tqdm

    from avatarv.media import read_video
    from avatarv.pipelines.chunks import ChunkPlan
    from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions

    if not str(out).lower().endswith(".mp4"):
        raise InputError("the output must be an .mp4 file", out)
    if scene is not None and scene_prompt is not None:
        raise InputError("give at most one of --scene IMAGE and --scene-prompt \"...\"")
    scales = parse_guidance(guidance)
    if dtype is not None:
        from avatarv.precision import parse_dtype

        dtype = parse_dtype(dtype, "--dtype")
    speech = _speech_from_args(audio, text, voice)
    reference = read_video(ref)
    bar = tqdm(total=0, desc="preparing: loading the model", unit="step")
    try:
        if checkpoint is not None:
            pipe = AvatarPipeline.from_checkpoint(checkpoint, dtype=dtype)
        else:
            pipe = AvatarPipeline.random(preset, seed=seed, dtype=dtype)
            bar.write(f"avatarv: NOTE: no checkpoint given: running the {preset!r} preset with untrained random "
                      "weights; the video shows noise, not a person", file=sys.stderr)
        opts = GenerationOptions(seconds=seconds, steps=steps, sampler=sampler, seed=seed,
                                 scene_image=None if scene is None else str(scene), scene_engine=scene_engine,
                                 preview_path=None if preview is None else str(preview), refine=refine,
                                 prompt=prompt or "", scene_prompt=scene_prompt,
                                 motion_path=None if motion_out is None else str(motion_out),
                                 motion_continuity=motion_continuity)
        if scales is not None:
            opts.guidance = scales
        total_s = seconds if seconds is not None else len(speech) / 16000
        cfg = pipe.cfg
        plan = ChunkPlan.for_duration(total_s, chunk_latents=cfg.chunk_latent_frames,
                                      overlap_latents=cfg.overlap_latent_frames, fps=cfg.fps)
        n_chunks = len(plan.chunks())
        bar.reset(total=n_chunks * steps)

        def progress(chunk, step):
            if bar.n == 0:
                bar.set_description("generating")
            bar.set_postfix(chunk=f"{chunk.index + 1}/{n_chunks}")
            bar.update(1)

        summary = pipe.generate(reference, speech, out, opts, progress=progress, on_phase=lambda p: phase(bar, p))
    finally:
        bar.close()
    return summary


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
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Pipeline checkpoint directory."),
    preset: str = typer.Option("tiny", "--preset", help="Preset for random weights when no checkpoint is given."),
    seconds: float = typer.Option(None, "--seconds", help="Duration (default: the speech's)."),
    steps: int = typer.Option(24, "--steps", min=1),
    sampler: str = typer.Option("overshoot", "--sampler", help="overshoot | euler"),
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
    guidance: str = typer.Option(None, "--guidance", help="Classifier-free guidance per condition, e.g. "
                                 "audio=3,ref=1.5 (ref, audio, text; default 1 each: one model pass per step; "
                                 "audio=3 alone costs three, scales that differ everywhere four)."),
    dtype: str = typer.Option(None, "--dtype", help="Compute precision: auto (bf16 where the hardware computes "
                              "it natively, fp32 elsewhere; AVATARV_DTYPE overrides auto) | bf16 | fp32."),
) -> None:
    """Generate a talking video of the person in --ref saying --audio (or --text)."""
    summary = run_generation(ref, out, audio, text, voice, checkpoint, preset, seconds, steps, sampler, seed,
                             scene, scene_engine, preview, refine, prompt, scene_prompt, motion_out, motion_continuity,
                             guidance, dtype)
    typer.echo(json.dumps(summary))


def demo(
    out: Path = typer.Option(REPO_ROOT / "out" / "demo.mp4", "--out"),
    steps: int = typer.Option(None, "--steps", help="Default: 24 with a trained checkpoint, 4 with random weights."),
    dtype: str = typer.Option(None, "--dtype", help="auto (default) | bf16 | fp32; see generate --help."),
) -> None:
    """Run generate on examples/ref.mp4 + examples/speech.wav with the bundled checkpoint."""
    ref, speech = EXAMPLES / "ref.mp4", EXAMPLES / "speech.wav"
    for path in (ref, speech):
        if not path.is_file():
            raise InputError("demo input missing (make examples writes it)", path)
    ckpt = DEFAULT_CHECKPOINT if (DEFAULT_CHECKPOINT / "pipeline.json").is_file() else None
    if ckpt is None:
        typer.echo("avatarv demo: the bundled world checkpoint is not trained yet; using tiny RANDOM weights",
                   err=True)
    summary = run_generation(ref, out, audio=speech, checkpoint=ckpt,
                             steps=steps or (24 if ckpt else 4), dtype=dtype)
    typer.echo(json.dumps(summary))
    typer.echo(f"avatarv demo: wrote {summary['out']} ({summary['seconds']:.2f} s, {summary['chunks']} chunks)")

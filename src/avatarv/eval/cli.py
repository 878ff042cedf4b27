"""``avatarv eval sync|face|quality FILE...``: the seed's metrics on single files, one JSON object per line;
``avatarv eval make-bench`` / ``run``: the world cross-scene benchmark and the runner with its HTML report.

A bad file prints ``avatarv: FILE: what is wrong`` on stderr; the other files are still evaluated and the exit
code is 2 if any failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import typer

from avatarv.errors import AvatarvError, InputError

app = typer.Typer(
    name="eval",
    help="Objective metrics: Sync-C/Sync-D, face similarity, quality (2 fps, 10 % trimmed means).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _for_each(files: list[Path], evaluate: Callable[[Path], dict]) -> None:
    """Runs ``evaluate`` on each file, printing a JSON line per success. Failures print one line each; the last
    one is raised instead (``avatarv.cli.main`` prints it and exits with 2)."""
    errors: list[AvatarvError] = []
    for path in files:
        try:
            if not path.is_file():
                raise InputError("no such file", path)
            result = evaluate(path)
        except AvatarvError as err:
            if errors:
                print(f"avatarv: {errors[-1]}", file=sys.stderr)
            errors.append(err)
            continue
        print(json.dumps({"file": str(path), **result}, allow_nan=False, default=_json_default), flush=True)
    if errors:
        raise errors[-1]


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.integer | np.floating):
        return obj.item()
    raise TypeError(type(obj).__name__)


def _finite(d: dict) -> dict:
    """NaN -> None so the JSON stays strict."""
    import math

    out = {}
    for k, v in d.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = None
        elif isinstance(v, dict):
            out[k] = _finite(v)
        elif isinstance(v, list):
            out[k] = [None if isinstance(x, float) and not math.isfinite(x) else (_finite(x) if isinstance(x, dict) else x) for x in v]
        else:
            out[k] = v
    return out


@app.command("sync")
def sync(
    files: list[Path] = typer.Argument(..., help="Videos with speech (any frame rate: read at 25 fps, audio at 16 kHz)."),
    weights: Path | None = typer.Option(None, help="SyncNet weights: the public syncnet_v2.model, our layout, or a world "
                                        "SyncNet; default: the shipped world SyncNet (avatarv/assets/eval)."),
    random_init: bool = typer.Option(False, "--random-init", help="Random SyncNet weights: smoke tests only, numbers mean nothing."),
    detector: str = typer.Option("dlib-hog", help="Face detector: dlib-hog or dlib-mmod."),
    detect_every: int = typer.Option(1, min=1, help="Detect faces every N frames (tracks interpolate between)."),
    min_track: int = typer.Option(50, min=6, help="Shortest face track in frames."),
    min_face_size: float = typer.Option(100.0, help="Smallest mean face box side in pixels (the original's 100; "
                                        "world clips at 128 px need ~25)."),
    max_seconds: float | None = typer.Option(None, help="Evaluate only the first N seconds."),
    backend: str = typer.Option("auto", help="landmark (mediapipe lip geometry vs MFCC, trained on the world, "
                                "meaningful on real faces), syncnet (--weights or the world SyncNet), auto "
                                "(syncnet when --weights is given, else landmark)."),
) -> None:
    """SyncNet offset (frames; > 0: audio leads), Sync-C (higher better) and Sync-D (lower better) per file."""
    if backend not in ("auto", "landmark", "syncnet"):
        raise InputError(f"--backend {backend}: expected auto, landmark or syncnet")
    if backend == "landmark" or (backend == "auto" and weights is None and not random_init):
        from avatarv.eval.landmark_sync import DEFAULT_WEIGHTS as LANDMARK_WEIGHTS
        from avatarv.eval.landmark_sync import evaluate_landmark_video, load_landmark_sync
        from avatarv.media import read_video

        lm_model = load_landmark_sync(weights)

        def run_landmark(path: Path) -> dict:
            max_frames = None if max_seconds is None else max(1, int(round(max_seconds * 25)))
            video = read_video(path, fps=25.0, max_frames=max_frames, require_audio=True)
            out = evaluate_landmark_video(video, lm_model, min_track=min_track).to_json()
            out.pop("source", None)
            out.update(backend="landmark", weights=str(weights or LANDMARK_WEIGHTS))
            return _finite(out)

        _for_each(files, run_landmark)
        return
    from avatarv.eval.faces import get_detector
    from avatarv.eval.sync_video import evaluate_sync_video
    from avatarv.eval.syncnet import load_syncnet
    from avatarv.eval.world_syncnet import DEFAULT_WEIGHTS, load_sync_model
    from avatarv.media import read_video

    model = load_syncnet(None) if random_init else load_sync_model(weights)
    weights_name = "random (meaningless)" if random_init else str(weights or DEFAULT_WEIGHTS)
    det = get_detector(detector)

    def run(path: Path) -> dict:
        max_frames = None if max_seconds is None else max(1, int(round(max_seconds * 25)))
        video = read_video(path, fps=25.0, max_frames=max_frames, require_audio=True)
        result = evaluate_sync_video(
            video, model, detector=det, detect_every=detect_every, min_track=min_track, min_face_size=min_face_size
        )
        out = result.to_json()
        out.pop("source", None)
        out["weights"] = weights_name
        return _finite(out)

    _for_each(files, run)


@app.command("face")
def face(
    files: list[Path] = typer.Argument(..., help="Videos to compare with the reference."),
    ref: Path = typer.Option(..., "--ref", help="Reference video or image of the identity."),
    backend: str = typer.Option("dlib", help="Identity model: dlib (default), arcface-onnx, world (world footage)."),
    model: Path | None = typer.Option(None, help="Model file for arcface-onnx (a local ArcFace ONNX)."),
    per_frame: bool = typer.Option(False, help="Include per-frame similarities."),
) -> None:
    """Face similarity to the reference: cosine of face embeddings at 2 fps, 10 % trimmed mean."""
    from avatarv.eval.identity import face_similarity, get_identity_embedder, reference_embedding

    kwargs = {}
    if backend == "arcface-onnx":
        if model is None:
            raise InputError("--backend arcface-onnx needs --model PATH (a local ArcFace ONNX file)")
        kwargs["model_path"] = model
    embedder = get_identity_embedder(backend, **kwargs)
    if not ref.is_file():
        raise InputError("no such file", ref)
    ref_source = _read_image(ref) if ref.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp", ".bmp"} else ref
    ref_emb = reference_embedding(embedder, ref_source)

    def run(path: Path) -> dict:
        result = face_similarity(ref_emb, path, embedder)
        out = result.to_json()
        out["ref"] = str(ref)
        if not per_frame:
            out.pop("per_frame")
            out.pop("frame_indices")
        return _finite(out)

    _for_each(files, run)


@app.command("quality")
def quality(
    files: list[Path] = typer.Argument(..., help="Videos to score."),
    backend: str = typer.Option("classical-nr", help="classical-nr (default; not Q-Align) or q-align."),
    weights: Path | None = typer.Option(None, help="Local Q-Align weights folder for --backend q-align."),
    per_frame: bool = typer.Option(False, help="Include per-frame scores."),
) -> None:
    """Perceptual quality on frames at 2 fps, 10 % trimmed mean (1..5, higher better; backend named)."""
    from avatarv.eval.quality import get_quality_scorer, video_quality

    scorer = get_quality_scorer(backend, weights)

    def run(path: Path) -> dict:
        out = video_quality(path, scorer)
        if not per_frame:
            out.pop("per_frame")
            out.pop("frame_indices")
        return _finite(out)

    _for_each(files, run)


def _read_image(path: Path):
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f"not a readable image ({err.__class__.__name__})", path) from err


@app.command("make-bench")
def make_bench(
    out: Path = typer.Option(..., "--out", help="Folder for the benchmark (manifest.json, refs/, driving/, scenes/)."),
    cases: int = typer.Option(70, min=3, help="Number of cases (the seed's 70; split same / cross / generated)."),
    seconds: float = typer.Option(4.0, help="Seconds per clip."),
    size: int = typer.Option(128, help="Frame size in px."),
    seed: int = typer.Option(0, help="World seed."),
) -> None:
    """The world cross-scene benchmark: held-out identities, same / cross / generated target scenes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from avatarv.eval.world_bench import make_world_bench

    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", out)
    with Progress(TextColumn("make-bench"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task("cases", total=cases)
        path = make_world_bench(out, cases, seconds, size, seed, progress=lambda k: bar.advance(task, k))
    typer.echo(str(path))


@app.command("run")
def run_bench(
    bench: Path = typer.Option(..., "--bench", help="Benchmark folder with manifest.json."),
    system: str = typer.Option("passthrough", help="passthrough (ground truth), avatarv (our pipeline), "
                               "avatarv-image-ref (the image-reference ablation), vae-roundtrip (the driving clip through "
                               "--checkpoint's VAE: the most any DiT on it can score)."),
    out: Path = typer.Option(..., "--out", help="Output folder: cases/*.json, summary.json, report/index.html."),
    checkpoint: Path | None = typer.Option(None, help="Pipeline checkpoint folder for the avatarv systems."),
    preset: str = typer.Option("tiny", help="Model preset for random pipeline weights (no --checkpoint)."),
    steps: int | None = typer.Option(None, help="Sampling steps for the avatarv systems."),
    max_seconds: float | None = typer.Option(None, help="Generate at most this many seconds per case (avatarv systems)."),
    motion_continuity: bool = typer.Option(True, "--motion-continuity/--no-motion-continuity",
                                           help="avatarv systems: start each chunk's motion from the previous chunk's."),
    sync_weights: Path | None = typer.Option(None, help="SyncNet weights (default: the shipped world SyncNet)."),
    no_sync: bool = typer.Option(False, "--no-sync", help="Skip Sync-C/Sync-D."),
    face_backend: str = typer.Option("auto", help="Identity model: auto (world for world benchmarks, else dlib), "
                                     "dlib, arcface-onnx, world."),
    face_model: Path | None = typer.Option(None, help="Model file for --face-backend arcface-onnx."),
    face_boxes: str = typer.Option("auto", help="Where identity and SyncNet look for the face: detect (in the "
                                   "output), driving (the driving clip's faces at the same frames), auto (driving "
                                   "for world benchmarks, whose scene image fixes the framing; else detect)."),
    quality_backend: str = typer.Option("classical-nr", help="classical-nr or q-align."),
    quality_weights: Path | None = typer.Option(None, help="Q-Align weights folder."),
    behaviour: str = typer.Option("auto", help="Behaviour similarity (world analyzer): auto (world benchmarks), on, off."),
    min_face_size: float | None = typer.Option(None, help="Smallest face for SyncNet tracks in px (default: the "
                                               "benchmark's eval_options, else the original's 100)."),
    report: bool = typer.Option(True, help="Write report/index.html."),
    restart: bool = typer.Option(False, "--restart", help="Generate every case again (default: cases this system "
                                 "already finished in --out keep their videos and are scored again)."),
) -> None:
    """Runs a system on a cross-scene benchmark; writes per-case JSON, the summary (printed) and an HTML report.
    Resumable: run it again after a kill and finished cases are not generated again."""
    from avatarv.eval.benchmark import (
        Manifest,
        behaviour_metric,
        face_metric,
        get_system,
        quality_metric,
        run_benchmark,
        sync_metric,
    )
    from avatarv.eval.identity import get_identity_embedder
    from avatarv.eval.quality import get_quality_scorer

    manifest = Manifest.load(bench)
    world = bool(manifest.eval_options.get("world"))
    if face_backend == "auto":
        face_backend = "world" if world else "dlib"
    kwargs = {"model_path": face_model} if face_backend == "arcface-onnx" else {}
    if face_boxes == "auto":
        face_boxes = "driving" if world else "detect"
    metrics = [face_metric(get_identity_embedder(face_backend, **kwargs), boxes=face_boxes), quality_metric(get_quality_scorer(quality_backend, quality_weights))]
    if not no_sync:
        from avatarv.eval.world_syncnet import DEFAULT_WEIGHTS, load_sync_model

        mfs = min_face_size if min_face_size is not None else float(manifest.eval_options.get("min_face_size", 100.0))
        metrics.append(sync_metric(load_sync_model(sync_weights), weights=str(sync_weights or DEFAULT_WEIGHTS),
                                   min_face_size=mfs, boxes=face_boxes))
    if behaviour == "on" or (behaviour == "auto" and world):
        metrics.append(behaviour_metric())
    system_kwargs = {} if system == "passthrough" else {"checkpoint": checkpoint, "preset": preset, "steps": steps,
                                                             "max_seconds": max_seconds,
                                                             "motion_continuity": motion_continuity}
    summary = run_benchmark(manifest, get_system(system, **system_kwargs), out, metrics, report=report,
                            resume=not restart)
    print(json.dumps(_finite(summary["summary"]), indent=2))
    if report:
        print(f"report: {summary['report']}", file=sys.stderr)


def _timestamped(line: str) -> None:
    import time

    print(time.strftime("%H:%M:%S"), line, flush=True)


@app.command("train-syncnet")
def train_syncnet(
    out: str = typer.Option("runs/syncnet", "--out", help="Work folder (data, checkpoint.pt, figures.json); "
                            "run again to resume."),
    weights: str = typer.Option(None, "--weights", help="Where the trained network goes "
                                "(default: the shipped src/avatarv/assets/eval/world_syncnet.safetensors)."),
    clips: int = typer.Option(240, "--clips", help="Training clips."),
    identities: int = typer.Option(120, "--identities", help="Training identities."),
    scenes: int = typer.Option(60, "--scenes", help="Training scenes."),
    test_clips: int = typer.Option(24, "--test-clips", help="Held-out clips (identities and scenes never trained on)."),
    seconds: float = typer.Option(4.0, "--seconds", help="Seconds per clip."),
    steps: int = typer.Option(2500, "--steps"),
    batch_clips: int = typer.Option(8, "--batch-clips", help="Clips per batch."),
    run: int = typer.Option(12, "--run", help="Consecutive video windows per clip in a batch."),
    width: int = typer.Option(32, "--width"),
    embed_dim: int = typer.Option(128, "--embed-dim"),
    audio_width: int = typer.Option(16, "--audio-width"),
    lr: float = typer.Option(2e-3, "--lr"),
    threads: int = typer.Option(1, "--threads"),
    seed: int = typer.Option(0, "--seed"),
    checkpoint_every: float = typer.Option(180.0, "--checkpoint-every", help="Seconds between checkpoints."),
    stop_after: int = typer.Option(None, "--stop-after", help="checkpoint and stop at this step (resume later)"),
) -> None:
    """Train the world SyncNet (one thread, checkpointed). Same as ``python -m avatarv.eval.train_syncnet``
    (make train-syncnet)."""
    from avatarv.eval.train_syncnet import SyncNetTrainConfig, train

    cfg = SyncNetTrainConfig(out=out, clips=clips, identities=identities, scenes=scenes, test_clips=test_clips,
                             seconds=seconds, steps=steps, batch_clips=batch_clips, run=run, width=width,
                             embed_dim=embed_dim, audio_width=audio_width, lr=lr, threads=threads, seed=seed,
                             checkpoint_every=checkpoint_every, stop_after=stop_after)
    if weights is not None:
        cfg.weights = weights
    train(cfg, log=_timestamped)


@app.command("train-identity")
def train_identity(
    out: str = typer.Option("runs/identity", "--out", help="Work folder (data, checkpoint.pt, figures.json); "
                            "run again to resume."),
    weights: str = typer.Option(None, "--weights", help="Where the trained network goes "
                                "(default: the shipped src/avatarv/assets/eval/world_identity.safetensors)."),
    identities: int = typer.Option(400, "--identities", help="Training identities."),
    scenes: int = typer.Option(200, "--scenes", help="Training scenes."),
    scenes_per_id: int = typer.Option(6, "--scenes-per-id"),
    frames_per_scene: int = typer.Option(4, "--frames-per-scene"),
    test_ids: int = typer.Option(40, "--test-ids", help="Held-out identities of the verification AUC."),
    steps: int = typer.Option(1200, "--steps"),
    batch: int = typer.Option(128, "--batch"),
    width: int = typer.Option(32, "--width"),
    embed_dim: int = typer.Option(128, "--embed-dim"),
    scale: float = typer.Option(30.0, "--scale", help="ArcFace scale."),
    margin: float = typer.Option(0.3, "--margin", help="ArcFace angular margin."),
    lr: float = typer.Option(3e-3, "--lr"),
    threads: int = typer.Option(1, "--threads"),
    seed: int = typer.Option(0, "--seed"),
    checkpoint_every: float = typer.Option(180.0, "--checkpoint-every", help="Seconds between checkpoints."),
    stop_after: int = typer.Option(None, "--stop-after", help="checkpoint and stop at this step (resume later)"),
) -> None:
    """Train the world identity embedder (ArcFace loss, one thread). Same as
    ``python -m avatarv.eval.train_identity`` (make train-identity)."""
    from avatarv.eval.train_identity import IdentityTrainConfig, train

    cfg = IdentityTrainConfig(out=out, identities=identities, scenes=scenes, scenes_per_id=scenes_per_id,
                              frames_per_scene=frames_per_scene, test_ids=test_ids, steps=steps, batch=batch,
                              width=width, embed_dim=embed_dim, scale=scale, margin=margin, lr=lr, threads=threads,
                              seed=seed, checkpoint_every=checkpoint_every, stop_after=stop_after)
    if weights is not None:
        cfg.weights = weights
    train(cfg, log=_timestamped)

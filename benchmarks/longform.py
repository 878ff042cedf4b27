"""Long-form generation: memory independent of duration, speed, and drift with/without the global anchor.

    python benchmarks/longform.py [--quick] [--checkpoint DIR]

- ``peak_rss_ratio_60s_vs_10s``: peak resident memory of a 60 s generation over a 10 s one, each in a fresh
  process (target ≤ 1.1: chunks are streamed to disk, nothing grows with duration);
- ``seconds_per_output_second``: wall time per second of video (10 s run);
- drift: identity-embedding distance (1 − cosine; the world identity embedder, dlib's face recogniser with
  ``--identity dlib``) between the last chunk's and the first chunk's frames, with and without the global
  appearance anchor; also each against the reference. Colour drift: ΔE between the mean L*a*b* colour of
  the last and of the first chunk (and the change in lightness), with and without the anchor.
- ``seconds_per_output_second_by_dtype``: the same job on a short clip (``--dtype-seconds``, 2 s) in fp32 and
  in bf16, each in a fresh process, with the machine's capability (``avatarv.precision``): which is faster
  here, and whether the precision policy's default (``auto``, used by the runs above) is that one.
Without a trained checkpoint it runs the tiny preset with random weights: memory and speed figures hold,
the drift figures then say nothing about identity. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(seconds: float, out: str, anchor: bool, checkpoint: str | None, steps: int, dtype: str,
          colour: float = 0.0) -> None:
    from avatarv.media import read_audio, read_video
    from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions
    from avatarv.precision import dtype_name
    from avatarv.resources import example

    if checkpoint:
        pipe = AvatarPipeline.from_checkpoint(checkpoint, dtype=dtype)
    else:
        pipe = AvatarPipeline.random("tiny", seed=0, dtype=None if dtype == "auto" else dtype)
    speech = read_audio(example("speech.wav"))
    start = time.perf_counter()
    summary = pipe.generate(read_video(example("ref.mp4")), speech, out,
                            GenerationOptions(seconds=seconds, steps=steps, anchor=anchor, colour_correction=colour))
    summary["wall_s"] = time.perf_counter() - start
    summary["chunk_frames"] = (pipe.cfg.chunk_latent_frames - 1) * 4 + 1
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary["dtype"] = dtype_name(pipe.dtype)
    print(json.dumps(summary))


def run_child(seconds: float, out: str, anchor: bool = True, checkpoint: str | None = None, steps: int = 2,
              dtype: str = "auto", colour: float = 0.0) -> dict:
    args = [sys.executable, __file__, "--child", str(seconds), "--out", out, "--steps", str(steps), "--dtype", dtype,
            "--colour-correction", str(colour)]
    args += ["--no-anchor"] if not anchor else []
    if checkpoint:
        args += ["--checkpoint", checkpoint]
    res = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def identity_of(embedder, frames) -> np.ndarray | None:  # noqa: F821
    """Normalised mean identity embedding of the frames with a face (every 5th frame)."""
    import numpy as np

    from avatarv.eval.identity import normalize

    embs = [e for e in (embedder.embed_largest(f) for f in frames[::5]) if e is not None]
    return normalize(normalize(np.stack(embs)).mean(0)) if embs else None


def mean_lab(frames) -> np.ndarray:  # noqa: F821
    """Mean CIE L*a*b* colour of the frames ``[T, H, W, 3]`` uint8 RGB (every 5th frame)."""
    import cv2
    import numpy as np

    return np.mean([cv2.cvtColor(f.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3).mean(0)
                    for f in frames[::5]], axis=0)


def drift(path: str, chunk_frames: int, embedder) -> dict:
    """Identity drift: 1 − cos between the identity of the first and of the last chunk (and of each to the
    reference; NaN where no face is found). Colour drift: ΔE (CIE76) between the mean L*a*b* colour of the
    first and of the last chunk, and the last chunk's mean lightness change."""
    import numpy as np

    from avatarv.media import read_video
    from avatarv.resources import example

    frames = read_video(path).frames
    ref = identity_of(embedder, read_video(example("ref.mp4")).frames)
    first_f, last_f = frames[:chunk_frames], frames[-chunk_frames:]
    first, last = identity_of(embedder, first_f), identity_of(embedder, last_f)
    d = lambda a, b: float("nan") if a is None or b is None else round(float(1 - np.dot(a, b)), 4)  # noqa: E731
    lab_first, lab_last = mean_lab(first_f), mean_lab(last_f)
    return {"last_vs_first": d(last, first), "first_vs_ref": d(first, ref), "last_vs_ref": d(last, ref),
            "colour_de_last_vs_first": round(float(np.linalg.norm(lab_last - lab_first)), 2),
            "lightness_last_minus_first": round(float(lab_last[0] - lab_first[0]), 2)}


def save_strips(tmp: str, out: str, runs: list[str]) -> None:
    """One row per long run: a frame every 4 s, side by side (``out`` PNG)."""
    import numpy as np
    from PIL import Image

    from avatarv.media import read_video

    rows = []
    for name in runs:
        frames = read_video(f"{tmp}/{name}.mp4").frames
        rows.append(np.concatenate(list(frames[::100]), axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(out)
    print(f"{out}: rows = {', '.join(runs)}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="10 s vs 20 s instead of 10 s vs 60 s")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--child", type=float, default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--no-anchor", action="store_true")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default 2 random, 12 trained)")
    p.add_argument("--identity", default="world", help="identity backend for drift: world | dlib")
    p.add_argument("--dtype", default="auto", help="precision of the main runs: auto (the policy) | fp32 | bf16")
    p.add_argument("--colour-correction", type=float, default=0.0, help="also run the long job with the colour "
                   "anchor at this strength (GenerationOptions.colour_correction; 0: skip that run)")
    p.add_argument("--frames", default=None, help="write a PNG strip of every long run (one frame per 4 s) here")
    p.add_argument("--only-long", action="store_true", help="skip the 10 s, no-anchor and dtype runs (drift only)")
    p.add_argument("--dtype-seconds", type=float, default=2.0, help="clip length of the fp32-vs-bf16 runs (0: skip)")
    args = p.parse_args()
    steps = args.steps or (12 if args.checkpoint else 2)
    if args.child is not None:
        child(args.child, args.out, not args.no_anchor, args.checkpoint, steps, args.dtype, args.colour_correction)
        return
    from avatarv.precision import capability

    machine = capability()
    print(f"machine: {machine}", flush=True)
    long_s = 20.0 if args.quick else 60.0
    kw = {"checkpoint": args.checkpoint, "steps": steps, "dtype": args.dtype}
    with tempfile.TemporaryDirectory() as tmp:
        by_dtype = {}
        for dtype in ("fp32", "bf16") if args.dtype_seconds > 0 and not args.only_long else ():
            r = run_child(args.dtype_seconds, f"{tmp}/{dtype}.mp4", checkpoint=args.checkpoint, steps=steps, dtype=dtype)
            by_dtype[dtype] = round(r["wall_s"] / args.dtype_seconds, 2)
            print(f"{dtype}: {by_dtype[dtype]} s per output second ({args.dtype_seconds:.0f} s clip)", flush=True)
        short = None if args.only_long else run_child(10.0, f"{tmp}/short.mp4", **kw)
        if short:
            print(f"10 s: {short['wall_s']:.1f} s wall, peak RSS {short['peak_rss_mb']:.0f} MB", flush=True)
        long = run_child(long_s, f"{tmp}/long.mp4", **kw)
        print(f"{long_s:.0f} s: {long['wall_s']:.1f} s wall, peak RSS {long['peak_rss_mb']:.0f} MB", flush=True)
        if not args.only_long:
            run_child(long_s, f"{tmp}/long_noanchor.mp4", anchor=False, **kw)
        if args.colour_correction > 0:
            run_child(long_s, f"{tmp}/long_colour.mp4", colour=args.colour_correction, **kw)
        from avatarv.eval.identity import get_identity_embedder

        embedder = get_identity_embedder(args.identity)
        chunk_frames = long["chunk_frames"]
        result = {
            "long_seconds": long_s,
            "steps": steps,
            "drift_with_anchor": drift(f"{tmp}/long.mp4", chunk_frames, embedder),
            "chunks_long": long["chunks"],
            "random_weights": long["random_weights"],
            "dtype": long["dtype"],
            "machine": machine,
        }
        if short:
            result.update(peak_rss_ratio_60s_vs_10s=round(long["peak_rss_mb"] / short["peak_rss_mb"], 3),
                          peak_rss_mb_10s=round(short["peak_rss_mb"], 1),
                          seconds_per_output_second=round(short["wall_s"] / 10.0, 2),
                          drift_without_anchor=drift(f"{tmp}/long_noanchor.mp4", chunk_frames, embedder))
        if args.colour_correction > 0:
            result.update(colour_correction=args.colour_correction,
                          drift_with_anchor_and_colour=drift(f"{tmp}/long_colour.mp4", chunk_frames, embedder))
        if args.frames:
            save_strips(tmp, args.frames, ["long", "long_colour"] if args.colour_correction > 0 else ["long"])
        if by_dtype:
            faster = min(by_dtype, key=by_dtype.get)
            result.update(seconds_per_output_second_by_dtype=by_dtype, dtype_seconds=args.dtype_seconds,
                          bf16_vs_fp32=round(by_dtype["fp32"] / by_dtype["bf16"], 3), faster_dtype=faster,
                          policy_dtype=machine["dtype"], policy_is_faster=faster == machine["dtype"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()

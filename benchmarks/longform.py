"""Long-form generation: memory independent of duration, speed, and drift with/without the global anchor.

    python benchmarks/longform.py [--quick] [--checkpoint DIR]

- ``peak_rss_ratio_60s_vs_10s``: peak resident memory of a 60 s generation over a 10 s one, each in a fresh
  process (target ≤ 1.1: chunks are streamed to disk, nothing grows with duration);
- ``seconds_per_output_second``: wall time per second of video (10 s run);
- drift: distance between the last chunk's and the first chunk's appearance descriptor (the image engine's
  frame embedding of the mean frame), with and without the global appearance anchor.
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


def child(seconds: float, out: str, anchor: bool, checkpoint: str | None) -> None:
    from avatarv.media import read_audio, read_video
    from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions

    pipe = AvatarPipeline.from_checkpoint(checkpoint) if checkpoint else AvatarPipeline.random("tiny", seed=0)
    speech = read_audio(ROOT / "examples" / "speech.wav")
    start = time.perf_counter()
    summary = pipe.generate(read_video(ROOT / "examples" / "ref.mp4"), speech, out,
                            GenerationOptions(seconds=seconds, steps=2, anchor=anchor))
    summary["wall_s"] = time.perf_counter() - start
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(summary))


def run_child(seconds: float, out: str, anchor: bool = True, checkpoint: str | None = None) -> dict:
    args = [sys.executable, __file__, "--child", str(seconds), "--out", out] + (["--no-anchor"] if not anchor else [])
    if checkpoint:
        args += ["--checkpoint", checkpoint]
    res = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def drift(path: str, chunk_frames: int) -> float:
    import numpy as np

    from avatarv.media import read_video
    from avatarv.pipelines.image_engine import frame_embeddings

    frames = read_video(path).frames
    first = frames[:chunk_frames].mean(0).astype(np.uint8)[None]
    last = frames[-chunk_frames:].mean(0).astype(np.uint8)[None]
    e = frame_embeddings(np.concatenate([first, last]))
    return float(np.linalg.norm(e[0] - e[1]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="10 s vs 20 s instead of 10 s vs 60 s")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--child", type=float, default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--no-anchor", action="store_true")
    args = p.parse_args()
    if args.child is not None:
        child(args.child, args.out, not args.no_anchor, args.checkpoint)
        return
    long_s = 20.0 if args.quick else 60.0
    with tempfile.TemporaryDirectory() as tmp:
        short = run_child(10.0, f"{tmp}/short.mp4", checkpoint=args.checkpoint)
        print(f"10 s: {short['wall_s']:.1f} s wall, peak RSS {short['peak_rss_mb']:.0f} MB", flush=True)
        long = run_child(long_s, f"{tmp}/long.mp4", checkpoint=args.checkpoint)
        print(f"{long_s:.0f} s: {long['wall_s']:.1f} s wall, peak RSS {long['peak_rss_mb']:.0f} MB", flush=True)
        run_child(long_s, f"{tmp}/long_noanchor.mp4", anchor=False, checkpoint=args.checkpoint)
        from avatarv.config import get_preset
        from avatarv.pipelines.chunks import latents_to_frames

        chunk_frames = latents_to_frames(get_preset("tiny").chunk_latent_frames)
        result = {
            "long_seconds": long_s,
            "peak_rss_ratio_60s_vs_10s": round(long["peak_rss_mb"] / short["peak_rss_mb"], 3),
            "peak_rss_mb_10s": round(short["peak_rss_mb"], 1),
            "seconds_per_output_second": round(short["wall_s"] / 10.0, 2),
            "drift_with_anchor": round(drift(f"{tmp}/long.mp4", chunk_frames), 4),
            "drift_without_anchor": round(drift(f"{tmp}/long_noanchor.mp4", chunk_frames), 4),
            "chunks_long": long["chunks"],
            "random_weights": long["random_weights"],
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

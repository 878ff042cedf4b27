"""Data-engine throughput: the prefilter pipeline against pure decoding of the same videos.

    python benchmarks/curation.py [--clips 8] [--seconds 6] [--size 256] [--workers 2]

Input: world talking clips (h264 + AAC, 25 fps) made once into a cache folder. Measured, each with the same
number of worker processes:

- decode only: ``read_video`` of every file at 25 fps (a process pool, nothing else);
  (both pools are started and their workers have imported avatarv before the clock starts)
- prefilter pipeline: the engine (plan, SQLite, atomic commits) running ``Prefilter`` (frame difference +
  pHash, static/choppy) straight on the source files through the local executor;
- full filter pipeline for reference (normalise, prefilter, scenes, visual, faces, OCR, lip sync, dedup).

The last line is JSON: ``clips_per_s`` and ``pipeline_fps`` of the prefilter pipeline, ``decode_only_fps``,
``fraction_of_decode`` = pipeline_fps / decode_only_fps (target >= 0.5), and the filter pipeline's figures.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path


def _decode(path: str) -> int:
    from avatarv.media import read_video

    return read_video(path, fps=25.0).num_frames


def _warm(_: int) -> int:
    import avatarv.data.curation.executors  # noqa: F401  (what a pipeline worker imports)
    import avatarv.media  # noqa: F401

    return 0


def decode_fps(paths: list[Path], workers: int) -> tuple[float, int]:
    with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_warm, range(workers)))  # worker start-up is not decoding
        t0 = time.perf_counter()
        frames = sum(pool.map(_decode, [str(p) for p in paths]))
        return frames / (time.perf_counter() - t0), frames


def pipeline_run(stages, inp: Path, workers: int) -> tuple[float, float]:
    from avatarv.data.curation.engine import Engine
    from avatarv.data.curation.executors import LocalExecutor
    from avatarv.data.curation.pipeline import Pipeline

    out = Path(tempfile.mkdtemp(prefix="curbench-"))
    ex = LocalExecutor(workers)
    try:
        list(ex._pool.map(_warm, range(workers)))  # worker start-up, as for decoding
        engine = Engine(Pipeline(stages), inp, out)
        report = engine.run(ex)
        engine.close()
        assert not report.failures, report.failures
        return report.seconds, len(engine.items)
    finally:
        ex.shutdown()
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "avatarv-curation-bench")
    ap.add_argument("--skip-filters", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from avatarv.data.curation.stages import PRESETS
    from avatarv.data.curation.stages.prefilter import Prefilter
    from avatarv.data.curation.worldset import make_clip_set

    inp = args.cache / f"clips{args.clips}_{args.seconds}s_{args.size}px"
    paths = make_clip_set(inp, n=args.clips, seconds=args.seconds, size=args.size)
    _decode(str(paths[0]))  # warm the page cache
    dec_fps, frames = decode_fps(paths, args.workers)
    print(f"decode only: {frames} frames, {dec_fps:.0f} frames/s ({args.workers} processes)")
    secs, n = pipeline_run([Prefilter(inputs=())], inp, args.workers)
    pipe_fps = frames / secs
    print(f"prefilter pipeline: {n} clips in {secs:.2f} s, {pipe_fps:.0f} frames/s, "
          f"{pipe_fps / dec_fps:.2f} of decode")
    result = {"clips": n, "frames": frames, "workers": args.workers, "clips_per_s": round(n / secs, 3),
              "decode_only_fps": round(dec_fps, 1), "pipeline_fps": round(pipe_fps, 1),
              "fraction_of_decode": round(pipe_fps / dec_fps, 3)}
    if not args.skip_filters:
        fsecs, _ = pipeline_run(PRESETS["filters"](), inp, args.workers)
        print(f"filter pipeline (9 stages): {fsecs:.1f} s, {frames / fsecs:.1f} frames/s")
        result.update({"filters_clips_per_s": round(n / fsecs, 3), "filters_fps": round(frames / fsecs, 1)})
    print(json.dumps(result))


if __name__ == "__main__":
    main()

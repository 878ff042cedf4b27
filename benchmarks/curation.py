"""Data-engine throughput: the prefilter pipeline against pure decoding, and the filter and full presets.

    python benchmarks/curation.py [--clips 8] [--seconds 6] [--size 256] [--workers 2] [--skip-filters] [--skip-full]

Input: world talking clips (h264 + AAC, 25 fps) made once into a cache folder. Measured, each with the same
number of worker processes (the local executor; all pools are started and their workers have imported
avatarv before the clock starts):

- decode only: ``read_video`` of every file at 25 fps (a process pool, nothing else);
- prefilter pipeline: the engine (plan, SQLite, atomic commits, heartbeats) running ``Prefilter`` (frame
  difference + pHash, static/choppy) straight on the source files: ``fraction_of_decode`` = its frames/s over
  decode-only frames/s (target >= 0.5);
- the ``filters`` preset as it stands when run (normalise, prefilter, scenes, visual, faces, OCR, lip sync,
  dedup, and whatever stages the preset gained since);
- the ``full`` preset as it stands (filters + smart clipping, tiers, speech, captions, identity, identity
  graph, shards with the bundled VAE and UMT5, ...) on an identity set (``clips`` clips: ``clips // 2``
  people in 2 scenes each, so the identity graph has cross-scene pairs and shards are written): clips/s and
  the task-seconds of each stage.

The last line is JSON with the machine (``avatarv.precision.capability``) and every figure.
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


def pipeline_run(stages, inp: Path, workers: int) -> tuple[float, int, dict]:
    """(seconds, clips, {stage: {"done", "unavailable", "task_seconds"}}) of one engine run from scratch."""
    from collections import defaultdict

    from avatarv.data.curation.engine import Engine
    from avatarv.data.curation.executors import LocalExecutor
    from avatarv.data.curation.pipeline import Pipeline

    out = Path(tempfile.mkdtemp(prefix="curbench-"))
    ex = LocalExecutor(workers)
    try:
        ex.warm()  # worker start-up, as for decoding
        engine = Engine(Pipeline(stages), inp, out)
        report = engine.run(ex)
        assert not report.failures, [(t.stage, t.item, t.error) for t in report.failures]
        per_stage: dict = defaultdict(lambda: {"done": 0, "unavailable": 0, "task_seconds": 0.0})
        for row in engine.store.rows():
            st = per_stage[row["stage"]]
            st[row["status"]] = st.get(row["status"], 0) + 1
            st["task_seconds"] = round(st["task_seconds"] + (row["seconds"] or 0.0), 2)
            if row["stage"] == "shards" and row["status"] == "done":  # what the run produced for training
                st["items"] = engine.store.load_artifact("shards", row["item"], row["key"]).values["items"]
        engine.close()
        return report.seconds, len(engine.items), dict(per_stage)
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
    ap.add_argument("--skip-full", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from avatarv.data.curation.stages import PRESETS
    from avatarv.data.curation.stages.prefilter import Prefilter
    from avatarv.data.curation.worldset import make_clip_set, make_identity_set
    from avatarv.precision import capability

    inp = args.cache / f"clips{args.clips}_{args.seconds}s_{args.size}px"
    paths = make_clip_set(inp, n=args.clips, seconds=args.seconds, size=args.size)
    _decode(str(paths[0]))  # warm the page cache
    dec_fps, frames = decode_fps(paths, args.workers)
    print(f"decode only: {frames} frames, {dec_fps:.0f} frames/s ({args.workers} processes)")
    secs, n, _ = pipeline_run([Prefilter(inputs=())], inp, args.workers)
    pipe_fps = frames / secs
    print(f"prefilter pipeline: {n} clips in {secs:.2f} s, {pipe_fps:.0f} frames/s, "
          f"{pipe_fps / dec_fps:.2f} of decode")
    result = {"machine": capability(), "clips": n, "frames": frames, "seconds_per_clip": args.seconds,
              "size": args.size, "workers": args.workers, "clips_per_s": round(n / secs, 3),
              "decode_only_fps": round(dec_fps, 1), "pipeline_fps": round(pipe_fps, 1),
              "fraction_of_decode": round(pipe_fps / dec_fps, 3)}
    if not args.skip_filters:
        stages = PRESETS["filters"]()
        fsecs, _, per = pipeline_run(stages, inp, args.workers)
        print(f"filters preset ({len(stages)} stages): {fsecs:.1f} s, {n / fsecs:.3f} clips/s, "
              f"{frames / fsecs:.1f} frames/s")
        result.update({"filters_stages": [s.name for s in stages], "filters_clips_per_s": round(n / fsecs, 3),
                       "filters_fps": round(frames / fsecs, 1), "filters_stage_seconds": per})
    if not args.skip_full:
        people = max(args.clips // 2, 2)
        ident = args.cache / f"identity{people}x2_{args.seconds}s_{args.size}px"
        ipaths = make_identity_set(ident, identities=people, scenes=2, seconds=args.seconds, size=args.size)
        stages = PRESETS["full"]()
        usecs, un, per = pipeline_run(stages, ident, args.workers)
        print(f"full preset ({len(stages)} stages): {un} clips in {usecs:.1f} s, {un / usecs:.3f} clips/s")
        for name, st in per.items():
            print(f"  {name:>16}  task-seconds {st['task_seconds']:8.1f}  done {st.get('done', 0):3d}  "
                  f"unavailable {st.get('unavailable', 0):3d}" + (f"  items {st['items']}" if "items" in st else ""))
        result.update({"full_stages": [s.name for s in stages], "full_clips": len(ipaths),
                       "full_clips_per_s": round(un / usecs, 4), "full_seconds": round(usecs, 1),
                       "full_stage_seconds": per})
    print(json.dumps(result))


if __name__ == "__main__":
    main()

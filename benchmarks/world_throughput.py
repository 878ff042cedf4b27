"""World throughput: seconds of talking-head video (speech + render + mp4 encode) made per second of wall time.

    python benchmarks/world_throughput.py [--sizes 128 256] [--seconds 8] [--repeats 3]

Prints one line per size and a JSON line; the figure is the best of ``repeats`` (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from avatarv.world import make_clip


def measure(size: int, seconds: float, repeats: int) -> dict:
    best = {"total": float("inf")}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            clip = make_clip(identity_id=k, scene_id=k, seconds=seconds, size=size, seed=0)
            t1 = time.perf_counter()
            clip.save(Path(tmp) / f"c{k}.mp4")
            t2, c2 = time.perf_counter(), time.process_time()
            if t2 - t0 < best["total"]:
                best = {"total": t2 - t0, "make": t1 - t0, "encode": t2 - t1, "cpu": c2 - c0}
    n = int(round(seconds * 25))
    return {
        "size": size,
        "seconds": seconds,
        "x_realtime": seconds / best["total"],
        "x_realtime_without_encode": seconds / best["make"],
        "ms_per_frame": 1000 * best["make"] / n,
        "encode_s": best["encode"],
        # CPU seconds of this process (espeak-ng runs in a child and is not counted): robust to a busy machine
        "x_realtime_cpu": seconds / best["cpu"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rows = [measure(s, args.seconds, args.repeats) for s in args.sizes]
    for r in rows:
        print(f"{r['size']:4d} px: {r['x_realtime']:5.1f}x real time with audio + encode (wall), "
              f"{r['x_realtime_cpu']:5.1f}x per CPU second; {r['ms_per_frame']:.2f} ms/frame render+speech, "
              f"encode {r['encode_s']:.2f} s")
    print(json.dumps({"benchmark": "world_throughput", "results": rows}))


if __name__ == "__main__":
    main()

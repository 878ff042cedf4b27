"""Does a trained model read its reference video? Output change when the reference is swapped, against the
change a different noise seed makes.

    python benchmarks/reference_sensitivity.py --checkpoint checkpoints/world-small [--bench out/bench16]
        [--cases 4] [--seconds 4] [--steps 12]

On cross / generated-scene cases of the world benchmark (the scene image already shows the case's person,
so identity needs no reference; what the reference adds is behaviour) each case is generated three times:
``a`` (its own reference, seed 0), ``b`` (another identity's reference, seed 0) and ``c`` (its own
reference, seed 1). ``d_ref`` = mean |a - b| and ``d_seed`` = mean |a - c| over the frames after the first
(pixels in [0, 1]). ``ratio = d_ref / d_seed``: 0 means the output does not depend on the reference video
at all, 1 means swapping it matters as much as the noise. Ends with one JSON line. Makes the benchmark
(``avatarv eval make-bench``: 18 cases, 4 s) when ``--bench`` does not exist.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np


def mean_abs_diff(a: Path, b: Path) -> float:
    from avatarv.media import read_video

    x, y = read_video(a).frames, read_video(b).frames
    n = min(len(x), len(y))
    return float(np.abs(x[1:n].astype(np.float32) - y[1:n].astype(np.float32)).mean() / 255.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--bench", type=Path, default=Path("out/bench16"))
    ap.add_argument("--cases", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--steps", type=int, default=12)
    args = ap.parse_args()

    from tqdm import tqdm

    from avatarv.eval.benchmark import Manifest
    from avatarv.eval.systems import PipelineSystem

    if not (args.bench / "manifest.json").is_file():
        from avatarv.eval.world_bench import make_world_bench

        make_world_bench(args.bench, 18, 4.0, 128, 0)
    bench = Manifest.load(args.bench)
    cases = [c for c in bench.cases if c.scene != "same"][: args.cases]
    if len(cases) < 2:
        raise SystemExit("reference_sensitivity: needs at least 2 cross / generated cases")
    systems = {s: PipelineSystem(checkpoint=args.checkpoint, steps=args.steps, seed=s, max_seconds=args.seconds)
               for s in (0, 1)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, case in enumerate(tqdm(cases, desc="reference sensitivity")):
            donor = cases[(k + 1) % len(cases)]
            d = Path(tmp) / case.case_id
            for sub in ("a", "b", "c"):
                (d / sub).mkdir(parents=True)
            a = systems[0].generate(case, d / "a")
            b = systems[0].generate(replace(case, reference=donor.reference), d / "b")
            c = systems[1].generate(case, d / "c")
            d_ref, d_seed = mean_abs_diff(a, b), mean_abs_diff(a, c)
            rows.append({"case": case.case_id, "donor": donor.case_id, "d_ref": round(d_ref, 5),
                         "d_seed": round(d_seed, 5), "ratio": round(d_ref / max(d_seed, 1e-9), 3)})
            print(rows[-1])
    ratio = float(np.mean([r["ratio"] for r in rows]))
    print(json.dumps({"checkpoint": str(args.checkpoint), "cases": len(rows), "steps": args.steps,
                      "seconds": args.seconds, "mean_ratio": round(ratio, 3), "rows": rows}))


if __name__ == "__main__":
    main()

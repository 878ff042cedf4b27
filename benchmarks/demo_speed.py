"""The demo's inputs through the teacher (24 steps, overshoot) and the distilled student (its own sampling), each
with the full and the tiny decoder, alternating in one process (same threads): wall seconds per output second and
the chunk loop's phases. Ends with one JSON line (CPU named).

    python benchmarks/demo_speed.py [--teacher checkpoints/world-small] [--student checkpoints/world-small-distilled]

Both checkpoints need a ``tiny_decoder/`` folder (a distilled export copies the teacher's; for an older export,
copy ``checkpoints/world-small/tiny_decoder`` into it). A missing student is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", type=Path, default=Path("checkpoints/world-small"))
    ap.add_argument("--student", type=Path, default=Path("checkpoints/world-small-distilled"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/demo-speed"))
    args = ap.parse_args()

    import torch

    from avatarv.diffusion import GuidanceScales
    from avatarv.media import read_audio, read_video
    from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions
    from avatarv.precision import cpu_model
    from avatarv.resources import example

    ref, speech = read_video(example("ref.mp4")), read_audio(example("speech.wav"))
    args.out.mkdir(parents=True, exist_ok=True)
    systems = [("teacher", args.teacher)]
    if (args.student / "pipeline.json").is_file():
        systems.append(("student", args.student))
    else:
        print(f"no student at {args.student}: teacher only", file=sys.stderr)
    rows = {}
    for name, ckpt in systems:
        sampling = json.loads((ckpt / "pipeline.json").read_text()).get("sampling") or {}
        for dec in ("full", "tiny"):
            t0 = time.perf_counter()
            pipe = AvatarPipeline.from_checkpoint(ckpt, decoder=dec)
            opts = GenerationOptions(steps=int(sampling.get("steps", 24)), sampler=sampling.get("sampler", "overshoot"),
                                     colour_correction=1.0, **({"guidance": GuidanceScales.parse(sampling["guidance"])}
                                                               if sampling.get("guidance") else {}))
            s = pipe.generate(ref, speech, args.out / f"{name}-{dec}.mp4", opts)
            wall = time.perf_counter() - t0
            rows[f"{name}/{dec}"] = {"wall_s": round(wall, 1), "seconds": s["seconds"],
                                     "rtf": round(wall / s["seconds"], 2), "phases": s["seconds_by_phase"],
                                     "decoder": s["decoder"], "load1": round(os.getloadavg()[0], 2)}
            print(name, dec, rows[f"{name}/{dec}"], flush=True)
    print(json.dumps({"bench": "demo_speed", "cpu": cpu_model(), "threads": torch.get_num_threads(), **rows}))


if __name__ == "__main__":
    main()

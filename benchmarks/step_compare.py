"""One denoising step of a preset, this tree against another revision, in one run (issue #28: "no slower").

    python benchmarks/step_compare.py [--baseline REV] [--preset small] [--steps 4] [--rounds 3]

The baseline revision is checked out into a temporary ``git worktree`` and each side runs in a fresh process
(``PYTHONPATH`` pointing at its ``src``), alternating ``--rounds`` times so drift in the machine's load hits
both alike. Each process builds the preset's random pipeline and samples one chunk of ``--steps`` steps with a
reference (and its K/V cache) and audio, through whichever chunk sampler its revision has (the public
``AvatarPipeline.sample_chunk`` now, the private ``_sample_chunk`` before); the figure is wall time per step
after one warm-up chunk. Ends with one JSON line: median ms per step of each side and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import numpy as np, torch
from avatarv.models.dit import RefInputs, RefKVCache
from avatarv.pipelines.chunks import Chunk
from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions

preset, steps = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
pipe = AvatarPipeline.random(preset, seed=0)
cfg = pipe.cfg
s, z, c = cfg.resolution // cfg.vae.spatial_stride, cfg.dit.latent_channels, cfg.chunk_latent_frames
g = torch.Generator().manual_seed(0)
known = torch.randn(1, z, 1, s, s, generator=g)
tokens = pipe.audio_features.latent_tokens(np.random.default_rng(0).standard_normal(16000 * 4).astype("float32") * 0.1, 0, c)
ref = RefInputs(torch.randn(1, z, cfg.max_ref_latent_frames, s, s, generator=g))
cache = RefKVCache()
chunk = Chunk(index=0, start_frame=0, num_latents=c, prefix_latents=0)
opts = GenerationOptions(steps=steps)
if hasattr(pipe, "sample_chunk"):
    run = lambda: pipe.sample_chunk(chunk, known, tokens, [ref], [cache], opts.sampling(), torch.Generator().manual_seed(1))
else:
    run = lambda: pipe._sample_chunk(chunk, known, tokens, [ref], [cache], opts, torch.Generator().manual_seed(1))
run()  # warm-up (and the reference cache)
t = time.perf_counter()
run()
print(json.dumps({"ms_per_step": (time.perf_counter() - t) / steps * 1e3}))
"""


def run_side(src: Path, preset: str, steps: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    res = subprocess.run([sys.executable, "-c", CHILD, preset, str(steps)], env=env, capture_output=True, text=True,
                         check=True, cwd=src.parent)
    return json.loads(res.stdout.strip().splitlines()[-1])["ms_per_step"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default="bd3c531", help="git revision to compare against")
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    from avatarv.precision import capability

    machine = capability()
    print(f"machine: {machine}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.baseline], check=True,
                       capture_output=True)
        try:
            times: dict[str, list[float]] = {"baseline": [], "current": []}
            for r in range(args.rounds):
                for side, src in (("baseline", tree / "src"), ("current", ROOT / "src")):
                    start = time.perf_counter()
                    times[side].append(run_side(src, args.preset, args.steps))
                    print(f"round {r + 1} {side}: {times[side][-1]:.1f} ms/step ({time.perf_counter() - start:.0f} s)",
                          flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    base, cur = statistics.median(times["baseline"]), statistics.median(times["current"])
    result = {"bench": "step_compare", "preset": args.preset, "steps": args.steps, "baseline": args.baseline,
              "baseline_ms_per_step": round(base, 1), "current_ms_per_step": round(cur, 1),
              "current_vs_baseline_speed": round(base / cur, 3), "rounds": args.rounds, "machine": machine}
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""DMD training curves, with and without the stability measures, from the trainers' ``log.jsonl`` (one PNG).

    python benchmarks/dmd_curves.py --run stable=runs/distill3/dmd-video --run nostab=runs/distill3/dmd-nostab-video \
        --out benchmarks/results/dmd-curves.png

Panels: the critic's loss (fake-score denoising, on critic steps), the generator's DMD loss and the mean |DMD
gradient| (on generator steps), the gradient norm before clipping. Moving means over ``--window`` logged steps.
Ends with one JSON line: per run, the first and last quarter's mean of each series.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SERIES = ("loss_critic", "loss_dmd", "dmd_grad_abs", "grad_norm")


def read_log(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``series name -> (steps, values)`` of the records that carry it."""
    rows = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines() if line.strip()]
    out = {}
    for key in SERIES:
        pts = [(r["step"], r[key]) for r in rows if key in r and np.isfinite(r[key])]
        if pts:
            s, v = zip(*pts, strict=True)
            out[key] = (np.asarray(s), np.asarray(v, dtype=float))
    return out


def moving_mean(v: np.ndarray, window: int) -> np.ndarray:
    if len(v) < window:
        return v
    return np.convolve(v, np.ones(window) / window, mode="valid")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, help="NAME=FOLDER (a trainer's out dir)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/dmd-curves.png"))
    ap.add_argument("--window", type=int, default=15)
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {}
    for spec in args.run:
        name, _, folder = spec.partition("=")
        if not (Path(folder) / "log.jsonl").is_file():
            raise SystemExit(f"dmd_curves.py: {folder}: no log.jsonl")
        runs[name] = read_log(Path(folder))
    fig, axes = plt.subplots(1, len(SERIES), figsize=(4.2 * len(SERIES), 3.4))
    summary = {}
    for ax, key in zip(axes, SERIES, strict=True):
        for name, series in runs.items():
            if key not in series:
                continue
            s, v = series[key]
            m = moving_mean(v, args.window)
            ax.plot(s[len(s) - len(m):], m, label=name)
            q = max(1, len(v) // 4)
            summary.setdefault(name, {})[key] = {"first_quarter": float(v[:q].mean()), "last_quarter": float(v[-q:].mean())}
        ax.set_title(key)
        ax.set_xlabel("trainer step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(json.dumps({"bench": "dmd_curves", "png": str(args.out), "runs": summary}))


if __name__ == "__main__":
    main()

"""Loss curves from a training log (log.jsonl) to a PNG."""

from __future__ import annotations

import json
from pathlib import Path


def plot_log(log_path: str | Path, out_png: str | Path, keys: tuple[str, ...] = ("loss", "loss_video", "loss_motion")):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    recs = [json.loads(ln) for ln in Path(log_path).read_text().splitlines() if ln.strip()]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in keys:
        pts = [(r["step"], r[key]) for r in recs if key in r]
        if not pts:
            continue
        steps, vals = map(np.array, zip(*pts, strict=True))
        ax.plot(steps, vals, alpha=0.3, lw=0.8)
        k = max(1, len(vals) // 50)
        smooth = np.convolve(vals, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], smooth, label=f"{key} (mean of {k})")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(Path(log_path).parent.name)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return Path(out_png)

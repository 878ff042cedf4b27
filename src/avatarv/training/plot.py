"""Loss curves from a training log (log.jsonl) to a PNG."""

from __future__ import annotations

import json
from pathlib import Path


def _smooth_plot(ax, recs: list[dict], key: str) -> bool:
    """``key`` against the step: raw (faint) and its moving mean over len/50 records, in one colour."""
    import numpy as np

    pts = [(r["step"], r[key]) for r in recs if isinstance(r.get(key), (int, float))]
    if not pts:
        return False
    steps, vals = map(np.array, zip(*pts, strict=True))
    k = max(1, len(vals) // 50)
    line = ax.plot(steps, vals, alpha=0.3, lw=0.8)[0]
    ax.plot(steps[k - 1 :], np.convolve(vals, np.ones(k) / k, mode="valid"), color=line.get_color(),
            label=f"{key} (mean of {k})")
    return True


def plot_log(log_path: str | Path, out_png: str | Path, keys: tuple[str, ...] = ("loss", "loss_video", "loss_motion")):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [json.loads(ln) for ln in Path(log_path).read_text().splitlines() if ln.strip()]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in keys:
        _smooth_plot(ax, recs, key)
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


def plot_runs(run_dirs: dict[str, str | Path], out_png: str | Path) -> Path | None:
    """One panel per training run (title -> folder with ``log.jsonl``): every ``loss*`` key (and the VAE's
    ``l1``) against the step, raw and smoothed (mean of len/50), log scale. Runs without a log are skipped;
    returns None when none has one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = {name: Path(d) / "log.jsonl" for name, d in run_dirs.items()}
    logs = {name: p for name, p in logs.items() if p.is_file() and p.stat().st_size}
    if not logs:
        return None
    fig, axes = plt.subplots(1, len(logs), figsize=(3.6 * len(logs), 3.4), squeeze=False)
    for ax, (name, path) in zip(axes[0], logs.items(), strict=True):
        recs = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
        keys = sorted({k for r in recs for k in r if k.startswith("loss") or k == "l1"})
        for key in keys:
            _smooth_plot(ax, recs, key)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return Path(out_png)

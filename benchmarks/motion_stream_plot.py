"""Plot the motion a generator meant against the reference person's: one case, signal by signal.

For each ``--run name=eval-run-folder``, the case's generated motion track (``videos/<case>.motion.npz``,
written by ``avatarv eval run`` for the avatarv systems) is drawn over time beside the ground truth (the
driving clip measured by the world analyzer, through the motion stream's representation), with the chunk
seams marked. Shows at a glance whether a stream moves like the person (nods, sway, blinks, mouth with the
speech) and whether it jumps at the seams.

    python benchmarks/motion_stream_plot.py --bench out/bench16x12 --case c001 \\
        --run off=out/eval16x12-video --run on=out/eval16x12-video-cont --out benchmarks/results/motion-c001.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SIGNALS = ("pitch", "yaw", "blink", "smile", "mouth_open")


def seam_frames(total: int, chunk_latents: int = 9, overlap_latents: int = 2, fps: int = 25) -> list[int]:
    """The first generated frame of chunks 2, 3, … (their first frames are the previous chunk's overlap):
    where a stream that does not continue its motion jumps."""
    from avatarv.pipelines.chunks import ChunkPlan

    plan = ChunkPlan.for_duration(total / fps, chunk_latents=chunk_latents, overlap_latents=overlap_latents, fps=fps)
    return [c.start_frame + plan.overlap_frames for c in plan.chunks()[1:]]


def seam_jumps(signal: np.ndarray, seams: list[int]) -> float:
    """Mean |step| into the seams' frames over the mean of the other steps between latent frames (a stream
    holds each latent frame's mean over its 4 frames, so the zero steps inside a latent frame do not count):
    1 = a seam is like any other step, ≫ 1 = the stream jumps there."""
    steps = np.abs(np.diff(np.asarray(signal, np.float64)))
    at = np.array([s - 1 for s in seams if 0 < s < len(signal)], int)
    others = np.ones(len(steps), bool)
    others[at] = False
    others &= steps > 1e-6
    return float(steps[at].mean() / max(steps[others].mean(), 1e-9)) if len(at) and others.any() else float("nan")


def median_seam_jumps(run_dir: Path) -> dict[str, float]:
    """Per signal, the median over a run's cases of ``seam_jumps``."""
    from avatarv.pipelines.motion_track import load_motion_track

    ratios: dict[str, list[float]] = {k: [] for k in SIGNALS}
    for path in sorted((run_dir / "videos").glob("*.motion.npz")):
        track, _ = load_motion_track(path)
        seams = seam_frames(len(track["pitch"]))
        for k in SIGNALS:
            ratios[k].append(seam_jumps(track[k], seams))
    return {k: round(float(np.nanmedian(v)), 3) if v else float("nan") for k, v in ratios.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", type=Path, required=True)
    ap.add_argument("--case", required=True, help="a case id, or 'all': the median seam jump ratio over every "
                    "case of each run (no plot)")
    ap.add_argument("--run", action="append", required=True, help="name=eval-run-folder (repeat)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/motion.png"))
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from avatarv.eval.behaviour import video_signals
    from avatarv.eval.motion_stream import through_stream
    from avatarv.pipelines.motion_track import load_motion_track

    if args.case == "all":
        print(json.dumps({"median_seam_jump_ratio": {name: median_seam_jumps(Path(folder))
                                                     for name, _, folder in (r.partition("=") for r in args.run)}}))
        return
    manifest = json.loads((args.bench / "manifest.json").read_text())
    case = next(c for c in manifest["cases"] if c["case_id"] == args.case)
    truth = through_stream(video_signals(args.bench / case["driving"])[0])
    tracks = {name: load_motion_track(Path(folder) / "videos" / f"{args.case}.motion.npz")[0]
              for name, _, folder in (spec.partition("=") for spec in args.run)}
    n = min(len(next(iter(tracks.values()))["pitch"]), len(truth["pitch"]))
    seams = seam_frames(n)
    fig, axes = plt.subplots(len(SIGNALS), 1, figsize=(10, 1.7 * len(SIGNALS)), sharex=True)
    t = np.arange(n) / 25
    jumps = {}
    for ax, name in zip(axes, SIGNALS, strict=True):
        ax.plot(t, truth[name][:n], color="0.5", lw=1.2, label="ground truth (driving clip)")
        for run, track in tracks.items():
            ax.plot(t, track[name][:n], lw=1.0, label=run)
            jumps.setdefault(run, {})[name] = seam_jumps(track[name][:n], seams)
        for s in seams:
            ax.axvline(s / 25, color="k", lw=0.4, ls=":")
        ax.set_ylabel(name, fontsize=8)
    axes[0].legend(fontsize=7, ncol=len(tracks) + 1, loc="upper right")
    axes[-1].set_xlabel("seconds (dotted: chunk seams)")
    fig.suptitle(f"motion stream of case {args.case} against the ground truth", fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    plt.close(fig)
    print(json.dumps({"case": args.case, "seam_jump_ratio": jumps, "png": str(args.out)}))


if __name__ == "__main__":
    main()

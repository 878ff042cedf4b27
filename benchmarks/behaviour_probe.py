"""Does the sampled motion stream carry the reference's habits? Clip-level behaviour transfer on held-out
world identities, without the VAE in the way.

    python benchmarks/behaviour_probe.py --run video=checkpoints/world-small \
        --run image=checkpoints/world-small-imageref --clips 64 --pair video,image [--out benchmarks/results/X]

For each held-out identity (10 000 …) a target clip (scene 0) and a reference (scene 1) are made and encoded
as ``motion_probe.make_items`` does (one chunk, its first latent frame known). Each checkpoint samples the
chunk's motion stream twice with the same noise: with the person's own reference and with the next person's.
A person's way of moving is read off each clip as a few statistics over time (``STATS``: how much they smile,
how open the mouth is, how far the head turns, nods and tilts, how often the eyes close), and each is scored
by Pearson r over people between the generated clip's statistic and the target clip's own.

The rows:

- ``NAME reference (oracle)``: the statistic of the reference the checkpoint reads (its labelled motion at
  the checkpoint's reference frames) as the prediction of the target's: how much of a person's behaviour
  that reference tells at all, the ceiling of copying it. An image reference is one frame: a spread over
  time is not defined for it (NaN).
- ``NAME own``: the checkpoint's sample with the person's reference.
- ``NAME other``: with the next person's. ``own − other`` is what the checkpoint takes from *this* person.

95 % intervals are percentile bootstraps over people (the same resamples for every row, so ``--pair a,b``
differences are paired; ``avatarv.eval.stats``: NaN where over 5 % of the resamples leave r undefined). Writes a markdown table, a PNG and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from avatarv.eval.stats import bootstrap_draws, pearson, percentile_interval, resample_indices

sys.path.insert(0, str(Path(__file__).resolve().parent))
from motion_probe import make_items, mouth_slots  # noqa: E402

# name → (motion signal, statistic over the clip's latent frames); the signals of models.dit.motion_codec.MOTION_SIGNALS
STATS = {
    "smile_mean": ("smile", "mean"),
    "mouth_mean": ("mouth_open", "mean"),
    "blink_mean": ("blink", "mean"),
    "yaw_std": ("yaw", "std"),
    "pitch_std": ("pitch", "std"),
    "roll_std": ("roll", "std"),
}


def clip_stats(motion: torch.Tensor | np.ndarray) -> dict[str, float]:
    """Raw motion rows ``[F, dim]`` (``motion_codec.motion_features``) → ``STATS`` of the clip. The mouth is
    read from the 4 per-frame slots; a spread over one frame is NaN."""
    from avatarv.models.dit.motion_codec import MOTION_SIGNALS

    m = np.asarray(motion.float() if isinstance(motion, torch.Tensor) else motion, np.float64)
    column = {n: i for i, n in enumerate(MOTION_SIGNALS)}
    out = {}
    for name, (signal, stat) in STATS.items():
        x = m[:, mouth_slots()].ravel() if signal == "mouth_open" else m[:, column[signal]]
        if stat == "mean":
            out[name] = float(x.mean())
        else:
            out[name] = float(x.std()) if len(x) > 1 else float("nan")
    return out


def correlations(rows: dict[str, dict[str, np.ndarray]], truth: dict[str, np.ndarray], boots: int = 1000,
                 seed: int = 0) -> dict[str, dict[str, dict]]:
    """Per row and statistic: r over people between the row's statistic ``[N]`` and the truth's, with a
    percentile bootstrap (people resampled, the same resamples for every row). Keeps the bootstrap draws
    (``"boot"``) so that rows can be differenced pairwise."""
    idx = resample_indices(len(next(iter(truth.values()))), boots, seed)
    out: dict[str, dict[str, dict]] = {}
    for row, stats in rows.items():
        out[row] = {}
        for s in STATS:
            boot = bootstrap_draws(pearson, idx, stats[s], truth[s])
            lo, hi = percentile_interval(boot)
            out[row][s] = {"r": pearson(stats[s], truth[s]), "lo": lo, "hi": hi, "boot": boot}
    return out


def paired(corr: dict, a: str, b: str) -> dict[str, dict]:
    """r(a) − r(b) per statistic, with the bootstrap interval of the paired draws."""
    out = {}
    for s in STATS:
        lo, hi = percentile_interval(corr[a][s]["boot"] - corr[b][s]["boot"])
        out[s] = {"diff": corr[a][s]["r"] - corr[b][s]["r"], "lo": lo, "hi": hi}
    return out


@torch.no_grad()
def sample_motion(pipe, items: list[dict], steps: int, seed: int, sampler: str = "overshoot") -> dict[str, list]:
    """The checkpoint's motion stream for each item (generated frames only, raw features ``[F − 1, dim]``),
    with the item's own reference and with the next item's; the same noise for both."""
    from tqdm import tqdm

    from avatarv.models.dit import RefInputs, RefKVCache
    from avatarv.models.dit.motion_codec import MotionCodec
    from avatarv.pipelines.chunks import Chunk
    from avatarv.pipelines.generate import GenerationOptions

    if not pipe.dit.cfg.motion_dim:
        raise SystemExit("behaviour_probe: the checkpoint's DiT has no motion stream")
    codec = MotionCodec.from_config(pipe.dit.cfg)
    text = pipe.encode_text("")
    opts = GenerationOptions(steps=steps, sampler=sampler)
    out: dict[str, list] = {"own": [], "other": []}
    for k, it in enumerate(tqdm(items, desc="sampling", leave=False)):
        x0 = it["latents"][None].float()
        chunk = Chunk(index=0, start_frame=0, num_latents=x0.shape[2], prefix_latents=0)
        for row, src in (("own", it), ("other", items[(k + 1) % len(items)])):
            ref = RefInputs(src["ref_latents"][None].float(), codec.normalize(src["ref_motion"][None].float()))
            g = torch.Generator().manual_seed(seed * 100_003 + k)
            _, motion = pipe.sample_chunk(chunk, x0[:, :, :1], it["audio"].float(), [ref], [RefKVCache()],
                                          opts.sampling(), g, text=text)
            out[row].append(motion[1:].float())
    return out


def read_reference_motion(pipe, items: list[dict]) -> None:
    """Replace each item's reference motion (labels, as training gives it) by the world analyzer's reading of
    the same reference frames (``ref_frames`` of ``motion_probe.make_items``), as the pipeline reads a
    reference at inference (``pipelines.reference.reference_motion``)."""
    from avatarv.pipelines.reference import reference_motion
    from avatarv.world.analyzer import WorldAnalyzer

    cfg = pipe.cfg
    analyzer = WorldAnalyzer.load()
    for it in items:
        it["ref_motion"] = reference_motion(it["ref_frames"], cfg.max_ref_latent_frames, cfg.dit.motion_dim,
                                            analyzer)[0]


def stat_arrays(motions: list) -> dict[str, np.ndarray]:
    """A list of clips' motion rows → ``{stat: [N]}``."""
    per = [clip_stats(m) for m in motions]
    return {s: np.array([p[s] for p in per]) for s in STATS}


def markdown(corr: dict, pairs: dict, clips: int) -> str:
    cols = list(STATS)
    lines = [f"Pearson r over {clips} held-out people between each row's clip statistic and the target clip's "
             "(95 % bootstrap CI):\n", "| row | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for row, stats in corr.items():
        lines.append(f"| {row} | " + " | ".join(f"{stats[s]['r']:+.2f} [{stats[s]['lo']:+.2f}, {stats[s]['hi']:+.2f}]"
                                                for s in cols) + " |")
    for name, d in pairs.items():
        lines += [f"\nPaired {name} (same people and resamples):\n", "| statistic | r difference | 95 % CI |",
                  "|---|---|---|"]
        lines += [f"| {s} | {d[s]['diff']:+.2f} | [{d[s]['lo']:+.2f}, {d[s]['hi']:+.2f}] |" for s in cols]
    return "\n".join(lines)


def plot(corr: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = list(corr), list(STATS)
    fig, ax = plt.subplots(figsize=(1.6 * len(cols) + 2, 4))
    w = 0.8 / len(rows)
    for i, row in enumerate(rows):
        r = np.array([corr[row][s]["r"] for s in cols])
        err = np.abs(np.array([[corr[row][s]["lo"] for s in cols], [corr[row][s]["hi"] for s in cols]]) - r)
        ax.bar(np.arange(len(cols)) + (i - (len(rows) - 1) / 2) * w, np.nan_to_num(r), w, yerr=np.nan_to_num(err),
               label=row, capsize=2)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(cols)), cols)
    ax.set_ylabel("r with the target clip's statistic")
    ax.set_title("behaviour transfer: generated motion stream vs the person's own clip")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="append", required=True, help="name=checkpoint (repeat)")
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--sampler", default="overshoot")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pair", action="append", default=[], help="a,b: paired r differences of rows 'a own' − 'b own'")
    ap.add_argument("--ref-motion-from", choices=("labels", "analyzer"), default="labels",
                    help="the reference motion the checkpoints get: the labels (as in training) or the world "
                         "analyzer's reading of the reference pixels (as the pipeline gets it)")
    ap.add_argument("--out", type=Path, help="write OUT.md and OUT.png")
    args = ap.parse_args()
    from tqdm import tqdm

    from avatarv.pipelines.generate import AvatarPipeline

    runs = dict(r.split("=", 1) for r in args.run)
    rows: dict[str, dict[str, np.ndarray]] = {}
    truth = None
    for name, ckpt in tqdm(runs.items(), desc="checkpoints"):
        torch.manual_seed(args.seed)
        pipe = AvatarPipeline.from_checkpoint(ckpt)
        items = make_items(pipe, args.clips, args.seed)
        if truth is None:  # the targets are the same clips for every checkpoint (same identities and seed)
            truth = stat_arrays([it["motion"][1:] for it in items])
        rows[f"{name} reference (oracle)"] = stat_arrays([it["ref_motion"] for it in items])  # labels
        if args.ref_motion_from == "analyzer":
            read_reference_motion(pipe, items)
        sampled = sample_motion(pipe, items, args.steps, args.seed, args.sampler)
        rows[f"{name} own"] = stat_arrays(sampled["own"])
        rows[f"{name} other"] = stat_arrays(sampled["other"])
    corr = correlations(rows, truth, seed=args.seed)
    pairs = {f"{name} own − other": paired(corr, f"{name} own", f"{name} other") for name in runs}
    for p in args.pair:
        a, b = p.split(",")
        pairs[f"{a} own − {b} own"] = paired(corr, f"{a} own", f"{b} own")
    text = markdown(corr, pairs, args.clips)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        cmd = "python benchmarks/behaviour_probe.py " + " ".join(f"--run {r}" for r in args.run) + \
            f" --clips {args.clips} --steps {args.steps} --ref-motion-from {args.ref_motion_from}" + "".join(f" --pair {p}" for p in args.pair)
        args.out.with_suffix(".md").write_text(f"# Behaviour transfer probe\n\n```bash\n{cmd}\n```\n\n{text}\n")
        plot(corr, args.out.with_suffix(".png"))
    strip = {row: {s: {k: v for k, v in d.items() if k != "boot"} for s, d in st.items()} for row, st in corr.items()}
    print(json.dumps({"benchmark": "behaviour_probe", "runs": runs, "clips": args.clips, "steps": args.steps,
                      "ref_motion_from": args.ref_motion_from,
                      "r": strip, "pairs": pairs}))


if __name__ == "__main__":
    main()

"""The thesis figure: does a video reference carry behaviour better than one image, at equal identity?

Reads finished ``avatarv eval run`` folders of one benchmark (ground truth, the video-reference model, the
image-reference ablation, ...) and prints, per system, the mean and a bootstrap 95 % interval over cases of

    sync_c      SyncNet confidence (world SyncNet)
    face_sim    identity similarity to the reference (world identity embedder; n = cases with a face track)
    behaviour   behaviour similarity to the own reference (``behaviour_similarity``)
    hit         behaviour identification: the own reference is the best match among all K (chance 1/K)
    percentile  share of the other references matched less well than the own one (chance 0.5)
    margin      similarity to the own reference minus the mean to the others (chance 0)
    motion_*    the same four in motion-stream space (``avatarv.eval.motion_stream``): a generated case's own
                motion stream (what the DiT meant, before the VAE decoder), a real one's pixels through the
                stream's representation; the references always through that representation

over the cases every run has (``--all-cases``: each over its own), with K = all the benchmark's references;
plus identity similarity against time (``-drift.png``) and, per behaviour statistic, how well outputs follow their
own reference (Pearson r over cases, in both spaces); then paired differences between two systems (same cases) with a sign-flip permutation p-value, and writes
``<out>.md`` and ``<out>.png``. Reference behaviour is measured once per reference video, exactly as the
benchmark does (``behaviour_in_both_spaces``), so folders written before ``behaviour_rank`` existed score the same way.
The statistics are ``avatarv.eval.stats``'s (one NaN rule). ``--remeasure`` measures the outputs' behaviour again from the saved videos and motion tracks, so runs written
before a statistic existed (``mouth_level``) are scored with it.

    python benchmarks/thesis.py --bench out/bench24x12 --run gt=out/eval24x12-gt \\
        --run video=out/eval24x12-video --run image=out/eval24x12-image --pair video,image
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from avatarv.eval.stats import bootstrap_ci, paired_bootstrap, pearson, pearson_ci, sign_flip_p

METRICS = ("sync_c", "face_sim", "behaviour", "hit", "percentile", "margin",
           "motion_behaviour", "motion_hit", "motion_percentile", "motion_margin")


def face_sim_over_time(run_dir: Path, cases: set[str]) -> np.ndarray:
    """``[cases, samples]`` identity similarity at 2 fps (NaN where a case is shorter or has no face)."""
    rows = []
    for path in sorted((run_dir / "cases").glob("*.json")):
        case = json.loads(path.read_text())
        if case["case_id"] in cases:
            rows.append([np.nan if v is None else v for v in case.get("per_frame", {}).get("face_sim", [])])
    width = max((len(r) for r in rows), default=0)
    return np.array([r + [np.nan] * (width - len(r)) for r in rows], float).reshape(len(rows), width)


def plot_drift(curves: dict[str, np.ndarray], path: Path, fps: float = 2.0) -> None:
    """Mean identity similarity against time, one line per system: where a generator drifts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, c in curves.items():
        if c.size:
            with warnings.catch_warnings():  # a sample where no case has a face is NaN, not an error
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(c, 0)
            ax.plot(np.arange(c.shape[1]) / fps, mean, marker="o", ms=3, label=f"{name} ({len(c)} cases)")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("seconds into the output")
    ax.set_ylabel("identity similarity to the reference")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def read_cases(run_dir: Path, remeasure: bool = False, analyzer=None) -> list[dict]:
    """The run's case records. ``remeasure``: the outputs' behaviour statistics measured again from the saved
    videos and motion tracks with the current ``behaviour_stats`` (``output_behaviour``, as the benchmark
    measures them), so a run written before a statistic existed is scored with it; the folder is not touched."""
    from avatarv.eval.benchmark import output_behaviour

    cases = [json.loads(p.read_text()) for p in sorted((run_dir / "cases").glob("*.json"))]
    if remeasure:
        for case in tqdm(cases, desc=f"remeasure {run_dir.name}", leave=False):
            video = Path(case["meta"].get("video", ""))
            if not video.is_file():
                video = run_dir / "videos" / f"{case['case_id']}.mp4"
            if not video.is_file():
                raise FileNotFoundError(f"{run_dir}: case {case['case_id']} has no video to remeasure ({video})")
            stats, motion, source = output_behaviour(video, analyzer)
            case["meta"].update(behaviour_stats=stats, motion_behaviour_stats=motion, motion_behaviour_source=source)
            case["remeasured"] = True
    return cases


def load_run(cases: list[dict], reference_stats: dict[str, dict], motion_reference_stats: dict[str, dict]
             ) -> dict[str, dict[str, float]]:
    """case id -> metric -> value (NaN where the metric failed). Remeasured cases (``read_cases``) get their
    similarities to the own reference recomputed from the new statistics."""
    from avatarv.eval.behaviour import behaviour_similarity, rank_scores

    refs = list(reference_stats)
    out = {}
    for case in cases:
        row = {k: float("nan") if case["metrics"].get(k) is None else float(case["metrics"][k])
               for k in ("sync_c", "face_sim", "behaviour", "motion_behaviour")}
        ref = case["meta"].get("behaviour_reference")
        ref = str(Path(ref).resolve()) if ref else None
        for prefix, space, table in (("", "behaviour", reference_stats), ("motion_", "motion_behaviour",
                                                                          motion_reference_stats)):
            stats = case["meta"].get(f"{space}_stats")
            if stats is not None and ref in table:
                rank = rank_scores(stats, [table[k] for k in refs], refs.index(ref))
                row.update({prefix + k: v for k, v in rank.items()})
                if case.get("remeasured"):
                    row[space] = behaviour_similarity(stats, table[ref])
        out[case["case_id"]] = row
    return out


def summarise(runs: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, dict]]:
    table = {}
    for name, cases in runs.items():
        table[name] = {}
        for m in METRICS:
            x = np.array([c.get(m, np.nan) for c in cases.values()], float)
            lo, hi = bootstrap_ci(x)
            table[name][m] = {"mean": float(np.nanmean(x)) if np.isfinite(x).any() else float("nan"),
                              "lo": lo, "hi": hi, "n": int(np.isfinite(x).sum()), "cases": len(x)}
    return table


def paired(runs: dict, a: str, b: str) -> dict[str, dict]:
    common = sorted(set(runs[a]) & set(runs[b]))
    out = {}
    for m in METRICS:
        d = np.array([runs[a][c].get(m, np.nan) - runs[b][c].get(m, np.nan) for c in common], float)
        lo, hi = bootstrap_ci(d)
        out[m] = {"mean_diff": float(np.nanmean(d)) if np.isfinite(d).any() else float("nan"), "lo": lo, "hi": hi,
                  "p": sign_flip_p(d), "n": int(np.isfinite(d).sum())}
    return out


def markdown(table: dict, pairs: dict, k: int) -> str:
    lines = [f"K = {k} references; chance: hit {1 / k:.3f}, percentile 0.5, margin 0.", "",
             "| system | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for name, row in table.items():
        cells = [f"{row[m]['mean']:.3f} [{row[m]['lo']:.3f}, {row[m]['hi']:.3f}] (n {row[m]['n']})" for m in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for (a, b), diff in pairs.items():
        lines += ["", f"Paired {a} − {b} (same cases; bootstrap 95 % CI; sign-flip p):", "",
                  "| metric | mean diff | 95 % CI | p | n |", "|---|---|---|---|---|"]
        for m, d in diff.items():
            lines.append(f"| {m} | {d['mean_diff']:+.3f} | [{d['lo']:+.3f}, {d['hi']:+.3f}] | {d['p']:.3f} | {d['n']} |")
    return "\n".join(lines) + "\n"


def plot(table: dict, k: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ("sync_c", "face_sim", "hit", "percentile", "margin", "motion_hit", "motion_percentile", "motion_margin")
    chance = {"hit": 1 / k, "percentile": 0.5, "margin": 0.0}
    chance.update({f"motion_{m}": v for m, v in chance.items()})
    fig, axes = plt.subplots(2, 4, figsize=(12.8, 6.6))
    axes = axes.ravel()
    names = list(table)
    for ax, m in zip(axes, shown, strict=True):
        means = [table[n][m]["mean"] for n in names]
        err = np.array([[table[n][m]["mean"] - table[n][m]["lo"], table[n][m]["hi"] - table[n][m]["mean"]]
                        for n in names]).T
        ax.bar(names, means, yerr=np.nan_to_num(err), capsize=4, color=["0.6", "tab:blue", "tab:orange", "tab:green"][: len(names)])
        if m in chance:
            ax.axhline(chance[m], color="k", ls="--", lw=1, label="chance")
            ax.legend(fontsize=7)
        ax.set_title(m)
        ax.tick_params(axis="x", labelrotation=30)
    fig.suptitle("video reference vs image reference vs ground truth (bars: mean, 95 % bootstrap CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def statistic_pairs(records: list[dict], cases: set[str], reference_stats: dict[str, dict], space: str
                    ) -> dict[str, tuple[dict, dict]]:
    """case id → (the output's statistics, its own reference's) in ``space`` (``behaviour`` or
    ``motion_behaviour``), for the cases in ``cases`` that have both."""
    out = {}
    for case in records:
        ref = case["meta"].get("behaviour_reference")
        ref = str(Path(ref).resolve()) if ref else None
        stats = case["meta"].get(f"{space}_stats")
        if case["case_id"] in cases and stats is not None and ref in reference_stats:
            out[case["case_id"]] = (stats, reference_stats[ref])
    return out


def _columns(pairs: dict[str, tuple[dict, dict]], ids: list[str], key: str) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([pairs[c][0].get(key, np.nan) for c in ids], float),
            np.array([pairs[c][1].get(key, np.nan) for c in ids], float))


def per_statistic(pairs: dict[str, tuple[dict, dict]], boots: int = 2000, seed: int = 0) -> dict[str, dict]:
    """Which behaviour statistics an output carries from its own reference: per statistic, the Pearson r over
    cases between the output's value and its reference's with a bootstrap 95 % interval (cases resampled), and
    both means. r near the ground truth's = carried; near 0 = not; NaN where the output never varies."""
    from avatarv.world.analyzer.behaviour import SIMILARITY_SCALES

    ids = sorted(pairs)
    out = {}
    for k in SIMILARITY_SCALES:
        x, y = _columns(pairs, ids, k)
        ok = np.isfinite(x) & np.isfinite(y)
        r, lo, hi = pearson_ci(x, y, boots, seed)
        out[k] = {"r": r, "lo": lo, "hi": hi,
                  "output_mean": float(np.mean(x[ok])) if ok.any() else float("nan"),
                  "reference_mean": float(np.mean(y[ok])) if ok.any() else float("nan"), "n": int(ok.sum())}
    return out


def paired_statistic(a: dict[str, tuple[dict, dict]], b: dict[str, tuple[dict, dict]], boots: int = 2000,
                     seed: int = 0) -> dict[str, dict]:
    """Per statistic, r(a) − r(b) over the cases both have, with a paired bootstrap 95 % interval (the same
    resampled cases for both systems): does system a follow its references on this statistic better than b?"""
    from avatarv.world.analyzer.behaviour import SIMILARITY_SCALES

    ids = sorted(set(a) & set(b))
    out = {}
    for k in SIMILARITY_SCALES:
        diff, lo, hi = paired_bootstrap(pearson, _columns(a, ids, k), _columns(b, ids, k), boots, seed)
        out[k] = {"diff": diff, "lo": lo, "hi": hi, "n": len(ids)}
    return out


def statistics_markdown(tables: dict[str, dict[str, dict[str, dict]]],
                        pairs: dict[str, dict[tuple[str, str], dict[str, dict]]] | None = None) -> str:
    """``{space: {system: per_statistic(...)}}`` → one table per space; ``pairs`` (``{space: {(a, b):
    paired_statistic(...)}}``) → a table of r differences per space."""
    lines = []
    for space, systems in tables.items():
        keys = list(next(iter(systems.values())))
        lines += ["", f"Per statistic, {space.replace('_', ' ')} space: Pearson r over cases between the output and "
                  "its own reference [bootstrap 95 % CI] (output mean / reference mean; r is NaN where the output "
                  "never varies):", "",
                  "| system | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name, row in systems.items():
            cells = [f"{row[k]['r']:+.2f} [{row[k].get('lo', np.nan):+.2f}, {row[k].get('hi', np.nan):+.2f}] "
                     f"({row[k]['output_mean']:.2f} / {row[k]['reference_mean']:.2f})" for k in keys]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for (a, b), diff in (pairs or {}).get(space, {}).items():
            lines += ["", f"Paired r({a}) − r({b}), {space.replace('_', ' ')} space (same resampled cases):", "",
                      "| " + " | ".join(keys) + " |", "|---" * len(keys) + "|",
                      "| " + " | ".join(f"{diff[k]['diff']:+.2f} [{diff[k]['lo']:+.2f}, {diff[k]['hi']:+.2f}]"
                                        for k in keys) + " |"]
    return "\n".join(lines) + "\n"


def plot_statistics(tables: dict[str, dict[str, dict[str, dict]]], path: Path) -> None:
    """Per statistic, each system's r with its own references (bars) and bootstrap 95 % CI, one panel per
    space: which traits a system carries over, and how far from the ground truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(tables), 1, figsize=(11, 3.4 * len(tables)), squeeze=False)
    for ax, (space, systems) in zip(axes[:, 0], tables.items(), strict=True):
        keys = list(next(iter(systems.values())))
        width = 0.8 / len(systems)
        for j, (name, row) in enumerate(systems.items()):
            x = np.arange(len(keys)) + (j - (len(systems) - 1) / 2) * width
            r = np.array([row[k]["r"] for k in keys])
            err = np.array([[row[k]["r"] - row[k].get("lo", np.nan), row[k].get("hi", np.nan) - row[k]["r"]]
                            for k in keys]).T
            ax.bar(x, np.nan_to_num(r), width, yerr=np.nan_to_num(np.clip(err, 0, None)), capsize=2, label=name)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(np.arange(len(keys)), keys)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel("r with own reference")
        ax.set_title(f"{space.replace('_', ' ')} space (NaN drawn as 0)")
        ax.legend(fontsize=7, ncol=len(systems))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", type=Path, required=True, help="benchmark folder (manifest.json)")
    ap.add_argument("--run", action="append", required=True, help="name=eval-run-folder (repeat)")
    ap.add_argument("--pair", action="append", default=[], help="a,b: paired differences a − b (repeat)")
    ap.add_argument("--all-cases", action="store_true",
                    help="each system over all its cases (default: only the cases every run has)")
    ap.add_argument("--remeasure", action="store_true",
                    help="measure the outputs' behaviour again from the saved videos and motion tracks with the "
                         "current statistics (a run written before a statistic existed); eval folders untouched")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/thesis"))
    args = ap.parse_args()

    from avatarv.eval.behaviour import video_signals
    from avatarv.eval.motion_stream import behaviour_in_both_spaces

    manifest = json.loads((args.bench / "manifest.json").read_text())
    ref_paths = sorted({str((args.bench / c["reference"]).resolve()) for c in manifest["cases"]})
    reference_stats, motion_reference_stats = {}, {}
    for p in ref_paths:  # measured as the benchmark measures them (``behaviour_metric``)
        reference_stats[p], motion_reference_stats[p] = behaviour_in_both_spaces(*video_signals(p))
    folders = {name: Path(folder) for name, _, folder in (spec.partition("=") for spec in args.run)}
    records = {name: read_cases(folder, args.remeasure) for name, folder in folders.items()}
    runs = {name: load_run(records[name], reference_stats, motion_reference_stats) for name in folders}
    if not args.all_cases:
        common = set.intersection(*(set(r) for r in runs.values()))
        runs = {name: {c: v for c, v in r.items() if c in common} for name, r in runs.items()}
    table = summarise(runs)
    named_pairs = [tuple(p.split(",")) for p in args.pair]
    pairs = {ab: paired(runs, *ab) for ab in named_pairs}
    text = markdown(table, pairs, len(ref_paths))
    spaces = {"behaviour": reference_stats, "motion_behaviour": motion_reference_stats}
    stat_pairs = {space: {name: statistic_pairs(records[name], set(r), refs, space) for name, r in runs.items()}
                  for space, refs in spaces.items()}
    stat_tables = {space: {name: per_statistic(p) for name, p in by_name.items()} for space, by_name in stat_pairs.items()}
    stat_diffs = {space: {(a, b): paired_statistic(by_name[a], by_name[b]) for a, b in named_pairs}
                  for space, by_name in stat_pairs.items()}
    text += statistics_markdown(stat_tables, stat_diffs)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps({"table": table, "pairs": {",".join(k): v for k, v in pairs.items()},
                                                         "per_statistic": stat_tables,
                                                         "per_statistic_pairs": {space: {",".join(k): v for k, v in d.items()}
                                                                                 for space, d in stat_diffs.items()}},
                                                        indent=2))
    plot(table, len(ref_paths), args.out.with_suffix(".png"))
    statistics_png = args.out.with_name(args.out.name + "-statistics.png")
    plot_statistics(stat_tables, statistics_png)
    drift = args.out.with_name(args.out.name + "-drift.png")
    plot_drift({name: face_sim_over_time(folders[name], set(r)) for name, r in runs.items()}, drift)
    print(f"wrote {args.out.with_suffix('.md')} {args.out.with_suffix('.png')} {drift} {statistics_png}")


if __name__ == "__main__":
    main()

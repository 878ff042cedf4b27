"""Stage 4: the distilled world model against its 3-pass CFG teacher, with the ablations (one table, one JSON line).

    python benchmarks/distill.py [--cases 8] [--seconds 2] [--only teacher,student] [--speed-only]

Systems (each an eval run on held-out world cases, resumable under ``--out/<system>``):

- ``teacher``: the bundled world model, 50 steps of the overshoot sampler, 3-pass CFG (``--guidance``);
- ``teacher+cache``: the same with step caching (``--cache``): step caching alone;
- ``cfg-student``: the CFG-distilled DiT (stage 4a alone) at the teacher's 50 steps, one pass per step;
- ``student``: the distilled pipeline (CFG distillation + DMD) at its own steps (``x0`` sampler, 4);
- ``student+cache``: the student with step caching;
- ``teacher@N``: the teacher at the student's N steps with the ``x0`` sampler and its 3-pass CFG: what DMD must
  beat (few steps without distillation);
- ``student@N``: the student at N < its own steps (``--fewer-steps``), for the speed its quality allows;
- ``dmd-no-stability``: DMD without its stability measures (one critic update per generator update, no gradient
  normalisation, no ODE-pair regression), when its pipeline exists (``--unstable``).
- ``student/full-tail-enc``: the student re-encoding each chunk's tail with the full VAE encoder instead of its
  tiny tail encoder (models/vae/tiny_encoder.py), when it has one: what the tiny encoder costs in quality.

Each row: Sync-C (world SyncNet), identity (world embedder, face_sim), behaviour similarity, quality, each with a
95 % bootstrap CI over cases and its paired relative difference to the teacher (CI); end-to-end wall seconds per
output second (reference read → mp4 written, everything included) and the speed-up over the teacher; the time
from the start of sampling to the first chunk's frames reaching the writer; the step cache's skip fraction.
Wall times come from the eval runs on the same machine; ``--speed-only`` times one case per system again,
alternating, in this process (use it on a quiet machine). Writes ``--out/distill.md``; ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("sync_c", "face_sim", "behaviour", "quality")


def systems(args) -> dict[str, tuple[Path, dict]]:
    g = args.guidance
    student_sampling = json.loads((args.student / "pipeline.json").read_text()).get("sampling", {}) \
        if (args.student / "pipeline.json").is_file() else {}
    student_opts = {"steps": int(student_sampling.get("steps", 4)), "sampler": student_sampling.get("sampler", "x0"),
                    "guidance": student_sampling.get("guidance", g)}
    out = {
        "teacher": (args.teacher, {"steps": 50, "sampler": "overshoot", "guidance": g}),
        "teacher+cache": (args.teacher, {"steps": 50, "sampler": "overshoot", "guidance": g, "step_cache": args.cache}),
        "cfg-student": (args.cfg_student, {"steps": 50, "sampler": "overshoot", "guidance": g}),
        "student": (args.student, student_opts),
        "student+cache": (args.student, {**student_opts, "step_cache": args.cache}),
    }
    if args.teacher_at_student_steps:  # the baseline DMD must beat: the teacher itself, few x0 steps, 3-pass CFG
        out[f"teacher@{student_opts['steps']}"] = (args.teacher, {"steps": student_opts["steps"], "sampler": "x0",
                                                                  "guidance": g})
    for n in (int(x) for x in args.fewer_steps.split(",") if x.strip()):  # the student below its trained steps
        out[f"student@{n}"] = (args.student, {**student_opts, "steps": n})
    if args.unstable is not None:
        out["dmd-no-stability"] = (args.unstable, student_opts)
    if (args.student / "tiny_encoder").is_dir():  # the student re-encodes chunk tails with its tiny encoder
        out["student/full-tail-enc"] = (args.student, {**student_opts, "tail_encoder": "full"})
    return {k: v for k, v in out.items() if (v[0] / "pipeline.json").is_file()}


def world_metrics(manifest):
    from avatarv.eval.benchmark import behaviour_metric, face_metric, quality_metric, sync_metric
    from avatarv.eval.identity import get_identity_embedder
    from avatarv.eval.quality import get_quality_scorer
    from avatarv.eval.world_syncnet import DEFAULT_WEIGHTS, load_sync_model

    mfs = float(manifest.eval_options.get("min_face_size", 100.0))
    return [face_metric(get_identity_embedder("world"), boxes="driving"), quality_metric(get_quality_scorer("classical-nr")),
            sync_metric(load_sync_model(None), weights=str(DEFAULT_WEIGHTS), min_face_size=mfs, boxes="driving"),
            behaviour_metric()]


def run_system(name: str, checkpoint: Path, options: dict, manifest, out: Path, metrics, reference_mode: str) -> None:
    from avatarv.eval.benchmark import run_benchmark
    from avatarv.eval.systems import PipelineSystem

    system = PipelineSystem(checkpoint, options=options, name=name, reference_mode=reference_mode)
    run_benchmark(manifest, system, out / name, metrics, report=False)


def read_cases(folder: Path) -> dict[str, dict]:
    cases = {}
    for path in sorted((folder / "cases").glob("*.json")):
        doc = json.loads(path.read_text())
        cases[doc["case_id"]] = doc
    return cases


def ratio(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(x)) / max(abs(float(np.mean(y))), 1e-9)


def seconds_per_output_second(cases: dict) -> float:
    t = [c["meta"].get("timing") for c in cases.values()]
    t = [x for x in t if x]
    return sum(x["wall_s"] for x in t) / max(sum(x["output_s"] for x in t), 1e-9) if t else float("nan")


def table(out: Path, names: list[str]) -> tuple[str, dict]:
    from avatarv.eval.stats import bootstrap_ci, paired_bootstrap

    runs = {n: read_cases(out / n) for n in names if (out / n / "cases").is_dir()}
    teacher = runs.get("teacher", {})
    rows, doc = [], {}
    header = "| system | " + " | ".join(f"{m} (95 % CI) | Δ vs teacher" for m in METRICS) + \
             " | s / output s | speed-up | first frames (s) |"
    rows.append(header)
    rows.append("|" + "---|" * (1 + 2 * len(METRICS) + 3))
    t_rate = seconds_per_output_second(teacher) if teacher else float("nan")
    for name, cases in runs.items():
        cells, entry = [name], {"cases": len(cases)}
        for m in METRICS:
            x = np.array([c["metrics"].get(m, np.nan) for c in cases.values()], dtype=float)
            lo, hi = bootstrap_ci(x)
            cells.append(f"{np.nanmean(x):.3f} ({lo:.3f}, {hi:.3f})")
            entry[m] = float(np.nanmean(x))
            common = sorted(set(cases) & set(teacher))
            if name != "teacher" and len(common) >= 3:
                a = np.array([cases[c]["metrics"].get(m, np.nan) for c in common], dtype=float)
                b = np.array([teacher[c]["metrics"].get(m, np.nan) for c in common], dtype=float)
                ok = np.isfinite(a) & np.isfinite(b)
                # mean(a)/mean(b) − 1 with the same resampled cases in both ratios (the second is 1)
                d, dlo, dhi = paired_bootstrap(ratio, (a[ok], b[ok]), (b[ok], b[ok]))
                cells.append(f"{d:+.1%} ({dlo:+.1%}, {dhi:+.1%})")
                entry[f"{m}_rel_vs_teacher"] = d
                entry[f"{m}_rel_ci"] = [dlo, dhi]
            else:
                cells.append("—")
        rate = seconds_per_output_second(cases)
        first = [c["meta"]["timing"]["first_frames_after_sampling_start_s"] for c in cases.values()
                 if c["meta"].get("timing")]
        cells += [f"{rate:.2f}", f"{t_rate / rate:.1f}×" if np.isfinite(t_rate) else "—",
                  f"{np.mean(first):.1f}" if first else "—"]
        entry.update(seconds_per_output_second=rate, speedup_vs_teacher=t_rate / rate,
                     first_frames_s=float(np.mean(first)) if first else None)
        rows.append("| " + " | ".join(cells) + " |")
        doc[name] = entry
    return "\n".join(rows) + "\n", doc


def speed_only(sys_map: dict, manifest, rounds: int, reference_mode: str) -> dict:
    """One case per system, ``rounds`` alternating rounds, in this process: wall s per output s."""
    import tempfile

    from avatarv.eval.systems import PipelineSystem

    case = manifest.cases[0]
    loaded = {n: PipelineSystem(ck, options=o, name=n, reference_mode=reference_mode) for n, (ck, o) in sys_map.items()}
    times: dict[str, list[float]] = {n: [] for n in loaded}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for n, s in loaded.items():
                s.generate(case, Path(tmp))
                t = s.timings[-1]
                times[n].append(t["wall_s"] / t["output_s"])
    return {n: float(np.median(v)) for n, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--teacher", type=Path, default=ROOT / "checkpoints" / "world-small")
    ap.add_argument("--student", type=Path, default=ROOT / "checkpoints" / "world-small-distilled")
    ap.add_argument("--cfg-student", type=Path, default=ROOT / "runs" / "distill" / "pipelines" / "cfg-video")
    ap.add_argument("--unstable", type=Path, default=None, help="a DMD-without-stability pipeline (ablation)")
    ap.add_argument("--guidance", default="ref=1.5,audio=2.5,text=2.5", help="the teacher's 3-pass CFG")
    ap.add_argument("--cache", type=float, default=0.1, help="step caching threshold of the +cache rows")
    ap.add_argument("--no-teacher-at-student-steps", dest="teacher_at_student_steps", action="store_false",
                    help="skip the teacher@N row (the teacher at the student's steps with the x0 sampler)")
    ap.add_argument("--fewer-steps", default="3,2", help="also the student at these steps (rows student@N)")
    ap.add_argument("--only", default=None, help="comma-separated systems to run now (the table reads all)")
    ap.add_argument("--speed-only", action="store_true")
    ap.add_argument("--reference-mode", choices=("video", "image"), default="video",
                    help="image: every system gets one reference frame (the image-reference variant and its teacher)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "distill")
    args = ap.parse_args()

    import torch

    from avatarv.eval.benchmark import Manifest
    from avatarv.eval.world_bench import make_world_bench
    from avatarv.precision import capability

    torch.manual_seed(0)
    bench = args.out / f"bench{args.cases}x{args.seconds:g}s"
    if not (bench / "manifest.json").is_file():
        make_world_bench(bench, n_cases=args.cases, seconds=args.seconds)
    manifest = Manifest.load(bench)
    sys_map = systems(args)
    if args.speed_only:
        picked = {n: v for n, v in sys_map.items() if not args.only or n in args.only.split(",")}
        rates = speed_only(picked, manifest, args.rounds, args.reference_mode)
        t = rates.get("teacher")
        doc = {"cpu": capability(), "case": manifest.cases[0].case_id, "rounds": args.rounds,
               "seconds_per_output_second": rates,
               "speedup_vs_teacher": {n: t / r for n, r in rates.items()} if t else {}}
        print(json.dumps(doc))
        return
    chosen = args.only.split(",") if args.only else list(sys_map)
    unknown = [n for n in chosen if n not in sys_map]
    if unknown:
        raise SystemExit(f"distill.py: unknown or missing systems {unknown} (have {list(sys_map)})")
    metrics = world_metrics(manifest)
    for name in chosen:
        start = time.perf_counter()
        run_system(name, *sys_map[name], manifest, args.out, metrics, args.reference_mode)
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    text, doc = table(args.out, list(sys_map))
    cpu = capability()
    md = f"# Stage 4: distilled world model vs teacher\n\nCPU: {cpu['cpu_model']} ({cpu['cpu_capability']}, bf16 native: {cpu['bf16_native']}, {cpu['threads']} threads); {args.cases} held-out world cases of " \
         f"{args.seconds:g} s; {args.reference_mode} reference; teacher guidance {args.guidance}; step cache threshold " \
         f"{args.cache}.\n\n{text}"
    (args.out / "distill.md").write_text(md)
    print(md)
    print(json.dumps({"cpu": cpu, "cases": args.cases, "seconds": args.seconds, "reference_mode": args.reference_mode,
                      "systems": doc}))


if __name__ == "__main__":
    main()

"""Issue #30's table in one run: does the bundled world model show, in pixels, lip sync, identity held over time,
behaviour carried from the reference, stable colour over a minute, and a fast demo?

    python benchmarks/world_quality.py                       # 16 cases × 12 s, longform at 60 s, the demo
    python benchmarks/world_quality.py --quick               # 4 cases × 4 s, longform at 20 s (a smoke run)
    python benchmarks/world_quality.py --vae-only runs/vae4/vae   # a candidate VAE's rows (no DiT needed)

Every part is an existing tool, run as a subprocess in this order and resumable (the eval runs keep finished
cases; a finished part's JSON is kept in ``--work`` and not run again unless ``--restart``):

1. ``avatarv eval make-bench`` (held-out world people; same / cross / generated scenes);
2. ``avatarv eval run`` for the ground truth (``passthrough``), the VAE round trip (``vae-roundtrip``: the
   most any DiT on this VAE can score), the video-reference model and the image-reference ablation;
3. ``benchmarks/thesis.py`` over the four runs: Sync-C (world SyncNet on pixels), identity (world embedder),
   behaviour identification top-1 among the K references (``hit``), with bootstrap 95 % intervals, and the paired
   video − image difference; identity at 10–12 s ÷ at 0–2 s from the per-frame identity of the video run;
4. ``benchmarks/vae_roundtrip.py``: the analyzer's mouth opening after a round trip vs the labels (Pearson r);
5. ``benchmarks/longform.py --only-long``: colour ΔE between the last and the first chunk (with the anchor, and
   with the colour anchor at ``--colour-correction``);
6. ``avatarv demo``: wall seconds per output second.

Prints the table (measure, the issue's "today", target, now with its interval) and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent

# (key, measure, the "today", target, higher is better)
ROWS = [
    ("vae_sync_c", "VAE round trip: Sync-C", 0.55, 5.0, True),
    ("vae_identity", "VAE round trip: identity", 0.48, 0.80, True),
    ("vae_mouth_r", "VAE round trip: mouth-opening r with labels", 0.06, 0.8, True),
    ("sync_c", "generated Sync-C (pixels, world SyncNet)", 0.48, 3.0, True),
    ("identity", "generated identity (world embedder)", 0.26, 0.60, True),
    ("identity_late_over_early", "identity at 10–12 s ÷ at 0–2 s", 0.4, 0.9, True),
    ("colour_de_60s", "colour ΔE last vs first chunk (anchor on)", 29.9, 5.0, False),
    ("colour_de_60s_colour_anchor", "… with the colour anchor", None, 5.0, False),
    ("behaviour_top1_video", "behaviour identification top-1, video model", 0.06, 0.25, True),
    ("behaviour_top1_video_minus_image", "… video − image (paired)", None, 0.0, True),
    ("demo_s_per_s", "demo: wall seconds per output second", 6.6, 3.0, False),
]


def run(args: list[str], log: Path) -> str:
    """Run a command (the project's Python), tee its output to ``log``; → its stdout. A failure stops the run."""
    print("$ " + " ".join(args), flush=True)
    res = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    log.write_text(res.stdout + "\n--- stderr ---\n" + res.stderr)
    if res.returncode:
        sys.exit(f"world_quality: {' '.join(args[:4])} … failed (exit {res.returncode}); see {log}")
    return res.stdout


def last_json(text: str) -> dict:
    return json.loads(next(line for line in reversed(text.strip().splitlines()) if line.startswith("{")))


def cached(work: Path, name: str, restart: bool, make) -> dict:
    """A part's result, kept as ``work/name.json`` once it finished."""
    path = work / f"{name}.json"
    if path.is_file() and not restart:
        return json.loads(path.read_text())
    out = make()
    path.write_text(json.dumps(out, indent=2))
    return out


def late_over_early(run_dir: Path, early: tuple[float, float], late: tuple[float, float], fps: float = 2.0) -> dict:
    """Mean over cases of identity similarity in ``late`` seconds ÷ in ``early`` seconds (per-frame identity at
    ``fps`` samples per second, as the eval run writes it), and both means."""
    sims = []
    for path in sorted((run_dir / "cases").glob("*.json")):
        per = json.loads(path.read_text()).get("per_frame", {}).get("face_sim", [])
        sims.append(np.array([np.nan if v is None else v for v in per], float))
    e = [np.nanmean(s[int(early[0] * fps) : int(early[1] * fps)]) for s in sims if len(s) > int(early[0] * fps)]
    late_means = [np.nanmean(s[int(late[0] * fps) : int(late[1] * fps)]) for s in sims if len(s) > int(late[0] * fps)]
    if not e or not late_means:
        return {"early": float("nan"), "late": float("nan"), "ratio": float("nan")}
    a, b = float(np.nanmean(e)), float(np.nanmean(late_means))
    return {"early": a, "late": b, "ratio": b / a if a else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints/world-small", help="the video-reference pipeline")
    ap.add_argument("--image-checkpoint", default="checkpoints/world-small-imageref", help="the image ablation")
    ap.add_argument("--work", type=Path, default=Path("benchmarks/out/world-quality"))
    ap.add_argument("--cases", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--long-seconds", type=int, default=60, choices=(20, 60), help="longform length (20: --quick)")
    ap.add_argument("--colour-correction", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: the checkpoint's)")
    ap.add_argument("--quick", action="store_true", help="4 cases × 4 s, longform 20 s (a smoke run)")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: longform, demo, mouth")
    ap.add_argument("--restart", action="store_true", help="run every part again")
    ap.add_argument("--vae-only", default=None, metavar="VAE_DIR",
                    help="only the VAE rows (round-trip Sync-C, identity, mouth r) of a VAE folder, beside the "
                         "ground truth: a candidate VAE measured before any DiT is trained on it")
    a = ap.parse_args()
    if a.quick:
        a.cases, a.seconds, a.long_seconds = 4, 4.0, 20
    skip = {s for s in a.skip.split(",") if s}
    work = a.work
    (work / "logs").mkdir(parents=True, exist_ok=True)
    py, cli = sys.executable, [sys.executable, "-m", "avatarv.cli"]
    start = time.time()

    bench = work / "bench"
    if not (bench / "manifest.json").is_file():
        run(cli + ["eval", "make-bench", "--out", str(bench), "--cases", str(a.cases), "--seconds", str(a.seconds)],
            work / "logs" / "make-bench.log")
    systems = {"gt": ["--system", "passthrough"],
               "vae": ["--system", "vae-roundtrip", "--checkpoint", a.vae_only or a.checkpoint],
               "video": ["--system", "avatarv", "--checkpoint", a.checkpoint],
               "image": ["--system", "avatarv-image-ref", "--checkpoint", a.image_checkpoint]}
    vae_dir = a.vae_only or str(Path(a.checkpoint) / "vae")
    if a.vae_only:  # the VAE's own rows: no DiT, no long runs, no demo
        systems = {k: systems[k] for k in ("gt", "vae")}
        skip |= {"longform", "demo"}
    # each run's folder; a candidate VAE gets its own (the ground truth and the bench are shared)
    outs = {n: work / n for n in systems}
    if a.vae_only:
        outs["vae"] = work / ("vae-" + "-".join(Path(a.vae_only).resolve().parts[-2:]))
    for name, spec in systems.items():
        steps = ["--steps", str(a.steps)] if a.steps and name in ("video", "image") else []
        run(cli + ["eval", "run", "--bench", str(bench), "--out", str(outs[name]), *spec, *steps,
                   *(["--restart"] if a.restart else [])], work / "logs" / f"eval-{name}.log")
    thesis_out = work / ("thesis" if not a.vae_only else outs["vae"].name + "-thesis")
    pairs = [] if a.vae_only else ["--pair", "video,image"]
    run([py, str(BENCH / "thesis.py"), "--bench", str(bench), *(f"--run={n}={outs[n]}" for n in systems),
         *pairs, "--out", str(thesis_out)], work / "logs" / "thesis.log")
    thesis = json.loads(thesis_out.with_suffix(".json").read_text())
    table = thesis["table"]
    k = min(a.cases, len({c["reference"] for c in json.loads((bench / "manifest.json").read_text())["cases"]}))

    def cell(system: str, metric: str) -> dict:
        t = table[system][metric]
        return {"value": t["mean"], "lo": t["lo"], "hi": t["hi"], "n": t["n"]}

    now = {"vae_sync_c": cell("vae", "sync_c"), "vae_identity": cell("vae", "face_sim"),
           "gt_sync_c": cell("gt", "sync_c"), "gt_identity": cell("gt", "face_sim"),
           "behaviour_top1_gt": cell("gt", "hit")}
    if not a.vae_only:
        pair = thesis["pairs"]["video,image"]
        now.update({"sync_c": cell("video", "sync_c"), "identity": cell("video", "face_sim"),
                    "behaviour_top1_video": cell("video", "hit"), "behaviour_top1_image": cell("image", "hit"),
                    "behaviour_top1_video_minus_image": {"value": pair["hit"]["mean_diff"], "lo": pair["hit"]["lo"],
                                                         "hi": pair["hit"]["hi"], "n": pair["hit"]["n"]}})
        span = a.seconds
        drift = late_over_early(work / "video", (0.0, min(2.0, span / 6)), (span * 10 / 12, span))
        now["identity_late_over_early"] = {"value": drift["ratio"], "early": drift["early"], "late": drift["late"]}

    if "mouth" not in skip:
        mouth = "mouth" if not a.vae_only else outs["vae"].name + "-mouth"
        rt = cached(work, mouth, a.restart, lambda: last_json(run(
            [py, str(BENCH / "vae_roundtrip.py"), "--vae", vae_dir, "--n", "1", "--trips", "1", "--chunk", "33",
             "--mouth-ids", "8"], work / "logs" / f"{mouth}.log")))
        now["vae_mouth_r"] = {"value": rt["vaes"][vae_dir]["mouth"]["r_recon"],
                              "original": rt["vaes"][vae_dir]["mouth"]["r_orig"]}
    if "longform" not in skip:
        lf = cached(work, f"longform{a.long_seconds}", a.restart, lambda: last_json(run(
            [py, str(BENCH / "longform.py"), "--checkpoint", a.checkpoint, "--only-long",
             *(["--quick"] if a.long_seconds == 20 else []), "--colour-correction", str(a.colour_correction),
             "--frames", str(work / f"longform{a.long_seconds}.png")], work / "logs" / "longform.log")))
        now["colour_de_60s"] = {"value": lf["drift_with_anchor"]["colour_de_last_vs_first"], "seconds": a.long_seconds}
        if "drift_with_anchor_and_colour" in lf:
            now["colour_de_60s_colour_anchor"] = {
                "value": lf["drift_with_anchor_and_colour"]["colour_de_last_vs_first"],
                "identity_last_vs_first": lf["drift_with_anchor_and_colour"]["last_vs_first"]}
    if "demo" not in skip:
        def demo() -> dict:
            t0 = time.perf_counter()
            out = run(cli + ["demo", "--out", str(work / "demo.mp4")], work / "logs" / "demo.log")
            wall = time.perf_counter() - t0
            summary = last_json("\n".join(line for line in out.splitlines() if line.startswith("{")))
            return {"wall_s": wall, "seconds": summary["seconds"], "decoder": summary.get("decoder")}
        d = cached(work, "demo", a.restart, demo)
        now["demo_s_per_s"] = {"value": d["wall_s"] / d["seconds"], "decoder": d.get("decoder")}

    print(f"\nK = {k} references (behaviour chance {1 / max(k, 1):.3f}); ground truth: Sync-C "
          f"{now['gt_sync_c']['value']:.2f}, identity {now['gt_identity']['value']:.2f}, "
          f"behaviour top-1 {now['behaviour_top1_gt']['value']:.2f}\n")
    print("| measure | today (issue) | target | now | 95 % CI | met |\n|---|---|---|---|---|---|")
    met = {}
    for key, label, today, target, higher in ROWS:
        if key not in now:
            continue
        v = now[key]["value"]
        ci = f"[{now[key]['lo']:.2f}, {now[key]['hi']:.2f}]" if "lo" in now[key] else ""
        ok = bool(np.isfinite(v) and (v >= target if higher else v <= target))
        if key == "behaviour_top1_video_minus_image":
            ok = bool(np.isfinite(now[key]["lo"]) and now[key]["lo"] > 0)  # a CI clear of zero
        met[key] = ok
        print(f"| {label} | {'—' if today is None else today} | {'≥' if higher else '≤'} {target} | {v:.3f} | {ci} | "
              f"{'yes' if ok else 'no'} |")
    from avatarv.precision import capability

    print(json.dumps({"bench": "world_quality", "cases": a.cases, "seconds": a.seconds,
                      "checkpoint": a.vae_only or a.checkpoint,
                      "now": now, "met": met, "machine": capability(), "wall_s": round(time.time() - start, 1)},
                     default=float))


if __name__ == "__main__":
    main()

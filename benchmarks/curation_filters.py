"""Precision and recall of every curation filter on labelled world raw footage (the table for the note).

    python benchmarks/curation_filters.py [--videos 6] [--seconds 60] [--size 128] [--seed 0] [--workers 2]

Makes ``--videos`` raw world videos (every defect kind in each, the content kinds included: screencast,
game, photo-like and piper-voiced shots, as many as fit; cuts, fades and dissolves between shots; re-encoded,
cropped and resized near-duplicates), runs the ``filters`` preset through the engine and
scores each filter against the labels (``data/curation/evaluate.py``: one-second windows, cut events,
duplicate pairs). Also scores the lip-sync filter's two scorers side by side (SyncNet windows, the
default, vs the mouth/loudness envelope). The synthetic-speech filter runs with ``synthetic_classes=("piper",
"matched")``: the world's people speak with espeak-ng, which is their natural voice there. Writes ``benchmarks/out/curation_filters.md`` and ends with one
JSON line. The run resumes: a killed run picks up where it stopped (the engine's own state).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0, help="world seed (the rules were tuned on seed 0)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "avatarv-curation-filters")
    args = ap.parse_args()

    from avatarv.data.curation.engine import Engine
    from avatarv.data.curation.evaluate import filter_scores, format_table
    from avatarv.data.curation.pipeline import Pipeline
    from avatarv.data.curation.stages import PRESETS
    from avatarv.data.curation.stages.sync import LipSync
    from avatarv.data.curation.stages.synthetic_speech import SyntheticSpeech
    from avatarv.data.curation.worldset import make_raw_set
    from avatarv.world.raw import ALL_DEFECTS

    tag = f"v{args.videos}_{args.seconds:g}s_{args.size}px_content" + (f"_seed{args.seed}" if args.seed else "")
    inp, work = args.work / f"raw_{tag}", args.work / f"out_{tag}"
    make_raw_set(inp, videos=args.videos, seconds=args.seconds, size=args.size, seed=args.seed, defects=(ALL_DEFECTS,))
    world_voice = SyntheticSpeech(synthetic_classes=("piper", "matched"))
    tables = {}
    for scorer in ("envelope", "syncnet"):  # the default (syncnet) last: the table's other rows are shared
        swap = {"lipsync": LipSync(scorer=scorer), "synthetic_speech": world_voice}
        stages = [swap.get(s.name, s) for s in PRESETS["filters"]()]
        engine = Engine(Pipeline(stages), inp, work)
        report = engine.run("local", workers=args.workers)
        if report.failures:
            raise SystemExit(f"curation_filters: {len(report.failures)} failed tasks: {report.failures[:3]}")
        keys = {k: t.key for k, t in engine.plan().items()}  # this pipeline's artifacts, not the store's latest
        engine.close()
        tables[scorer] = filter_scores(work, inp, keys)
    scores = tables["syncnet"]
    scores["desync (envelope scorer)"] = tables["envelope"]["desync"]
    table = format_table(scores)
    print(table)
    OUT.mkdir(exist_ok=True)
    name = "curation_filters.md" if not args.seed else f"curation_filters_seed{args.seed}.md"
    (OUT / name).write_text(
        f"Filters on world raw footage: {args.videos} videos x {args.seconds:g} s at {args.size} px, seed {args.seed}.\n\n"
        f"{table}\n")
    print(json.dumps({"videos": args.videos, "seconds": args.seconds, "seed": args.seed,
                      "filters": {k: {m: round(v[m], 3) if isinstance(v[m], float) else v[m] for m in v}
                                  for k, v in scores.items()}}))


if __name__ == "__main__":
    main()

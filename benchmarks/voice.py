"""Voice engine benchmark: matched vs plain speech for world (espeak-ng) and real speakers.

    python benchmarks/voice.py [--no-tune] [--texts N]

Prints a per-speaker table and ends with one JSON line: rtf_plain, rtf_matched, id_accuracy,
sim_plain, sim_matched, wer_plain, wer_matched.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from avatarv.voice.evaluate import TEST_TEXTS, evaluate_matching, real_samples, table, world_samples

REAL_SPEECH = Path(__file__).resolve().parents[1].parent / "shared" / "real" / "speech"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-tune", action="store_true", help="acoustic matching only (no embedding-guided tuning)")
    parser.add_argument("--texts", type=int, default=len(TEST_TEXTS))
    args = parser.parse_args()

    samples = world_samples()
    english = sorted(REAL_SPEECH.glob("en_*.wav")) if REAL_SPEECH.is_dir() else []
    if not english:
        print(f"note: no real speech at {REAL_SPEECH}; world voices only")
    samples.update(real_samples(english))
    t0 = time.perf_counter()
    report = evaluate_matching(samples, TEST_TEXTS[: args.texts], tune=not args.no_tune)
    print(table(report))
    for r in report.rows:
        print(f"{r.name}: identified as {r.identified_as}, conversion {r.conversion}")
    summary = report.summary()
    summary.update(speakers=len(report.rows), texts=args.texts, tuned=not args.no_tune,
                   seconds=round(time.perf_counter() - t0, 1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

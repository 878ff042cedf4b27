"""Voice matching on held-out speakers (issue #34): speakers that shaped the method are never scored.

    python benchmarks/voice.py                      # the held-out protocol, default policy, 3 texts
    python benchmarks/voice.py --speakers tuning    # the tuning set (where design choices are made)
    python benchmarks/voice.py --policy voice+residual,voice --texts 1 --no-wer
    python benchmarks/voice.py --probe              # what the speaker embedding responds to

The two sets are listed once, in ``avatarv.voice.protocol`` (TUNING_SPEAKERS, HELD_OUT_SPEAKERS). For
every scored speaker: profile its sample, speak the test texts plainly and matched, and compare the
matched speech's resemblyzer embedding with every scored speaker's sample (identified when its own is
the nearest). Prints the per-speaker table, writes it with the JSON to ``--out`` (default
``benchmarks/results/voice-heldout.md`` for the held-out set) and ends with one JSON line (CPU and
load average named; real-time factors are wall-clock on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from avatarv.voice.evaluate import TEST_TEXTS, evaluate, table
from avatarv.voice.match import POLICIES
from avatarv.voice.protocol import HELD_OUT_SPEAKERS, REAL_ROOT, TUNING_SPEAKERS, check_protocol

RESULTS = Path(__file__).resolve().parent / "results"
NOTES_MARKER = "<!-- notes -->"


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def probe() -> None:
    """Similarity of a voice to itself after a channel change vs after a voice change (4 voices)."""
    from avatarv.voice.channel import CHANNELS
    from avatarv.voice.embedding import cosine, speaker_embedding
    from avatarv.voice.synth import get_synthesiser
    from avatarv.voice.world import analyse, synthesise, warp_frequency

    def world_edit(wave, f0=1.0, warp=1.0, breath=0.0):
        a = analyse(wave)
        a.f0, a.log_sp, a.log_ap = a.f0 * f0, warp_frequency(a.log_sp, warp), np.minimum(a.log_ap + breath, 0)
        return synthesise(a)

    edits = {f"channel: {k}": v for k, v in CHANNELS.items() if k != "clean"}
    edits.update({
        "vocoder: WORLD resynthesis": lambda w: world_edit(w),
        "voice: F0 x0.8": lambda w: world_edit(w, f0=0.8),
        "voice: F0 x1.25": lambda w: world_edit(w, f0=1.25),
        "voice: F0 x1.6": lambda w: world_edit(w, f0=1.6),
        "voice: formants x0.9": lambda w: world_edit(w, warp=0.9),
        "voice: formants x1.1": lambda w: world_edit(w, warp=1.1),
        "voice: formants x1.18": lambda w: world_edit(w, warp=1.18),
        "voice: F0 x1.6 + formants x1.18": lambda w: world_edit(w, f0=1.6, warp=1.18),
        "voice: breathier (ln aperiodicity +1.5)": lambda w: world_edit(w, breath=1.5),
    })
    sources = {"piper": get_synthesiser().synthesise(TEST_TEXTS[0])}
    sources.update({s.name: s.speak(TEST_TEXTS[0]) for s in TUNING_SPEAKERS[:3]})  # tuning voices only
    emb = {k: speaker_embedding(v) for k, v in sources.items()}
    names = list(sources)
    print("| edit | " + " | ".join(names) + " | mean |")
    print("|---|" + "---|" * (len(names) + 1))
    between = [cosine(emb[a], emb[b]) for i, a in enumerate(names) for b in names[i + 1:]]
    print(f"| (another voice: mean over pairs) | {' | '.join('' for _ in names)} | {np.mean(between):.3f} |")
    for label, edit in edits.items():
        sims = [cosine(speaker_embedding(edit(w)), emb[k]) for k, w in sources.items()]
        print(f"| {label} | " + " | ".join(f"{v:.3f}" for v in sims) + f" | {np.mean(sims):.3f} |")
    print(json.dumps({"cpu": cpu_name(), "probe": "embedding similarity to the unedited voice"}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speakers", choices=("held-out", "tuning"), default="held-out")
    parser.add_argument("--policy", default="sources+check", help=f"comma-separated, of {', '.join(POLICIES)}")
    parser.add_argument("--texts", type=int, default=len(TEST_TEXTS))
    parser.add_argument("--no-wer", action="store_true", help="skip Whisper (design loops)")
    parser.add_argument("--no-tune", action="store_true", help="acoustic estimates only (no embedding search)")
    parser.add_argument("--out", type=Path, default=None, help="markdown results file")
    parser.add_argument("--probe", action="store_true", help="what the speaker embedding responds to")
    args = parser.parse_args()
    if args.probe:
        probe()
        return

    check_protocol()
    speakers = HELD_OUT_SPEAKERS if args.speakers == "held-out" else TUNING_SPEAKERS
    missing = [s.name for s in speakers if s.kind == "real" and not (REAL_ROOT / s.path).is_file()]
    if missing:
        print(f"note: real media missing under {REAL_ROOT}, not scored: {missing}")
    speakers = [s for s in speakers if s.name not in missing]
    policies = {name: POLICIES[name] for name in args.policy.split(",")}
    samples = {s.name: s.sample() for s in speakers}
    groups = {s.name: s.group for s in speakers}
    t0 = time.perf_counter()
    reports = evaluate(samples, TEST_TEXTS[: args.texts], policies, groups, wer=not args.no_wer, tune=not args.no_tune)
    seconds = round(time.perf_counter() - t0, 1)

    lines, summaries = [], []
    for name, report in reports.items():
        summary = {"speakers_set": args.speakers, "policy": name, **report.summary(), "texts": args.texts,
                   "tuned": not args.no_tune, "cpu": cpu_name(), "cores": os.cpu_count(),
                   "load_average": list(report.load_average), "seconds": seconds}
        summaries.append(summary)
        lines += [f"### {args.speakers} speakers, policy `{name}`", "", table(report), "", "```json",
                  json.dumps(summary), "```", ""]
    text = "\n".join(lines)
    print(text)
    out = args.out or (RESULTS / "voice-heldout.md" if args.speakers == "held-out" else None)
    if out is not None:
        sets = ["", "Tuning speakers (never scored): " + ", ".join(f"{s.name} ({s.espeak_voice} p{s.pitch} "
                f"{s.words_per_minute} wpm, {s.channel})" for s in TUNING_SPEAKERS),
                "", "Held-out speakers (scored): " + ", ".join(s.name for s in HELD_OUT_SPEAKERS), ""]
        out.parent.mkdir(parents=True, exist_ok=True)
        notes = ""  # hand-written analysis below NOTES_MARKER survives a re-run
        if out.is_file() and NOTES_MARKER in out.read_text():
            notes = out.read_text()[out.read_text().index(NOTES_MARKER):]
        header = (f"# Voice matching, held-out protocol ({args.speakers} speakers)\n\n"
                  f"`python benchmarks/voice.py {' '.join(sys.argv[1:])}`\n")
        out.write_text(header + "\n".join(sets) + "\n" + text + ("\n" + notes if notes else ""))
    for summary in summaries:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()

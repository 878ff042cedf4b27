"""Consent thresholds measured on the real clips: identity distance, liveness, phrase word error rate.

    python benchmarks/consent_thresholds.py [--out benchmarks/results/consent-thresholds.md]

For each real clip of ``../shared/real/clips`` (five different people) the first half is a reference and the
second half a consent clip, written as mp4 (a re-encode) and read back through ``avatarv.serve.consent`` exactly as
``verify_consent`` reads them. Variants of each second half:

- ``low``: re-encoded again at half the size, crf 35 (a poor phone upload);
- ``still``: its first frame repeated for its duration, with its audio (a photo with a voice-over);
- ``still+noise``: the same with fresh Gaussian pixel noise (sigma 4) on every frame;
- ``pan``: its first frame slowly zoomed (1.0 -> 1.12) and panned, with its audio (a "Ken Burns" photo).

Identity: same person = a clip's first half vs its own second half (and ``low``); different people = one clip's
first half vs every other clip's second half (and ``low``). Threshold: the midpoint of the gap between the largest
same-person and the smallest different-person distance. Liveness: the real second halves (and ``low``) vs the
fakes; thresholds at the geometric mean of the gap. Phrase: every challenge word is spoken once by the piper
voice (the words dealt into phrases of five, each said after a carrier sentence) and transcribed by Whisper
tiny.en; the right phrase's WER vs another phrase's WER against the same transcript and against the real clips'
transcripts. Prints a table and one JSON line; writes the markdown report.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from itertools import permutations
from pathlib import Path

import numpy as np

from avatarv.media import write_mp4
from avatarv.serve.challenge import CHALLENGE_WORDS
from avatarv.serve.consent import (
    ConsentPolicy,
    face_descriptors,
    face_motion,
    identity_embedder,
    identity_scores,
    load_clip,
    mouth_movement,
    mouth_series,
    phrase_wer,
    track_face,
    transcribe_clip,
)

REAL_CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "real" / "clips"
CARRIER = "I agree to the creation of my avatar."
LIVE, FAKE_MOTION, FAKE_MOUTH = ("second", "low"), ("still", "still+noise"), ("still", "still+noise", "pan")


def even(frames: np.ndarray) -> np.ndarray:
    h, w = frames.shape[1:3]
    return frames[:, : h - h % 2, : w - w % 2]


def variants(video, workdir: Path) -> dict[str, Path]:
    """The clip's halves and the fakes made from its second half, as mp4 files."""
    import cv2

    half = video.num_frames // 2
    cut = int(round(half / video.fps * video.sample_rate))
    first, second = even(video.frames[:half]), even(video.frames[half:])
    audio1, audio2 = video.audio[:cut], video.audio[cut:]
    n, (h, w) = len(second), second.shape[1:3]
    still = np.repeat(second[:1], n, axis=0)
    rng = np.random.default_rng(0)
    noisy = np.clip(still.astype(np.float32) + rng.normal(0, 4, still.shape), 0, 255).astype(np.uint8)
    pan = []
    for t in range(n):
        s = 1.0 + 0.12 * t / max(n - 1, 1)
        m = np.array([[s, 0, -(s - 1) * w / 2 + 0.03 * w * t / n], [0, s, -(s - 1) * h / 2]], np.float32)
        pan.append(cv2.warpAffine(second[0], m, (w, h), borderMode=cv2.BORDER_REFLECT))
    low = np.stack([cv2.resize(f, (w // 4 * 2, h // 4 * 2), interpolation=cv2.INTER_AREA) for f in second])
    clips = {"first": (first, audio1, 18), "second": (second, audio2, 18), "low": (low, audio2, 35),
             "still": (still, audio2, 23), "still+noise": (noisy, audio2, 23), "pan": (np.stack(pan), audio2, 23)}
    out = {}
    for name, (frames, audio, crf) in clips.items():
        out[name] = write_mp4(workdir / f"{name.replace('+', '_')}.mp4", frames, video.fps, audio, crf=crf)
    return out


def analyse(path: Path, role: str, policy: ConsentPolicy, embedder) -> dict:
    if role == "reference":
        video = load_clip(path, policy, policy.reference_fps, policy.max_reference_s, require_audio=False)
        track = track_face(video.frames, 1)
        return {"descriptors": face_descriptors(video.frames, track, policy.identity_frames, embedder),
                "face_fraction": track.face_fraction}
    video = load_clip(path, policy, policy.analysis_fps, policy.max_consent_s, require_audio=True)
    track = track_face(video.frames, policy.detect_every)
    return {"descriptors": face_descriptors(video.frames, track, policy.identity_frames, embedder),
            "face_fraction": track.face_fraction, "face_motion": face_motion(video.frames, track),
            "mouth_movement": mouth_movement(mouth_series(video.frames, track)), "transcript": transcribe_clip(video)}


def gap_threshold(low_side: list[float], high_side: list[float], geometric: bool = False) -> tuple[float, float, float]:
    """(max of the low side, min of the high side, threshold in the gap: midpoint or geometric mean)."""
    lo, hi = max(low_side), min(high_side)
    mid = float(np.sqrt(max(lo, 1e-6) * hi)) if geometric else (lo + hi) / 2
    return lo, hi, mid


def phrase_trials(real_transcripts: dict[str, str]) -> dict:
    from avatarv.voice.asr import normalise_words, transcribe
    from avatarv.voice.synth import get_synthesiser

    words = list(CHALLENGE_WORDS)
    random.Random(0).shuffle(words)
    phrases = [" ".join(words[i : i + 5]) for i in range(0, len(words), 5)]
    synth = get_synthesiser()
    right, other, heard, missed = [], [], {}, []
    for k, phrase in enumerate(phrases):
        text = transcribe(np.concatenate([synth.synthesise(CARRIER), synth.synthesise(phrase + ".")])).text
        heard[phrase] = text
        wer, window = phrase_wer(phrase, text)
        right.append(wer)
        got = set(normalise_words(window))
        missed += [w for w in phrase.split() if w not in got]
        other.append(phrase_wer(phrases[(k + 1) % len(phrases)], text)[0])
    real = [phrase_wer(p, t)[0] for p in phrases for t in real_transcripts.values()]
    return {"synth": synth.name, "phrases": len(phrases), "right": right, "other": other, "real": real,
            "missed_words": missed, "heard": heard}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "consent-thresholds.md")
    args = parser.parse_args()
    clips = sorted(REAL_CLIPS.glob("*.mp4"))
    if len(clips) < 2:
        raise SystemExit(f"consent_thresholds: no real clips at {REAL_CLIPS}")
    from avatarv.media import read_video

    t0 = time.perf_counter()
    policy = ConsentPolicy()
    embedder = identity_embedder(policy)
    ref, con = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            work = Path(tmp) / clip.stem
            work.mkdir()
            files = variants(read_video(clip, require_audio=True), work)
            ref[clip.stem] = analyse(files["first"], "reference", policy, embedder)
            con[clip.stem] = {name: analyse(p, "consent", policy, embedder) for name, p in files.items()
                              if name != "first"}
    names = [c.stem for c in clips]

    same = {(a, v): identity_scores(ref[a]["descriptors"], con[a][v]["descriptors"])["identity_distance"]
            for a in names for v in LIVE}
    diff = {(a, b, v): identity_scores(ref[a]["descriptors"], con[b][v]["descriptors"])["identity_distance"]
            for a, b in permutations(names, 2) for v in LIVE}
    id_lo, id_hi, id_thr = gap_threshold(list(same.values()), list(diff.values()))

    motion = {(a, v): con[a][v]["face_motion"] for a in names for v in con[a]}
    mouth = {(a, v): con[a][v]["mouth_movement"] for a in names for v in con[a]}
    mo_lo, mo_hi, mo_thr = gap_threshold([motion[a, v] for a in names for v in FAKE_MOTION],
                                         [motion[a, v] for a in names for v in LIVE], geometric=True)
    mu_lo, mu_hi, mu_thr = gap_threshold([mouth[a, v] for a in names for v in FAKE_MOUTH],
                                         [mouth[a, v] for a in names for v in LIVE], geometric=True)

    trials = phrase_trials({a: con[a]["second"]["transcript"] for a in names})
    wer_lo, wer_hi, wer_mid = gap_threshold(trials["right"], trials["other"] + trials["real"])
    # a 5-word phrase's WER moves in steps of 0.2: the largest step strictly below the gap midpoint, and never
    # above 0.4 (3 of the 5 random words must be heard, which no recording made before the challenge has)
    wer_thr = min(np.floor(wer_mid * 5 - 1e-9) / 5, 0.4)

    lines = ["# Consent thresholds (benchmarks/consent_thresholds.py)", "",
             f"Real clips: {len(names)} people ({', '.join(names)}), reference = first half, consent = second half.",
             "", "## Identity: dlib ResNet, distance between the mean descriptors of 16 frames per video", "",
             "| reference \\ consent | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for a in names:
        cells = [f"{identity_scores(ref[a]['descriptors'], con[b]['second']['descriptors'])['identity_distance']:.3f}"
                 f" / {identity_scores(ref[a]['descriptors'], con[b]['low']['descriptors'])['identity_distance']:.3f}"
                 for b in names]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    lines += ["", "(cell: consent second half as re-encoded at crf 18 / again at half size, crf 35)", "",
              f"same person: max {id_lo:.3f} (n={len(same)}); different people: min {id_hi:.3f} (n={len(diff)}); "
              f"gap midpoint **{id_thr:.3f}** (margins {id_thr - id_lo:.3f} / {id_hi - id_thr:.3f})", "",
              "## Liveness: face motion (grey levels per frame at 12.5 fps) / mouth movement (p90 - p10)", "",
              "| clip | " + " | ".join(con[names[0]]) + " |", "|---|" + "---|" * len(con[names[0]])]
    for a in names:
        lines.append(f"| {a} | " + " | ".join(f"{motion[a, v]:.2f} / {mouth[a, v]:.3f}" for v in con[a]) + " |")
    lines += ["", f"face motion: stills (with or without pixel noise) max {mo_lo:.3f}, live min {mo_hi:.3f} -> "
              f"**{mo_thr:.3f}** (geometric mean; a pan moves on purpose and is left to the mouth)",
              f"mouth movement: stills/pans max {mu_lo:.4f}, live min {mu_hi:.4f} -> **{mu_thr:.4f}** (geometric mean)",
              "", f"## Phrase: {trials['phrases']} phrases of the challenge words spoken by {trials['synth']}, "
              "Whisper tiny.en, WER vs the best-aligned transcript window", "",
              f"right phrase: max {wer_lo:.2f}, mean {np.mean(trials['right']):.3f}; another phrase vs the same "
              f"speech: min {min(trials['other']):.2f}; challenge phrases vs the real clips' speech: min "
              f"{min(trials['real']):.2f} -> gap midpoint {wer_mid:.2f}; threshold (a 5-word step below it, at most 0.4): "
              f"**{wer_thr:.1f}**",
              f"words not recognised ({len(trials['missed_words'])} of {len(CHALLENGE_WORDS)}): "
              f"{', '.join(trials['missed_words']) or 'none'}", "", "| phrase | heard | WER |", "|---|---|---|"]
    lines += [f"| {p} | {h} | {w:.2f} |" for (p, h), w in zip(trials["heard"].items(), trials["right"], strict=True)]
    lines += ["", "Transcripts of the real consent halves:", ""]
    lines += [f"- {a}: {con[a]['second']['transcript']!r}" for a in names]
    summary = {"identity_same_max": round(id_lo, 4), "identity_diff_min": round(id_hi, 4),
               "max_identity_distance": round(id_thr, 3), "motion_still_max": round(mo_lo, 4),
               "motion_live_min": round(mo_hi, 4), "min_face_motion": round(mo_thr, 3),
               "mouth_fake_max": round(mu_lo, 4), "mouth_live_min": round(mu_hi, 4),
               "min_mouth_movement": round(mu_thr, 4), "wer_right_max": round(wer_lo, 3),
               "wer_wrong_min": round(wer_hi, 3), "wer_midpoint": round(wer_mid, 3), "max_phrase_wer": round(wer_thr, 1),
               "words_missed": len(trials["missed_words"]), "people": len(names),
               "seconds": round(time.perf_counter() - t0, 1)}
    lines += ["", "```json", json.dumps(summary), "```", ""]
    report = "\n".join(lines)
    print(report)
    print(json.dumps(summary))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)


if __name__ == "__main__":
    main()

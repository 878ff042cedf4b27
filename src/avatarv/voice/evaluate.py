"""Measuring voice matching: speaker identification, similarity, intelligibility, pitch and rate.

Shared by ``tests/integration/test_voice_matching.py`` (a small set, thresholds) and
``benchmarks/voice.py`` (the full per-speaker table). For each speaker: profile its sample, speak new
text plainly and matched, then compare speaker embeddings with every speaker's sample.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# espeak-ng voices of the world (accent + variant, pitch 0–99, words per minute): far apart in pitch and rate.
WORLD_VOICES = {
    "world_low_male": ("en-us", "m3", 25, 145, 85.0, False),
    "world_high_female": ("en", "f2", 80, 195, 250.0, True),
    "world_low_female": ("en-gb-x-rp", "f4", 35, 160, 190.0, True),
    "world_fast_male": ("en-gb-scotland", "m7", 55, 215, 105.0, False),
}
# ≈ 10–14 s read by each world voice as its voice sample (never one of TEST_TEXTS).
SAMPLE_TEXT = (
    "The old lighthouse keeper climbed the stairs every evening to light the lamp. Ships passing in the "
    "night would see the beam sweep across the dark water, and the sailors knew they were close to home."
)
TEST_TEXTS = (
    "Please remember to bring your umbrella tomorrow, because it might rain in the afternoon. "
    "The forecast says the storm will pass by the evening.",
    "Our meeting has been moved to Thursday at three o'clock in the main conference room. "
    "Bring the quarterly figures and a copy of the new plan.",
    "The museum opens early on weekends, so we can see the paintings before the crowds arrive. "
    "After that, we could have lunch by the river.",
)


def world_samples(names=None) -> dict[str, np.ndarray]:
    """Voice samples spoken by the world's espeak-ng voices (16 kHz mono)."""
    from avatarv.world.identity import Voice
    from avatarv.world.speech import speak as world_speak

    out = {}
    for name in names or WORLD_VOICES:
        accent, variant, pitch, rate, f0, female = WORLD_VOICES[name]
        voice = Voice(accent=accent, variant=variant, pitch=pitch, rate=rate, f0=f0, female=female)
        out[name] = world_speak(SAMPLE_TEXT, voice, engine="espeak")
    return out


def real_samples(paths) -> dict[str, np.ndarray]:
    from avatarv.voice.audio import load_audio

    return {f"real_{Path(p).stem}": load_audio(p) for p in paths}


@dataclass
class SpeakerRow:
    name: str
    f0_target: float
    f0_matched: float
    rate_target: float
    rate_matched: float
    sim_plain: float
    sim_matched: float
    identified_as: list[str]
    wer_plain: float
    wer_matched: float
    rtf_matched: float
    conversion: dict = field(default_factory=dict)

    @property
    def correct(self) -> float:
        return float(np.mean([p == self.name for p in self.identified_as]))


@dataclass
class MatchingReport:
    rows: list[SpeakerRow]
    rtf_plain: float

    def summary(self) -> dict:
        r = self.rows
        return {
            "rtf_plain": round(self.rtf_plain, 4),
            "rtf_matched": round(float(np.mean([x.rtf_matched for x in r])), 4),
            "id_accuracy": round(float(np.mean([x.correct for x in r])), 4),
            "sim_plain": round(float(np.mean([x.sim_plain for x in r])), 4),
            "sim_matched": round(float(np.mean([x.sim_matched for x in r])), 4),
            "wer_plain": round(float(np.mean([x.wer_plain for x in r])), 4),
            "wer_matched": round(float(np.mean([x.wer_matched for x in r])), 4),
        }


def evaluate_matching(samples: dict[str, np.ndarray], texts=TEST_TEXTS, tune: bool = True) -> MatchingReport:
    from avatarv.voice.asr import transcribe, word_error_rate
    from avatarv.voice.embedding import speaker_embedding
    from avatarv.voice.engine import speak
    from avatarv.voice.measure import pitch_stats, speaking_rate
    from avatarv.voice.profile import profile

    names = list(samples)
    sample_emb = np.stack([speaker_embedding(samples[n]) for n in names])  # [K, 256]
    speak("Warm up.")  # load the synthesiser outside the timed calls
    plain, plain_time, plain_audio = [], 0.0, 0.0
    for text in texts:
        t0 = time.perf_counter()
        wave = speak(text)
        plain_time += time.perf_counter() - t0
        plain_audio += wave.size / 16000
        plain.append(wave)
    plain_emb = np.stack([speaker_embedding(w) for w in plain])  # [T, 256]
    wer_plain = float(np.mean([word_error_rate(t, transcribe(w).text) for t, w in zip(texts, plain, strict=True)]))

    rows = []
    for k, name in enumerate(names):
        voice = profile(samples[name], tune=tune)
        matched, elapsed, audio_s = [], 0.0, 0.0
        for text in texts:
            t0 = time.perf_counter()
            wave = speak(text, voice)
            elapsed += time.perf_counter() - t0
            audio_s += wave.size / 16000
            matched.append(wave)
        emb = np.stack([speaker_embedding(w) for w in matched])  # [T, 256]
        sims = emb @ sample_emb.T  # [T, K]
        joined = np.concatenate(matched)
        rows.append(
            SpeakerRow(
                name=name,
                f0_target=voice.f0_median_hz,
                f0_matched=pitch_stats(joined).median_hz,
                rate_target=voice.rate_syllables_per_s,
                rate_matched=float(np.mean([speaking_rate(w).syllables_per_s for w in matched])),
                sim_plain=float((plain_emb @ sample_emb[k]).mean()),
                sim_matched=float(sims[:, k].mean()),
                identified_as=[names[j] for j in sims.argmax(1)],
                wer_plain=wer_plain,
                wer_matched=float(
                    np.mean([word_error_rate(t, transcribe(w).text) for t, w in zip(texts, matched, strict=True)])
                ),
                rtf_matched=elapsed / audio_s,
                conversion=next(iter(voice.conversions.values())),
            )
        )
    return MatchingReport(rows, plain_time / plain_audio)


def table(report: MatchingReport) -> str:
    head = "| speaker | F0 target→matched (Hz) | rate target→matched (syll/s) | sim plain | sim matched | identified | WER matched |"
    lines = [head, "|" + "---|" * 7]
    for r in report.rows:
        lines.append(
            f"| {r.name} | {r.f0_target:.0f} → {r.f0_matched:.0f} | {r.rate_target:.2f} → {r.rate_matched:.2f} | "
            f"{r.sim_plain:.3f} | {r.sim_matched:.3f} | {r.correct:.2f} | {r.wer_matched:.3f} |"
        )
    return "\n".join(lines)

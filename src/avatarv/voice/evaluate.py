"""Measuring voice matching: speaker identification, similarity, intelligibility, pitch and rate.

Shared by the voice tests (a few speakers, thresholds) and ``benchmarks/voice.py`` (the held-out
protocol of ``protocol.py``). For each speaker: profile its sample, speak new text plainly and
matched, then compare the matched speech's speaker embedding with every scored speaker's sample;
the speaker is identified on a text when its own sample is the nearest (resemblyzer cosine).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from avatarv.voice.match import POLICIES, MatchingPolicy

TEST_TEXTS = (
    "Please remember to bring your umbrella tomorrow, because it might rain in the afternoon. "
    "The forecast says the storm will pass by the evening.",
    "Our meeting has been moved to Thursday at three o'clock in the main conference room. "
    "Bring the quarterly figures and a copy of the new plan.",
    "The museum opens early on weekends, so we can see the paintings before the crowds arrive. "
    "After that, we could have lunch by the river.",
)


@dataclass
class SpeakerRow:
    name: str
    group: str
    f0_target: float
    f0_matched: float
    rate_target: float
    rate_matched: float
    sim_plain: float  # plain voice vs this speaker's sample (mean over texts)
    sim_matched: float  # matched voice vs this speaker's sample
    nearest_other: str  # the other scored sample closest to the matched voice
    sim_nearest_other: float
    identified_as: list[str]  # nearest sample per text
    wer_matched: float
    rtf_matched: float
    cpu_rtf_matched: float  # process CPU seconds (all threads) per second of speech: what load cannot inflate
    conversion: dict = field(default_factory=dict)
    source: str = ""  # the source voice matching started from
    source_scores: dict = field(default_factory=dict)  # each source's similarity after its acoustic start

    @property
    def correct(self) -> float:
        return float(np.mean([p == self.name for p in self.identified_as]))


@dataclass
class MatchingReport:
    rows: list[SpeakerRow]
    rtf_plain: float
    wer_plain: float
    sim_plain_mean: float = float("nan")
    load_average: tuple = ()

    def summary(self) -> dict:
        r = self.rows
        out = {
            "speakers": len(r),
            "id_accuracy": round(float(np.mean([x.correct for x in r])), 4),
            "closer_than_plain": int(sum(x.sim_matched > x.sim_plain for x in r)),
            "sim_plain": round(float(np.mean([x.sim_plain for x in r])), 4),
            "sim_matched": round(float(np.mean([x.sim_matched for x in r])), 4),
            "wer_plain": round(self.wer_plain, 4),
            "wer_matched": round(float(np.nanmean([x.wer_matched for x in r])), 4),
            "rtf_plain": round(self.rtf_plain, 4),
            "rtf_matched": round(float(np.mean([x.rtf_matched for x in r])), 4),
            "rtf_matched_max": round(float(np.max([x.rtf_matched for x in r])), 4),
            "cpu_rtf_matched": round(float(np.mean([x.cpu_rtf_matched for x in r])), 4),
            "cpu_rtf_matched_max": round(float(np.max([x.cpu_rtf_matched for x in r])), 4),
        }
        for group in dict.fromkeys(x.group for x in r):
            out[f"id_accuracy_{group}"] = round(float(np.mean([x.correct for x in r if x.group == group])), 4)
        return out


def evaluate(
    samples: dict[str, np.ndarray],
    texts=TEST_TEXTS,
    policies: dict[str, MatchingPolicy] | None = None,
    groups: dict[str, str] | None = None,
    wer: bool = True,
    tune: bool = True,
    log=print,
) -> dict[str, MatchingReport]:
    """One report per policy. Each speaker is measured once (``profile`` without tuning), then each
    policy fits its conversion and speaks ``texts``; WER by Whisper tiny.en when ``wer``."""
    from avatarv.voice.asr import transcribe, word_error_rate
    from avatarv.voice.embedding import speaker_embedding
    from avatarv.voice.engine import speak
    from avatarv.voice.match import source_voice
    from avatarv.voice.measure import pitch_stats, speaking_rate
    from avatarv.voice.profile import match_voice, profile
    from avatarv.voice.synth import available_sources, get_synthesiser

    policies = policies or {"sources+check": POLICIES["sources+check"]}
    groups = groups or {}
    names = list(samples)
    sample_emb = np.stack([speaker_embedding(samples[n]) for n in names])  # [K, 256]
    synth = get_synthesiser()
    source_voice(synth)
    speak("Warm up.")  # load the synthesiser outside the timed calls
    sources = {name: available_sources(p.sources) for name, p in policies.items() if p.sources}
    for synths in sources.values():
        for other in synths:
            source_voice(other)
            other.synthesise("Warm up.")
    plain, plain_time, plain_audio = [], 0.0, 0.0
    for text in texts:
        t0 = time.perf_counter()
        wave = speak(text)
        plain_time += time.perf_counter() - t0
        plain_audio += wave.size / 16000
        plain.append(wave)
    plain_emb = np.stack([speaker_embedding(w) for w in plain])  # [T, 256]
    wer_plain = (
        float(np.mean([word_error_rate(t, transcribe(w).text) for t, w in zip(texts, plain, strict=True)]))
        if wer else float("nan")
    )
    sim_plain = plain_emb @ sample_emb.T  # [T, K]

    rows: dict[str, list[SpeakerRow]] = {p: [] for p in policies}
    for k, name in enumerate(names):
        measured = profile(samples[name], tune=False)
        for policy_name, policy in policies.items():
            if len(sources.get(policy_name, [])) > 1:
                voice, info = match_voice(measured, None, tune, policy)
                scores = {**info["scores"], **{f"check_wer {n}": v for n, v in info["check_wer"].items()}}
            else:
                voice, scores = match_voice(measured, synth, tune, policy)[0], {}
            chosen = get_synthesiser(voice.source_synthesiser) if voice.source_synthesiser else synth
            conversion = voice.conversion_for(chosen.name)
            matched, elapsed, cpu, audio_s = [], 0.0, 0.0, 0.0
            for text in texts:
                t0, c0 = time.perf_counter(), time.process_time()
                wave = speak(text, voice)
                elapsed += time.perf_counter() - t0
                cpu += time.process_time() - c0
                audio_s += wave.size / 16000
                matched.append(wave)
            emb = np.stack([speaker_embedding(w) for w in matched])  # [T, 256]
            sims = emb @ sample_emb.T  # [T, K]
            others = sims.mean(0).copy()
            others[k] = -np.inf
            row = SpeakerRow(
                name=name,
                group=groups.get(name, ""),
                f0_target=measured.f0_median_hz,
                f0_matched=pitch_stats(np.concatenate(matched)).median_hz,
                rate_target=measured.rate_syllables_per_s,
                rate_matched=float(np.mean([speaking_rate(w, t).syllables_per_s for w, t in zip(matched, texts, strict=True)])),
                sim_plain=float(sim_plain[:, k].mean()),
                sim_matched=float(sims[:, k].mean()),
                nearest_other=names[int(np.argmax(others))],
                sim_nearest_other=float(others.max()),
                identified_as=[names[j] for j in sims.argmax(1)],
                wer_matched=float(
                    np.mean([word_error_rate(t, transcribe(w).text) for t, w in zip(texts, matched, strict=True)])
                ) if wer else float("nan"),
                rtf_matched=elapsed / audio_s,
                cpu_rtf_matched=cpu / audio_s,
                conversion=conversion.to_dict(),
                source=chosen.name,
                source_scores=scores,
            )
            rows[policy_name].append(row)
            log(f"{policy_name:>18s} {name}: sim {row.sim_plain:.3f} -> {row.sim_matched:.3f} "
                f"(nearest other {row.nearest_other} {row.sim_nearest_other:.3f}), identified {row.correct:.2f}, "
                f"F0 {row.f0_target:.0f}->{row.f0_matched:.0f}, rate {row.rate_target:.2f}->{row.rate_matched:.2f}, "
                f"WER {row.wer_matched:.3f}, RTF {row.rtf_matched:.2f} (CPU {row.cpu_rtf_matched:.2f}), source {row.source} {row.conversion} {scores}")
    load = tuple(round(v, 2) for v in os.getloadavg())
    return {p: MatchingReport(r, plain_time / plain_audio, wer_plain, float(sim_plain.mean()), load) for p, r in rows.items()}


def table(report: MatchingReport) -> str:
    head = ("| speaker | group | source voice | F0 target→matched (Hz) | rate target→matched (syll/s) | "
            "similarity plain → matched | nearest other sample (similarity) | identified | WER matched | RTF (CPU s / s) |")
    lines = [head, "|" + "---|" * 10]
    for r in report.rows:
        mark = "yes" if r.correct == 1 else ("no" if r.correct == 0 else f"{r.correct:.2f}")
        lines.append(
            f"| {r.name} | {r.group} | {r.source.split(':')[-1]} | {r.f0_target:.0f} → {r.f0_matched:.0f} | "
            f"{r.rate_target:.2f} → {r.rate_matched:.2f} | {r.sim_plain:.3f} → {r.sim_matched:.3f} | "
            f"{r.nearest_other} ({r.sim_nearest_other:.3f}) | {mark} | {r.wer_matched:.3f} | {r.rtf_matched:.2f} ({r.cpu_rtf_matched:.2f}) |"
        )
    return "\n".join(lines)

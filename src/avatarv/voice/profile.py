"""``VoiceProfile``: everything measured from a voice sample, saved as JSON and reused.

A profile holds the targets of matching (F0 median/range, speaking rate, loudness, mean spectral
envelope and aperiodicity), the resemblyzer speaker embedding (256-d) in the same file, and the
tuned timbre settings of the chosen source voice, so a voice is profiled once (≈ 1 min of compute on 2 cores
with six source voices and the intelligibility check, the first time also ≈ 1 min to measure the sources) and
reused.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from avatarv.errors import InputError
from avatarv.voice.audio import SAMPLE_RATE, SILENCE_LUFS, load_audio, loudness, normalise_loudness
from avatarv.voice.match import (
    CALIBRATION_TEXT,
    DEFAULT_POLICY,
    Conversion,
    MatchingPolicy,
    blend_source,
    choose_source,
    fit_conversion,
    rank_sources,
    source_voice,
)
from avatarv.voice.measure import mean_envelopes, pitch_stats, speaking_rate
from avatarv.voice.world import analyse

PROFILE_VERSION = 2  # 2: conversions split into warp / tilt / residual EQ / breathiness (issue #34)
MIN_SAMPLE_S = 4.5  # 10 s is typical; 4.5 s admits the shortest real clip here (4.9 s)
MIN_SPEECH_S = 2.0  # by Silero VAD; it hears only 2.3 s in a 12 s real clip of speech over music
MIN_VOICED_S = 1.0
# Articulation rates of read and conversational speech lie within ≈ 3–7 syllables/s across speakers and
# languages (Jacewicz et al. 2009; Pellegrino et al. 2011). A measure outside it is a failed count (Whisper
# on a language it does not know, singing, music), so the target is held inside it.
RATE_RANGE = (3.0, 7.0)


@dataclass
class VoiceProfile:
    source: str
    duration_s: float
    speech_s: float
    f0_median_hz: float
    f0_p5_hz: float
    f0_p95_hz: float
    f0_log_std: float
    rate_syllables_per_s: float
    rate_method: str
    loudness_lufs: float
    transcript: str
    envelope: list[float]  # [513] mean ln power envelope, voiced frames, 0–8 kHz
    aperiodicity: list[float]  # [513] mean ln aperiodicity
    embedding: list[float]  # [256] resemblyzer, unit norm
    conversions: dict[str, dict] = field(default_factory=dict)  # synthesiser name -> Conversion
    pause_median_s: float | None = None  # median pause between speech spans (None: fewer than 2 spans)
    version: int = PROFILE_VERSION
    source_synthesiser: str | None = None  # the source voice matching starts from (None: the default)

    @property
    def embedding_array(self) -> np.ndarray:
        return np.asarray(self.embedding, np.float32)

    def conversion_for(self, synthesiser_name: str) -> Conversion | None:
        data = self.conversions.get(synthesiser_name)
        return None if data is None else Conversion(**data)

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically (temp file + ``os.replace``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(asdict(self), handle, indent=1)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> VoiceProfile:
        path = Path(path)
        if not path.is_file():
            raise InputError("no such voice profile", path)
        try:
            data = json.loads(path.read_text())
            profile = cls(**data)
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as err:
            raise InputError(f"not a voice profile ({type(err).__name__})", path) from err
        if profile.version != PROFILE_VERSION or len(profile.envelope) != 513 or len(profile.embedding) != 256:
            raise InputError(
                f"voice profile version {profile.version} or shape not supported (expected version "
                f"{PROFILE_VERSION}: run avatarv voice profile on the sample again)", path)
        return profile


def profile(
    sample: str | Path | np.ndarray, synthesiser=None, tune: bool = True, policy: MatchingPolicy | None = None
) -> VoiceProfile:
    """Measure a voice sample (a file of any format, or ``[N]`` float32 16 kHz mono).

    With ``tune`` the timbre settings for ``synthesiser`` (default: piper, else espeak-ng) are fitted
    by embedding similarity on a calibration paragraph; without it they are the acoustic estimate. With
    no ``synthesiser`` and a policy with ``sources`` (the default), the source voice is chosen first
    (``match.choose_source``) and saved with the profile.
    """
    from avatarv.voice.embedding import speaker_embedding

    path = Path(sample) if isinstance(sample, (str, Path)) else None
    wave = load_audio(path) if path is not None else np.asarray(sample, np.float32)
    duration = wave.size / SAMPLE_RATE
    if duration < MIN_SAMPLE_S:
        raise InputError(f"voice sample too short: {duration:.1f} s (need at least {MIN_SAMPLE_S:.0f} s of speech)", path)
    level = loudness(wave)
    if level < SILENCE_LUFS:
        raise InputError("voice sample is silent (no speech to profile)", path)
    wave = normalise_loudness(wave)  # envelopes measured at one level
    rate = speaking_rate(wave)
    if rate.speech_s < MIN_SPEECH_S:
        raise InputError(f"only {rate.speech_s:.1f} s of speech found in the sample (need {MIN_SPEECH_S:.0f} s)", path)
    analysis = analyse(wave, accurate=True)
    pitch = pitch_stats(f0=analysis.f0)
    if pitch.voiced_s < MIN_VOICED_S:
        raise InputError(f"only {pitch.voiced_s:.1f} s of voiced speech in the sample (need {MIN_VOICED_S:.0f} s)", path)
    envelope, aperiodicity = mean_envelopes(analysis)
    embedding = speaker_embedding(wave)

    measured = VoiceProfile(
        source=path.name if path is not None else "<array>",
        duration_s=round(duration, 3),
        speech_s=round(rate.speech_s, 3),
        f0_median_hz=round(pitch.median_hz, 2),
        f0_p5_hz=round(pitch.p5_hz, 2),
        f0_p95_hz=round(pitch.p95_hz, 2),
        f0_log_std=round(pitch.log_std, 4),
        rate_syllables_per_s=round(float(np.clip(rate.syllables_per_s, *RATE_RANGE)), 3),
        rate_method=rate.method + ("" if RATE_RANGE[0] <= rate.syllables_per_s <= RATE_RANGE[1] else f" (clipped from {rate.syllables_per_s:.2f})"),
        loudness_lufs=round(level, 2),
        transcript=rate.transcript,
        envelope=[round(float(v), 3) for v in envelope],
        aperiodicity=[round(float(v), 3) for v in aperiodicity],
        embedding=[round(float(v), 6) for v in embedding],
        pause_median_s=round(rate.pause_median_s, 3) if np.isfinite(rate.pause_median_s) else None,
    )
    return match_voice(measured, synthesiser, tune, policy)[0]


def check_intelligibility(voice: VoiceProfile, text: str = CALIBRATION_TEXT) -> float:
    """Whisper tiny.en word error rate of ``text`` spoken in ``voice`` (its source, conversion, rate)."""
    from avatarv.voice.asr import transcribe, word_error_rate
    from avatarv.voice.engine import speak

    return word_error_rate(text, transcribe(speak(text, voice)).text)


def match_voice(
    measured: VoiceProfile, synthesiser=None, tune: bool = True, policy: MatchingPolicy | None = None, check=None
) -> tuple[VoiceProfile, dict]:
    """``measured`` with its source voice and fitted conversion (see ``profile``), and what was tried:
    ``{"scores": each source's starting similarity, "check_wer": each checked source's word error}``.

    With ``tune`` and a policy with ``blend_weights``, a chosen Kokoro voice is refined by timbre blends
    (``match.blend_source``); with ``max_check_wer`` the chosen source must stay intelligible at the
    sample's rate (``check``, default ``check_intelligibility``), else the next candidate is taken (the
    blend's own voice, then the next finalist), and when none passes the one with the lowest word error.
    """
    from avatarv.voice.synth import available_sources, get_synthesiser

    policy = policy or DEFAULT_POLICY
    embedding = measured.embedding_array if tune else None
    target = (np.asarray(measured.envelope), np.asarray(measured.aperiodicity),
              (measured.f0_median_hz, measured.f0_log_std))
    sources = available_sources(policy.sources) if synthesiser is None and policy.sources else []
    info: dict = {"scores": {}, "check_wer": {}}
    if len(sources) > 1 and embedding is not None:
        ranked, info["scores"] = rank_sources(sources, *target, embedding, policy)
        blended = blend_source(*ranked[0], *target, embedding, policy)
        if blended[0] is not ranked[0][0]:  # a blend first; its plain voice next, should the blend not be clear
            ranked.insert(0, blended)
    elif len(sources) > 1:
        ranked = [choose_source(sources, *target, None, policy)[:2]]
    else:
        synth = synthesiser if synthesiser is not None and not isinstance(synthesiser, str) else get_synthesiser(synthesiser)
        ranked = [(synth, fit_conversion(source_voice(synth), *target, embedding, policy))]

    def with_source(synth, conversion) -> VoiceProfile:
        return replace(measured, conversions={synth.name: conversion.to_dict()},
                       source_synthesiser=synth.name if len(sources) > 1 or synthesiser is not None else None)

    if embedding is None or policy.max_check_wer is None or len(sources) < 2:
        return with_source(*ranked[0]), info
    check = check or check_intelligibility
    for synth, conversion in ranked:
        voice = with_source(synth, conversion)
        info["check_wer"][synth.name] = round(check(voice), 4)
        if info["check_wer"][synth.name] <= policy.max_check_wer:
            return voice, info
    synth, conversion = min(ranked, key=lambda item: info["check_wer"][item[0].name])
    return with_source(synth, conversion), info

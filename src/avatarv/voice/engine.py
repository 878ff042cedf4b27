"""The voice engine's entry points: ``speak`` (text → speech, plain or in a profiled voice) and
``text_to_speech`` (what ``avatarv generate --text`` calls)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from avatarv.errors import InputError
from avatarv.voice.audio import TARGET_LUFS, normalise_loudness
from avatarv.voice.match import Conversion, best_warp, convert, source_voice
from avatarv.voice.measure import count_syllables, pitch_stats, speech_seconds
from avatarv.voice.profile import VoiceProfile, profile
from avatarv.voice.synth import get_synthesiser
from avatarv.voice.world import analyse

# Speech time of piper grows as length_scale^0.55 (measured: 10.3 / 11.5 / 13.2 s at 0.8 / 1.0 / 1.25;
# pauses between sentences do not scale), so the first rate step is (rate ratio)^(1/0.55).
LENGTH_SCALE_EXPONENT = 0.55
MAX_TEXT_CHARS = 5000


def check_text(text: str) -> str:
    text = " ".join((text or "").split())
    if not any(ch.isalnum() for ch in text):
        raise InputError("empty text: nothing to say")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"text too long: {len(text)} characters (at most {MAX_TEXT_CHARS} per call)")
    return text


def speak(text: str, voice_profile: VoiceProfile | None = None, synthesiser: str | None = None) -> np.ndarray:
    """Text → ``[N]`` float32 16 kHz mono. Plain voice at -23 LUFS, or matched to ``voice_profile``
    (its pitch median/range, speaking rate, timbre and loudness)."""
    text = check_text(text)
    synth = get_synthesiser(synthesiser)
    if voice_profile is None:
        return normalise_loudness(synth.synthesise(text), TARGET_LUFS)

    # 1. rate: length control of the synthesiser, then a residual time stretch in WORLD
    syllables = max(count_syllables(text), 1)
    target_rate = voice_profile.rate_syllables_per_s
    wave = synth.synthesise(text)
    duration_factor = 1.0
    if np.isfinite(target_rate) and target_rate > 0:
        plain_rate = syllables / max(speech_seconds(wave), 0.1)
        length_scale = float(np.clip((plain_rate / target_rate) ** (1 / LENGTH_SCALE_EXPONENT), 0.5, 2.0))
        if abs(length_scale - 1.0) > 0.02:
            wave = synth.synthesise(text, length_scale=length_scale)
        rate = syllables / max(speech_seconds(wave), 0.1)
        duration_factor = float(np.clip(rate / target_rate, 0.7, 1.4))

    # 2–3. pitch and timbre in the WORLD domain
    source = source_voice(synth)
    target_env = np.asarray(voice_profile.envelope)
    target_ap = np.asarray(voice_profile.aperiodicity)
    conversion = voice_profile.conversion_for(synth.name) or Conversion(warp=best_warp(source.envelope, target_env))
    analysis = analyse(wave, accurate=True)
    target_median = voice_profile.f0_median_hz
    matched = convert(analysis, source, target_env, target_ap, (target_median, voice_profile.f0_log_std), conversion, duration_factor)
    # Closed loop on pitch: re-measured F0 of the WORLD output can sit a few % off (the envelope warp
    # moves energy between harmonics, and F0 trackers weigh them); one multiplicative correction.
    measured = pitch_stats(matched).median_hz
    if np.isfinite(measured) and abs(np.log(measured / target_median)) > 0.02:
        corrected = target_median * float(np.clip(target_median / measured, 0.8, 1.25))
        matched = convert(analysis, source, target_env, target_ap, (corrected, voice_profile.f0_log_std), conversion, duration_factor)
    # 4. loudness of the sample (kept within a sane broadcast range)
    return normalise_loudness(matched, float(np.clip(voice_profile.loudness_lufs, -35.0, -14.0)))


@lru_cache(maxsize=8)
def _profile_cached(path: str, mtime_ns: int, size: int) -> VoiceProfile:
    if path.endswith(".json"):
        return VoiceProfile.load(path)
    return profile(path)


def load_voice(voice: str | Path) -> VoiceProfile:
    """A saved profile (``.json``) or a voice sample (any audio/video file, profiled now and cached)."""
    path = Path(voice)
    if not path.is_file():
        raise InputError("no such voice sample or profile", path)
    stat = path.stat()
    return _profile_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def text_to_speech(text: str, voice_sample_path: str | Path | None = None) -> np.ndarray:
    """For the generate pipeline: ``[N]`` float32 16 kHz mono at -23 LUFS, in the sample's voice if given."""
    voice = None if voice_sample_path is None else load_voice(voice_sample_path)
    return normalise_loudness(speak(text, voice), TARGET_LUFS)

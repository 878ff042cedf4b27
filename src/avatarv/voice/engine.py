"""The voice engine's entry points: ``speak`` (text → speech, plain or in a profiled voice) and
``text_to_speech`` (what ``avatarv generate --text`` calls)."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

from avatarv.errors import InputError
from avatarv.voice.audio import TARGET_LUFS, normalise_loudness
from avatarv.voice.match import convert, fit_conversion, source_voice
from avatarv.voice.measure import count_syllables, pitch_stats, speech_spans
from avatarv.voice.profile import VoiceProfile, profile
from avatarv.voice.synth import get_synthesiser
from avatarv.voice.world import analyse, track_f0

# Speech time grows as length_scale^exponent (a synthesiser's ``length_exponent``; piper: 0.55), so the
# length step is (rate ratio)^(1/exponent).
LENGTH_SCALE_EXPONENT = 0.55
log = logging.getLogger(__name__)
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
    (its pitch median/range, speaking rate, pause length, timbre and loudness)."""
    text = check_text(text)
    synth = source_synthesiser(voice_profile, synthesiser)
    if voice_profile is None:
        return normalise_loudness(synth.synthesise(text), TARGET_LUFS)
    source = source_voice(synth)

    # 1. rate: the synthesiser's length control set from its own measured articulation rate (one
    #    synthesis), then the residual as a WORLD time stretch; pauses set to the sample's median pause
    syllables = max(count_syllables(text), 1)
    target_rate = voice_profile.rate_syllables_per_s
    length_scale = 1.0
    if np.isfinite(target_rate) and target_rate > 0 and np.isfinite(source.rate_syllables_per_s):
        exponent = getattr(synth, "length_exponent", LENGTH_SCALE_EXPONENT)
        shortest = getattr(synth, "min_length_scale", 0.5)
        length_scale = float(np.clip((source.rate_syllables_per_s / target_rate) ** (1 / exponent), shortest, 2.0))
    wave = synth.synthesise(text, length_scale=length_scale)
    spans = speech_spans(wave)
    duration_factor = 1.0
    if np.isfinite(target_rate) and target_rate > 0:
        rate = syllables / max(sum(e - s for s, e in spans), 0.1)
        duration_factor = float(np.clip(rate / target_rate, 0.7, 1.4))
    if voice_profile.pause_median_s is not None:
        wave = set_pauses(wave, spans, voice_profile.pause_median_s / duration_factor)

    # 2–3. pitch and timbre in the WORLD domain. DIO + StoneMask tracks clean synthetic speech as well as
    # Harvest at ≈ 1/10 of the cost (Harvest stays for real samples, in ``profile``).
    target_env = np.asarray(voice_profile.envelope)
    target_ap = np.asarray(voice_profile.aperiodicity)
    target_pitch = (voice_profile.f0_median_hz, voice_profile.f0_log_std)
    conversion = voice_profile.conversion_for(synth.name) or fit_conversion(source, target_env, target_ap, target_pitch, None)
    analysis = analyse(wave, accurate=False)
    target_median = voice_profile.f0_median_hz
    matched = convert(analysis, source, target_env, target_ap, target_pitch, conversion, duration_factor)
    # Closed loop on pitch: re-measured F0 of the WORLD output can sit a few % off (the envelope warp
    # moves energy between harmonics, and F0 trackers weigh them); one multiplicative correction.
    measured = pitch_stats(f0=track_f0(matched, accurate=False)).median_hz
    if np.isfinite(measured) and abs(np.log(measured / target_median)) > 0.02:
        corrected = target_median * float(np.clip(target_median / measured, 0.8, 1.25))
        matched = convert(analysis, source, target_env, target_ap, (corrected, voice_profile.f0_log_std), conversion, duration_factor)
    # 4. loudness of the sample (kept within a sane broadcast range)
    return normalise_loudness(matched, float(np.clip(voice_profile.loudness_lufs, -35.0, -14.0)))


def source_synthesiser(voice_profile: VoiceProfile | None, synthesiser: str | None = None):
    """The synthesiser to speak with: ``synthesiser`` when named, else the source voice chosen when the
    sample was profiled, else the default; a chosen source that cannot load here falls back to the default."""
    if synthesiser is None and voice_profile is not None and voice_profile.source_synthesiser:
        try:
            return get_synthesiser(voice_profile.source_synthesiser)
        except InputError as err:
            log.warning("voice: %s; matching from the default voice", err)
    return get_synthesiser(synthesiser)


def set_pauses(wave: np.ndarray, spans: list[tuple[float, float]], pause_s: float, sample_rate: int = 16000) -> np.ndarray:
    """Every pause between speech ``spans`` (seconds) made ``pause_s`` long (clipped to 0.15–1.2 s): the
    middle of each gap is cut or padded with silence; 40 ms at each edge are kept (breath, release)."""
    if len(spans) < 2:
        return wave
    target = int(float(np.clip(pause_s, 0.15, 1.2)) * sample_rate)
    edge = int(0.04 * sample_rate)
    pieces, cursor = [], 0
    for (_, end), (start, _) in zip(spans[:-1], spans[1:], strict=True):
        a, b = int(end * sample_rate), int(start * sample_rate)
        if b - a < 2 * edge:
            continue
        pieces.append(wave[cursor : a + edge])
        pieces.append(np.zeros(max(target - 2 * edge, 0), np.float32))
        cursor = b - edge
    pieces.append(wave[cursor:])
    return np.concatenate(pieces).astype(np.float32)


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

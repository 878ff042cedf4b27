"""Speech: espeak-ng to 16 kHz mono float32, the pure-numpy formant fallback, exact track lengths."""

from __future__ import annotations

import numpy as np
import pytest

from avatarv.world import sample_identity
from avatarv.world import speech as speech_mod
from avatarv.world.audio_features import envelope, lagged_correlation, stress_events
from avatarv.world.speech import SAMPLE_RATE, espeak_available, formant_speech, speak, speech_track

VOICE = sample_identity(1, 0).voice


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed (make sysdeps)")
def test_espeak_speech():
    wav = speak("Hello there, this is a test.", VOICE, engine="espeak")
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert 0.8 * SAMPLE_RATE < len(wav) < 4 * SAMPLE_RATE
    assert np.abs(wav).max() > 0.05
    other = speak("Hello there, this is a test.", sample_identity(2, 0).voice, engine="espeak")
    assert len(other) != len(wav) or not np.array_equal(other, wav)  # voices differ


def test_formant_fallback_is_speech_like():
    wav = formant_speech("We measured the results twice to be sure.", VOICE, seed=3)
    assert wav.dtype == np.float32 and len(wav) > 0.8 * SAMPLE_RATE
    assert np.array_equal(wav, formant_speech("We measured the results twice to be sure.", VOICE, seed=3))
    env = envelope(wav)
    # syllables: the envelope rises and falls, with pauses between words
    assert (env < 0.2).mean() > 0.05 and (env > 0.5).mean() > 0.15
    assert len(stress_events(env)) >= 3


def test_auto_falls_back_without_espeak(monkeypatch):
    monkeypatch.setattr(speech_mod.shutil, "which", lambda name: None)
    assert not speech_mod.espeak_available()
    track, sentences = speech_track(VOICE, 2.0, seed=0)
    assert len(track) == 2 * SAMPLE_RATE and sentences
    assert np.abs(track).max() > 0.1
    with pytest.raises(RuntimeError):
        speech_mod._espeak.__wrapped__("hi", "en", 50, 150)


def test_speech_track_exact_length_and_seeded():
    a, sa = speech_track(VOICE, 3.0, seed=1, ids=(1,))
    b, sb = speech_track(VOICE, 3.0, seed=1, ids=(1,))
    c, sc = speech_track(VOICE, 3.0, seed=2, ids=(1,))
    assert len(a) == 3 * SAMPLE_RATE and a.tobytes() == b.tobytes() and sa == sb
    assert sa != sc
    d, sd = speech_track(VOICE, 3.0, seed=1, ids=(1,), exclude=sa)
    assert not set(sa) & set(sd)


def test_lagged_correlation_finds_shift():
    r = np.random.default_rng(0)
    x = np.convolve(r.standard_normal(300), np.ones(3) / 3, mode="same")
    y = np.roll(x, 4)  # y[t] = x[t - 4]
    lags, c = lagged_correlation(y, x, 8)
    assert lags[np.argmax(c)] == 4

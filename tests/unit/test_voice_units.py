"""Voice engine building blocks: WER, syllables, pitch map, envelope warp, loudness, profile JSON, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avatarv.errors import InputError
from avatarv.voice.asr import word_error_rate
from avatarv.voice.audio import TARGET_LUFS, loudness, normalise_loudness, write_wav
from avatarv.voice.cloning import PocketTTSCloner, check_weights
from avatarv.voice.engine import check_text
from avatarv.voice.match import best_warp, map_pitch
from avatarv.voice.measure import count_syllables, pitch_stats
from avatarv.voice.profile import VoiceProfile
from avatarv.voice.synth import EspeakSynthesiser
from avatarv.voice.world import warp_frequency


def test_word_error_rate_counts_edits():
    assert word_error_rate("the cat sat on the mat", "the cat sat on the mat") == 0.0
    assert word_error_rate("the cat sat on the mat", "the cat sat on mat") == pytest.approx(1 / 6)  # deletion
    assert word_error_rate("a b c d", "a x c d e") == pytest.approx(2 / 4)  # substitution + insertion
    assert word_error_rate("Three o'clock, please.", "three o'clock please") == 0.0  # case/punctuation


def test_count_syllables_on_known_words():
    assert count_syllables("cat") == 1
    assert count_syllables("banana") == 3
    assert count_syllables("The quick brown fox jumps over the lazy dog") == 11


def test_map_pitch_hits_median_and_range():
    rng = np.random.default_rng(0)
    f0 = np.exp(rng.normal(np.log(100), 0.1, 2000))
    f0[::7] = 0  # unvoiced frames stay unvoiced
    out = map_pitch(f0, pitch_stats(f0=f0), 220.0, 0.2)
    stats = pitch_stats(f0=out)
    assert stats.median_hz == pytest.approx(220.0, rel=0.01)
    assert stats.log_std == pytest.approx(0.2, rel=0.05)
    assert np.all(out[::7] == 0)


def test_frequency_warp_moves_a_formant_and_best_warp_finds_it():
    bins = np.arange(513)
    source = -((bins - 100.0) ** 2) / 200.0  # one "formant" at bin 100
    warped = warp_frequency(source, 1.2)
    assert int(np.argmax(warped)) == 120
    assert best_warp(source, warped) == pytest.approx(1.2, rel=0.02)


def test_loudness_normalisation_reaches_target_and_respects_peak():
    rng = np.random.default_rng(1)
    t = np.arange(16000 * 3) / 16000
    wave = (0.05 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.normal(size=t.size))
    out = normalise_loudness(wave.astype(np.float32))
    assert loudness(out) == pytest.approx(TARGET_LUFS, abs=0.2)
    loud = normalise_loudness(wave.astype(np.float32), target_lufs=0.0)  # would clip: peak held at -1 dBFS
    assert np.max(np.abs(loud)) <= 10 ** (-1 / 20) + 1e-6


def test_write_wav_is_atomic(tmp_path):
    out = write_wav(tmp_path / "a.wav", np.zeros(1600, np.float32))
    assert out.is_file() and [p.name for p in tmp_path.iterdir()] == ["a.wav"]


def _profile_dict() -> dict:
    return dict(
        source="x.wav", duration_s=10.0, speech_s=8.0, f0_median_hz=120.0, f0_p5_hz=90.0, f0_p95_hz=170.0,
        f0_log_std=0.15, rate_syllables_per_s=4.5, rate_method="asr", loudness_lufs=-20.0, transcript="hello",
        envelope=[0.0] * 513, aperiodicity=[-1.0] * 513, embedding=[1 / 16] * 256,
        conversions={"piper:x": {"warp": 1.1, "envelope_gain": 1.0, "aperiodicity_gain": 2.0, "similarity": 0.8}},
    )


def test_profile_json_round_trip(tmp_path):
    profile = VoiceProfile(**_profile_dict())
    path = profile.save(tmp_path / "voice.json")
    loaded = VoiceProfile.load(path)
    assert loaded == profile
    assert loaded.conversion_for("piper:x").warp == 1.1 and loaded.conversion_for("other") is None
    assert loaded.embedding_array.shape == (256,)


@pytest.mark.parametrize("content", ["not json", json.dumps({"source": "x"}), json.dumps({**_profile_dict(), "envelope": [0.0]})])
def test_bad_profile_is_an_input_error(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError, match="bad.json"):
        VoiceProfile.load(path)


def test_empty_text_is_an_input_error():
    for text in ("", "   ", "?!"):
        with pytest.raises(InputError, match="empty text"):
            check_text(text)
    assert check_text("  hello \n world ") == "hello world"


def test_cloning_without_weights_names_the_folder(tmp_path):
    folder = tmp_path / "no-weights"
    with pytest.raises(InputError) as err:
        PocketTTSCloner(folder)
    message = str(err.value)
    assert str(folder) in message and "model.safetensors" in message and "\n" not in message
    (folder).mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(InputError, match="tokenizer.json"):
        check_weights(folder)


def test_espeak_fallback_is_named_and_speaks():
    synth = EspeakSynthesiser(reason="piper unavailable: test")
    assert synth.name == "espeak-ng (fallback: piper unavailable: test)"
    wave = synth.synthesise("Hello world, this is the fallback voice.")
    assert wave.dtype == np.float32 and wave.size > 16000 and np.abs(wave).max() > 0.05

"""Held-out protocol of voice matching (issue #34) and the voice-not-channel pieces of matching."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from avatarv.voice.channel import CHANNELS
from avatarv.voice.engine import set_pauses
from avatarv.voice.engines import ENGINES, engine_status
from avatarv.voice.match import SourceVoice, best_warp, prior_warp, timbre_targets
from avatarv.voice.protocol import HELD_OUT_SPEAKERS, REAL_ROOT, TUNING_SPEAKERS, check_protocol, speaker_key
from avatarv.voice.world import Analysis, bin_frequencies, warp_frequency


def test_no_tuning_speaker_is_scored():
    check_protocol()
    tuned = {speaker_key(s) for s in TUNING_SPEAKERS}
    assert not [s.name for s in HELD_OUT_SPEAKERS if speaker_key(s) in tuned]
    assert all(s.kind == "espeak" for s in TUNING_SPEAKERS), "real voices are scored, never tuned on"


@pytest.mark.parametrize("leak", [TUNING_SPEAKERS[0], replace(TUNING_SPEAKERS[1], name="renamed_copy")])
def test_a_tuning_speaker_among_the_scored_ones_fails(leak):
    with pytest.raises(ValueError, match="held-out protocol broken"):
        check_protocol(held_out=(*HELD_OUT_SPEAKERS, leak))


def test_held_out_set_has_every_real_voice_and_new_espeak_voices():
    assert len(HELD_OUT_SPEAKERS) >= 12 and len({s.name for s in HELD_OUT_SPEAKERS}) == len(HELD_OUT_SPEAKERS)
    scored_paths = {s.path for s in HELD_OUT_SPEAKERS if s.kind == "real"}
    if REAL_ROOT.is_dir():  # every real recording and clip here is scored
        real = {str(p.relative_to(REAL_ROOT)) for folder in ("speech", "clips") for p in (REAL_ROOT / folder).iterdir()}
        assert real <= scored_paths, real - scored_paths
    assert {"speech/en_female_radio.wav", "speech/en_male_radio.wav", "speech/zh_female_news.wav"} <= scored_paths
    assert sum(p.startswith("clips/") for p in scored_paths) == 5
    tuned_variants = {s.espeak_voice.split("+")[1] for s in TUNING_SPEAKERS}
    held_espeak = [s for s in HELD_OUT_SPEAKERS if s.kind == "espeak"]
    assert len(held_espeak) >= 4 and not {s.espeak_voice.split("+")[1] for s in held_espeak} & tuned_variants
    assert all(s.channel in CHANNELS for s in TUNING_SPEAKERS)


def _envelope_with_formants(n=513):
    freqs = bin_frequencies(n)
    env = np.zeros(n)
    for centre in (500, 1500, 2500, 3500):
        env += 3.0 * np.exp(-0.5 * ((freqs - centre) / 120.0) ** 2)
    return env


def test_warp_estimate_ignores_a_recording_tilt():
    source = _envelope_with_formants()
    octaves = np.log2(np.maximum(bin_frequencies(513), 150) / 1000)
    target = warp_frequency(source, 1.15) - 0.7 * octaves  # formants 15 % up, heard through a dull mic
    assert best_warp(source, target) == pytest.approx(1.15, rel=0.02)


def test_timbre_targets_split_tilt_from_residual():
    source_env = _envelope_with_formants()
    octaves = np.log2(np.maximum(bin_frequencies(513), 150) / 1000)
    target_env = source_env - 0.5 * octaves + 2.0  # same formants, tilted, louder
    source = SourceVoice(Analysis(np.zeros(1), np.zeros((1, 513)), np.zeros((1, 513))), source_env, np.full(513, -2.0))
    parts = timbre_targets(source, target_env, np.full(513, -1.5), warp=1.0)
    band = (bin_frequencies(513) > 300) & (bin_frequencies(513) < 5000)
    assert np.allclose(parts.tilt[band], -0.5 * octaves[band], atol=0.02)
    assert np.abs(parts.residual[band]).max() < 0.1  # nothing left for a channel EQ to copy
    assert parts.breathiness == pytest.approx(0.5)


def test_prior_warp_follows_f0_by_sex():
    assert prior_warp(120.0, 120.0) == 1.0
    assert 1.12 < prior_warp(120.0, 210.0) < 1.22  # man → woman: formants ≈ 17 % up
    assert prior_warp(120.0, float("nan")) == 1.0


def test_set_pauses_makes_every_gap_the_target_length():
    sr = 16000
    speech = np.ones(sr // 2, np.float32)
    wave = np.concatenate([speech, np.zeros(sr // 10, np.float32), speech, np.zeros(sr, np.float32), speech])
    spans = [(0.0, 0.5), (0.6, 1.1), (2.1, 2.6)]
    out = set_pauses(wave, spans, pause_s=0.4)
    assert out.size == 3 * (sr // 2) + 2 * int(0.4 * sr)
    assert np.count_nonzero(out) == 3 * (sr // 2)


def test_engine_list_says_why_an_engine_is_missing(tmp_path, capsys):
    from avatarv.cli import main

    statuses = {s.name: s for s in engine_status(tmp_path / "no-weights")}
    assert set(statuses) == set(ENGINES)
    clone = statuses["pocket-tts"]
    assert not clone.available and ("not installed" in clone.detail or "no-weights" in clone.detail)
    assert main(["voice", "say", "--engine", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ENGINES) and ("unavailable" in out) == (not all(s.available for s in statuses.values()))

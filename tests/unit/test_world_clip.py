"""Clips: same seed → identical bytes; lip sync exact by construction; desync labelled; files written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avatarv.errors import ConfigError
from avatarv.world import ClipLabels, make_clip, sample_identity
from avatarv.world.audio_features import envelope, lagged_correlation


@pytest.fixture(scope="module")
def clip():
    return make_clip(identity_id=2, scene_id=1, seconds=6.0, size=64, seed=0)


def test_same_seed_same_bytes(clip):
    again = make_clip(identity_id=2, scene_id=1, seconds=6.0, size=64, seed=0)
    assert clip.frames.tobytes() == again.frames.tobytes()
    assert clip.audio.tobytes() == again.audio.tobytes()
    for k, v in clip.labels.arrays().items():
        assert v.tobytes() == again.labels.arrays()[k].tobytes(), k
    assert clip.meta == again.meta


def test_different_seed_differs(clip):
    other = make_clip(identity_id=2, scene_id=1, seconds=6.0, size=64, seed=1)
    assert other.meta["identity"] != clip.meta["identity"]
    assert other.frames.tobytes() != clip.frames.tobytes()


def test_shapes(clip):
    assert clip.frames.shape == (150, 64, 64, 3)
    assert clip.audio.shape == (150 * 640,) and clip.audio.dtype == np.float32
    lab = clip.labels
    assert lab.landmarks.shape == (150, 68, 2) and lab.pose.shape == (150, 3)
    assert lab.visible.all() and lab.speaking.any()
    assert 0.0 <= lab.mouth_open.min() and lab.mouth_open.max() <= 1.0
    box = lab.face_box
    assert (box[:, 2] > box[:, 0]).all() and (box[:, 3] > box[:, 1]).all()


def _peak_lag(clip) -> int:
    lags, corr = lagged_correlation(clip.labels.mouth_open, envelope(clip.audio, len(clip.frames)), 10)
    return int(lags[np.argmax(corr)]), float(corr.max())


@pytest.mark.parametrize("identity_id", [0, 2, 5, 7])
def test_lip_sync_peaks_at_identity_lag(identity_id):
    c = make_clip(identity_id, 0, seconds=6.0, size=64, seed=3)
    lag = sample_identity(identity_id, 3).behaviour.mouth_lag_frames
    peak, corr = _peak_lag(c)
    assert peak == lag == c.meta["mouth_lag_frames"]
    assert corr > 0.8


@pytest.mark.parametrize("offset", [-6, 4])
def test_desync_moves_the_peak(offset):
    c = make_clip(5, 0, seconds=6.0, size=64, seed=3, audio_offset_frames=offset)
    lag = sample_identity(5, 3).behaviour.mouth_lag_frames
    assert c.meta["audio_offset_frames"] == offset
    assert _peak_lag(c)[0] == lag + offset
    # the labelled envelope is the one the mouth follows (before the offset)
    lags, corr = lagged_correlation(c.labels.mouth_open, c.labels.audio_envelope, 10)
    assert lags[np.argmax(corr)] == lag


def test_blinks_follow_identity_rate():
    fast = min(range(30), key=lambda i: -sample_identity(i, 0).behaviour.blink_rate)
    slow = min(range(30), key=lambda i: sample_identity(i, 0).behaviour.blink_rate)
    count = {}
    for i in (fast, slow):
        c = make_clip(i, 0, seconds=20.0, size=64, seed=0)
        closed = c.labels.blink_closed.astype(int)
        count[i] = int(((np.diff(closed)) == 1).sum())
    assert count[fast] > count[slow]


def test_save_and_load(tmp_path, clip):
    path = clip.save(tmp_path / "c.mp4")
    assert path.is_file() and path.stat().st_size > 1000
    meta = json.loads((tmp_path / "c.json").read_text())
    assert meta["identity_id"] == 2 and len(meta["frames"]["pose"]) == 150
    back = ClipLabels.load(tmp_path / "c")
    np.testing.assert_array_equal(back.landmarks, clip.labels.landmarks)
    assert back.meta["scene_id"] == 1


def test_bad_size():
    with pytest.raises(ConfigError):
        make_clip(0, 0, seconds=1, size=63)
    with pytest.raises(ConfigError):
        make_clip(0, 0, seconds=1, size=1024)


def test_saved_files_are_byte_identical(tmp_path):
    for d in ("a", "b"):
        make_clip(1, 1, seconds=1.0, size=64, seed=0).save(tmp_path / d / "c.mp4")
    for name in ("c.mp4", "c.npz", "c.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

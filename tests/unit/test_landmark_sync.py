"""Landmark SyncNet: pose/scale-free lip geometry, SyncNet's windows, and offsets recovered on world clips."""

from __future__ import annotations

import numpy as np
import pytest

from avatarv.errors import CheckpointError
from avatarv.eval import landmark_sync as ls
from avatarv.eval.sync import MFCC_PER_WINDOW, window_count


def _face(t=40, seed=0):
    """A toy face: eyes 60 px apart, a mouth below them that opens and closes ``[T,20,2]``, ``[T,2,2]``."""
    r = np.random.default_rng(seed)
    eyes = np.tile(np.array([[100.0, 100.0], [160.0, 100.0]]), (t, 1, 1))
    opening = 0.5 + 0.5 * np.sin(np.arange(t) / 3.0)  # [T]
    # canonical order: outer ring from the image-left corner over the top (12 points), inner ring likewise (8)
    outer = np.deg2rad(180 - 30 * np.arange(12))
    inner = np.deg2rad(180 - 45 * np.arange(8))
    x = np.concatenate([130 + 25 * np.cos(outer), 130 + 18 * np.cos(inner)])
    half_h = np.concatenate([np.full(12, 8.0), np.zeros(8)])[None] + 10 * opening[:, None]  # [T,20]
    half_h[:, 12:] = 1 + 9 * opening[:, None]
    y = 170 - half_h * np.sin(np.concatenate([outer, inner]))[None]
    lips = np.stack([np.broadcast_to(x, y.shape), y], -1)
    return lips + r.normal(0, 0.3, lips.shape), eyes + r.normal(0, 0.3, eyes.shape)


def _similarity(points, angle_deg, scale, shift):
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return points @ rot.T * scale + np.asarray(shift)


def test_geometry_is_invariant_to_translation_scale_and_in_plane_rotation():
    lips, eyes = _face()
    base = ls.lip_geometry(lips, eyes)  # [T,44]
    assert base.shape == (40, ls.N_FEATURES)
    for angle, scale, shift in ((0, 1, (37.0, -12.0)), (0, 2.7, (0, 0)), (33, 1, (0, 0)), (-170, 0.4, (500, 3))):
        moved = ls.lip_geometry(_similarity(lips, angle, scale, shift), _similarity(eyes, angle, scale, shift))
        np.testing.assert_allclose(moved, base, atol=1e-9)
    np.testing.assert_allclose(ls.clip_features(base), ls.clip_features(
        ls.lip_geometry(_similarity(lips, 25, 3.0, (9, 9)), _similarity(eyes, 25, 3.0, (9, 9)))), atol=1e-5)
    # ... and not invariant to what matters: the inner opening (feature 40) follows the mouth
    opening = 0.5 + 0.5 * np.sin(np.arange(40) / 3.0)
    assert np.corrcoef(base[:, 2 * ls.N_LIPS], opening)[0, 1] > 0.99


def test_aligned_frame_axes_and_unit():
    lips, eyes = _face(t=3)
    a = ls.align(lips, eyes)  # origin between the eyes, unit = 60 px, y down the face
    np.testing.assert_allclose(a[:, :, 0].mean(1), 0.0, atol=0.02)  # the mouth is centred under the eyes
    np.testing.assert_allclose(a[:, :, 1].mean(1), 70 / 60, atol=0.02)  # 70 px below them


def test_clip_features_fill_faceless_frames_and_refuse_none():
    lips, eyes = _face()
    g = ls.lip_geometry(lips, eyes)
    g[5:8] = np.nan
    f = ls.clip_features(g)
    assert np.isfinite(f).all() and f.dtype == np.float32 and np.abs(f).max() <= ls.FEATURE_CLIP
    np.testing.assert_allclose(f[6], (f[4] + f[8]) / 2, atol=1e-5)  # linear in time across the gap
    with pytest.raises(ValueError, match="no frame with a face"):
        ls.clip_features(np.full((5, ls.N_FEATURES), np.nan))


def test_windows_are_syncnets():
    assert ls.n_windows(100, 100 * 640, 5) == window_count(100, 100 * 640) == 95
    assert ls.n_windows(100, 60 * 640 + 639, 5) == 55
    feats = np.arange(30 * 3, dtype=np.float32).reshape(30, 3)
    v = ls.video_windows(feats, 4, 5)  # [4,3,5]
    assert v.shape == (4, 3, 5) and (v[2, :, 0] == feats[2]).all() and (v[3, :, 4] == feats[7]).all()
    mfcc = np.arange(13 * 60, dtype=np.float32).reshape(13, 60)
    a = ls.audio_windows(mfcc, 4, 5)  # [4,13,20]: window i = MFCC frames 4i..4i+19
    assert a.shape == (4, 13, MFCC_PER_WINDOW) and (a[3, :, 0] == mfcc[:, 12]).all() and (a[3, :, 19] == mfcc[:, 31]).all()
    with pytest.raises(ValueError, match="MFCC frames"):
        ls.audio_windows(mfcc, 20, 5)


def test_audio_features_robust_to_digital_silence():
    r = np.random.default_rng(0)
    audio = (0.1 * r.standard_normal(16000)).astype(np.float32)
    audio[:3200] = 0.0  # 0.2 s of zeros (a shifted track's padding): log energy -36 before normalising
    m = ls.audio_features(audio)
    assert m.shape[0] == 13 and np.isfinite(m).all() and np.abs(m).max() <= ls.FEATURE_CLIP
    assert m[0, :15].max() < -3 and abs(float(np.median(m[0, 25:]))) < 1  # silence reads as very quiet, clipped


def test_weights_round_trip_and_missing_file(tmp_path):
    import torch

    torch.manual_seed(0)
    model = ls.LandmarkSyncNet(window=5, hidden=16, embed_dim=8)
    path = ls.save_landmark_sync(model, tmp_path / "w.safetensors", {"note": "test"})
    back = ls.load_landmark_sync(path)
    assert (back.window, back.hidden, back.embed_dim) == (5, 16, 8) and back.meta["note"] == "test"
    x = torch.randn(3, ls.N_FEATURES, 5)
    torch.testing.assert_close(back.embed_lips(x), model.half().float().embed_lips(x), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="make train-landmark-sync"):
        ls.load_landmark_sync(tmp_path / "missing.safetensors")


def test_shipped_model_is_small():
    assert ls.DEFAULT_WEIGHTS.is_file() and ls.DEFAULT_WEIGHTS.stat().st_size < 2_000_000
    assert ls.DEFAULT_WEIGHTS.with_suffix(".json").is_file()


@pytest.mark.parametrize("identity,scene", [(1_000_003, 100_007), (1_000_011, 100_002)])
def test_offsets_recovered_on_held_out_world_clips(identity, scene):
    """World clips the model never saw; lips from the world's own 68-point labels (the iBUG layout, not the
    mediapipe points it was trained on). In sync it reads the identity's mouth lag L; audio advanced by s reads
    L + s (SyncNet's sign: > 0 = audio leads)."""
    from avatarv.world import make_clip
    from avatarv.world.clip import offset_audio

    clip = make_clip(identity, scene, 6.0, 128, 0)
    lag = clip.meta["mouth_lag_frames"]
    model = ls.load_landmark_sync()
    track = ls.LipTrack.from_landmarks(clip.labels.landmarks, "ibug")
    for s in (-7, 0, 4, 9):
        res = ls.evaluate_lips(model, track, offset_audio(clip.audio, s) if s else clip.audio)
        assert abs(res.offset - (lag + s)) <= 1, (s, lag, res.offset)
        assert res.n_windows == 145 and res.dists.shape == (31, 145)

"""mediapipe FaceMesh wrapper: real faces found, named index sets point at the right parts, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from avatarv.media import face_mesh as fm
from avatarv.media.read import read_video

pytest.importorskip("mediapipe")


@pytest.fixture(scope="module")
def real_tracks(real_clips):
    out = {}
    for p in real_clips:
        video = read_video(p, max_frames=100)
        out[p.name] = (video.frames, fm.face_mesh(video.frames))
    return out


def test_real_faces_found_and_parts_where_they_belong(real_tracks):
    assert len(real_tracks) == 5
    for name, (frames, track) in real_tracks.items():
        t, h, w = frames.shape[:3]
        assert track.points.shape == (t, fm.N_LANDMARKS, 3) and track.points.dtype == np.float32
        assert track.detected_fraction >= 0.95, (name, track.detected_fraction)
        p = track.points[track.detected]  # [n, 478, 3]
        assert np.isfinite(p).all()
        assert (p[..., 0] > -0.05 * w).all() and (p[..., 0] < 1.05 * w).all(), name  # pixels, not [0, 1]
        # frontal faces: the subject's right (mouth corner 61, eye 33) is on the image's left
        assert (p[:, fm.MOUTH_CORNERS[0], 0] < p[:, fm.MOUTH_CORNERS[1], 0]).all(), name
        assert (p[:, fm.RIGHT_EYE_CORNERS[0], 0] < p[:, fm.LEFT_EYE_CORNERS[0], 0]).all(), name
        # eyes above the mouth above the chin; iris centres between their eye's corners
        eye_y = p[:, list(fm.RIGHT_EYE) + list(fm.LEFT_EYE), 1].mean(1)
        mouth_y = p[:, list(fm.LIPS_OUTER), 1].mean(1)
        assert (eye_y < mouth_y).all() and (mouth_y < p[:, fm.CHIN, 1]).all(), name
        for iris, corners in ((fm.RIGHT_IRIS, fm.RIGHT_EYE_CORNERS), (fm.LEFT_IRIS, fm.LEFT_EYE_CORNERS)):
            lo = np.minimum(p[:, corners[0], 0], p[:, corners[1], 0])
            hi = np.maximum(p[:, corners[0], 0], p[:, corners[1], 0])
            assert ((p[:, iris[0], 0] > lo) & (p[:, iris[0], 0] < hi)).mean() > 0.95, name
        # the inner-lip midpoints open and close while they speak: the opening changes over the clip
        opening = fm.mouth_opening(track.points)[track.detected]
        assert opening.min() < 0.05 and opening.max() - opening.min() > 0.12 and opening.std() > 0.03, (
            name, opening.min(), opening.max(), opening.std())


def test_same_frames_same_landmarks_and_no_face_is_nan(real_tracks):
    frames, track = next(iter(real_tracks.values()))
    again = fm.face_mesh(frames[:15])  # a fresh graph: no tracking state carried over
    np.testing.assert_array_equal(again.points, track.points[:15])
    blank = np.full((3, 64, 64, 3), 128, np.uint8)
    empty = fm.face_mesh(blank)
    assert not empty.detected.any() and np.isnan(empty.points).all() and empty.detected_fraction == 0.0


def test_bad_frames_rejected():
    with pytest.raises(ValueError, match="uint8 RGB"):
        fm.face_mesh(np.zeros((2, 8, 8, 3), np.float32))


def test_index_sets_are_distinct_and_in_range():
    sets = [fm.LIPS_OUTER, fm.LIPS_INNER, fm.RIGHT_EYE, fm.LEFT_EYE, fm.RIGHT_IRIS, fm.LEFT_IRIS]
    flat = [i for s in sets for i in s]
    assert len(flat) == len(set(flat)) and max(flat) == fm.N_LANDMARKS - 1 and min(flat) >= 0
    assert set(fm.MOUTH_CORNERS) <= set(fm.LIPS_OUTER) and set(fm.INNER_LIP_MIDS) <= set(fm.LIPS_INNER)


def test_world_faces_are_found_and_their_mouths_read_like_the_labels():
    """The landmark SyncNet trains on face mesh run on world renders: the painted faces must be found and their
    inner-lip opening must follow the world's ground truth (68-point labels: inner lips 62/66, corners 48/54)."""
    from avatarv.world import make_clip

    clip = make_clip(1_000_001, 100_003, 3.0, 192, 0)
    track = fm.face_mesh(clip.frames)
    assert track.detected_fraction >= 0.95
    lm = clip.labels.landmarks
    truth = np.linalg.norm(lm[:, 62] - lm[:, 66], axis=-1) / np.linalg.norm(lm[:, 48] - lm[:, 54], axis=-1)
    ok = track.detected
    assert np.corrcoef(fm.mouth_opening(track.points)[ok], truth[ok])[0, 1] > 0.9
    corner_err = np.linalg.norm(track.points[ok][:, fm.MOUTH_CORNERS[0], :2] - lm[ok][:, 48], axis=-1)
    assert np.median(corner_err) < 3.0  # px, at 192 px

"""The faces stage's mediapipe signals: eye aspect ratio from mesh points, blink events against the clip's
open-eye level, iris gaze per eye (roll- and scale-free), the head-pose range about a circular centre, and the
stage on frames with nobody in them (gaze unavailable with a reason, no person, no hands)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avatarv.data.curation.stages.faces import (
    MESH_EAR,
    blink_events,
    hold,
    iris_gaze,
    mesh_eye_aspect_ratio,
    pose_range,
)
from avatarv.media.face_mesh import LEFT_EYE_CORNERS, LEFT_IRIS, RIGHT_EYE_CORNERS, RIGHT_IRIS


def _eye_points(ear: float, width: float = 30.0) -> np.ndarray:
    """[1, 478, 3] with both eyes' six EAR points placed so that each eye's EAR is exactly ``ear``."""
    p = np.zeros((1, 478, 3))
    for k, idx in enumerate(MESH_EAR.values()):
        x0 = 100.0 * k
        half = ear * width / 2  # (|p2-p6| + |p3-p5|) / (2 |p1-p4|) = 2 * (2 half) / (2 width) = ear
        pts = [(x0, 50), (x0 + 10, 50 - half), (x0 + 20, 50 - half), (x0 + width, 50), (x0 + 20, 50 + half),
               (x0 + 10, 50 + half)]
        for i, xy in zip(idx, pts, strict=True):
            p[0, i, :2] = xy
    return p


def test_mesh_eye_aspect_ratio_formula():
    for ear in (0.05, 0.3):
        assert mesh_eye_aspect_ratio(_eye_points(ear))[0] == pytest.approx(ear)
    assert np.isnan(mesh_eye_aspect_ratio(np.full((1, 478, 3), np.nan))[0])


def test_blink_events_relative_to_the_open_level():
    ear = np.full(100, 0.30)
    ear[10:13] = 0.10  # a blink (3 frames)
    ear[40] = 0.18  # 0.6 x open level: below 0.65 x 0.30 = 0.195 -> a 1-frame blink
    ear[60:80] = 0.05  # eyes shut for 0.8 s: not a blink
    ear[90] = 0.22  # a squint above the cut
    ear[95] = np.nan  # no face: not a blink
    assert blink_events(ear, 0.65) == [[10, 13], [40, 41]]
    assert blink_events(ear * 0.6, 0.65) == [[10, 13], [40, 41]]  # another person's narrower eyes: same blinks
    assert blink_events(np.full(5, np.nan), 0.65) == []


def _gaze_points(iris_offset_x: float, iris_offset_y: float, roll_deg: float = 0.0, scale: float = 1.0):
    """[1, 478, 3] with both eyes' corners 40 px apart (times ``scale``) and each iris shifted by the given
    fraction of half an eye width along / across the eye, the whole face turned by ``roll_deg``."""
    p = np.zeros((1, 478, 3))
    pts = {RIGHT_EYE_CORNERS[0]: (-60, 0), RIGHT_EYE_CORNERS[1]: (-20, 0), LEFT_EYE_CORNERS[1]: (20, 0),
           LEFT_EYE_CORNERS[0]: (60, 0)}
    for centre, iris in ((-40, RIGHT_IRIS[0]), (40, LEFT_IRIS[0])):
        pts[iris] = (centre + 20 * iris_offset_x, 20 * iris_offset_y)
    r = np.radians(roll_deg)
    rot = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
    for i, xy in pts.items():
        p[0, i, :2] = rot @ (np.array(xy, float) * scale) + 200
    return p


def test_iris_gaze_per_eye_is_roll_and_scale_free():
    g = iris_gaze(_gaze_points(0.0, 0.0))
    assert g.shape == (1, 2, 2) and np.allclose(g, 0, atol=1e-6)
    g = iris_gaze(_gaze_points(0.5, -0.2))  # both irises right and up
    assert np.allclose(g[0], [[0.5, -0.2], [0.5, -0.2]], atol=1e-6)
    assert np.allclose(iris_gaze(_gaze_points(0.5, -0.2, roll_deg=25, scale=2.5)), g, atol=1e-5)
    crossed = _gaze_points(0.0, 0.0)
    crossed[0, RIGHT_IRIS[0], 0] += 10  # image-left eye looks right (towards the nose), the other stays
    g = iris_gaze(crossed)[0]
    assert g[0, 0] == pytest.approx(0.5) and g[1, 0] == pytest.approx(0.0)


def test_pose_range_is_circular_and_robust():
    t = np.linspace(0, 2 * np.pi, 200)
    pose = np.stack([10 * np.sin(t), np.zeros_like(t), 178 + 4 * np.sin(t)], 1)  # roll crosses +-180
    pose[:, 2] = (pose[:, 2] + 180) % 360 - 180
    pose[7] = [80.0, 0.0, 0.0]  # one mis-fitted frame
    yaw, pitch, roll = pose_range(pose)
    assert yaw == pytest.approx(2 * 10 * np.sin(0.45 * np.pi), rel=0.02)  # p5..p95 of a sine: arcsine law
    assert pitch == 0.0
    assert roll == pytest.approx(2 * 4 * np.sin(0.45 * np.pi), rel=0.05)


def test_hold_keeps_each_sample_until_the_next():
    x = np.array([1, -1, -1, 2, -1, -1, 3])
    assert hold(x, 3).tolist() == [1, 1, 1, 2, 2, 2, 3]


def test_stage_on_frames_with_nobody(tmp_path: Path):
    """An empty grey video: no face, no person, no hands, gaze unavailable with the mesh's reason."""
    from avatarv.data.curation.stage import Artifact, Item
    from avatarv.data.curation.stages.faces import Faces

    norm = tmp_path / "normalise"
    norm.mkdir()
    np.save(norm / "frames.npy", np.full((10, 64, 64, 3), 120, np.uint8))
    art = Artifact("normalise", norm, {"store": "npy", "sample_rate": 16000})
    item = Item("grey.mp4", tmp_path / "grey.mp4", "0", upstream={"normalise": art})
    out = Faces(detect_every=5, body_every=5).process(item)
    v = out.values
    assert v["face_fraction"] == 0.0 and v["person"] == [] and v["person_fraction"] == 0.0
    assert v["no_human"] == [[0, 10]] and v["hands"] == [] and v["hand_quality_mean"] is None
    assert v["blinks"] == 0 and v["mesh_fraction"] == 0.0
    assert v["unavailable"] == {"gaze": "mediapipe face mesh found no face"}
    assert out.arrays["gaze"].shape == (10, 2, 2) and out.arrays["body_pose"].shape == (10, 33, 4)
    json.dumps(v)  # values are JSON-able

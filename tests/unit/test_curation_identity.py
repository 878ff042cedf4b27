"""The identity graph's backends and measured thresholds, and the background from selfie segmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatarv.data.curation.stage import Artifact, Item
from avatarv.data.curation.stages.identity import (
    FACE_THRESHOLDS,
    ClipIdentity,
    IdentityGraph,
    background_hist,
    box_background_mask,
    face_distance,
    face_threshold,
)
from avatarv.errors import ConfigError


def test_face_distance_per_backend():
    a, b = np.array([0.3, 0.4, 0.0]), np.array([0.0, 0.0, 0.5])
    assert face_distance("dlib", a, b) == pytest.approx(np.sqrt(0.09 + 0.16 + 0.25))
    assert face_distance("world", a, b) == pytest.approx(1.0)  # orthogonal
    assert face_distance("world", a, 7 * a) == pytest.approx(0.0)  # cosine: scale-free
    m = face_distance("dlib", np.eye(3)[:, None], np.eye(3)[None])
    assert m.shape == (3, 3) and np.allclose(m, np.sqrt(2) * (1 - np.eye(3)))


def test_thresholds_are_stored_per_backend_and_footage():
    assert face_threshold("dlib", "real") == FACE_THRESHOLDS["dlib"]["real"] == 0.34
    assert face_threshold("dlib", "world") == 0.3
    assert face_threshold("world", "world") == 0.32
    with pytest.raises(ConfigError, match="no measured face threshold for backend 'world' on 'real'"):
        face_threshold("world", "real")
    with pytest.raises(ConfigError, match="background"):
        ClipIdentity(background="blur")
    with pytest.raises(ConfigError, match="no measured graph threshold"):
        ClipIdentity(backend="arcface-onnx")


def _items(tmp_path: Path, faces: list[np.ndarray], backend: str = "dlib") -> list[Item]:
    """One item per face descriptor, one clip each, the same background."""
    items = []
    for k, f in enumerate(faces):
        d = tmp_path / f"id{k}"
        d.mkdir()
        np.save(d / "face.npy", np.asarray(f, np.float32)[None])
        np.save(d / "background.npy", np.full((1, 144), 1 / 144, np.float32))
        art = Artifact("identity", d, {"clips": [[0, 50]], "backend": backend})
        items.append(Item(f"v{k}.mp4", d / "v.mp4", str(k), upstream={"identity": art}))
    return items


def test_graph_applies_the_threshold_of_the_backend_and_footage(tmp_path):
    # three faces on a line: 0 and 1 are 0.32 apart (one real person: < 0.34; two world people: > 0.3), 2 is far
    faces = [np.zeros(128), np.r_[0.32, np.zeros(127)], np.r_[0.0, 0.9, np.zeros(126)]]
    items = _items(tmp_path, faces)
    real = IdentityGraph().process(items).values  # footage auto: no world labels beside the items -> real
    assert [c["person_id"] for c in real["clips"]] == [0, 0, 1] and real["face_max"] == 0.34
    assert real["footage"] == "real"
    world = IdentityGraph(footage="world").process(items).values
    assert [c["person_id"] for c in world["clips"]] == [0, 1, 2] and world["face_max"] == 0.3
    assert IdentityGraph(face_max=0.2).process(items).values["people"] == 3  # an explicit cut wins
    for it in items:  # the world's labels beside each item: footage auto -> world
        it.source.with_suffix(".json").write_text('{"mouth_lag_frames": 2}')
    auto = IdentityGraph().process(items).values
    assert auto["footage"] == "world" and auto["face_max"] == 0.3 and auto["people"] == 3
    with pytest.raises(ConfigError, match="footage"):
        IdentityGraph(footage="film")
    (tmp_path / "w").mkdir()
    mixed = items[:2] + _items(tmp_path / "w", [np.ones(128)], backend="world")
    for it in items:
        it.source.with_suffix(".json").unlink()
    with pytest.raises(ConfigError, match="different backends"):
        IdentityGraph().process(mixed)


def test_box_background_mask_excludes_face_and_body():
    m = box_background_mask((100, 100), (40, 30, 60, 50), 2.0)  # face 20 wide -> body 40 wide, from y=20 down
    assert m[10, 50] and m[90, 10] and m[90, 90]
    assert not m[40, 50] and not m[99, 35] and not m[25, 65]


def test_segmentation_background_leaves_out_the_person(real_clips):
    """woman_glasses_red_jacket: her red jacket fills the bottom of the frame, the background is a grey-blue
    glass building. The background from selfie segmentation has almost no saturated red; the whole frame has."""
    from avatarv.media import read_video
    from avatarv.media.body import person_masks

    clip = next(p for p in real_clips if p.stem == "woman_glasses_red_jacket")
    frame = read_video(clip, fps=25.0).frames[20]
    person = person_masks(frame[None])[0] > 0.5

    def red_mass(hist):  # hue bins 0 and 17 (hue < 10 or >= 170 of 180), saturation bins 3..7 (> 96 of 256)
        h = hist.reshape(18, 8)
        return float(h[[0, 17], 3:].sum())

    whole = red_mass(background_hist(frame, np.ones(frame.shape[:2], bool)))
    background = red_mass(background_hist(frame, ~person))
    assert whole > 0.1 and background < 0.2 * whole, (whole, background)
    assert 0.3 < person.mean() < 0.9

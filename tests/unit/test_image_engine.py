"""Image engine: diverse reference frames by farthest-point sampling; user scene images."""

from __future__ import annotations

import numpy as np
import pytest

from avatarv.errors import InputError
from avatarv.pipelines.image_engine import farthest_point_sampling, frame_embeddings, load_scene_image


def test_farthest_point_sampling_covers_the_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
    pts = np.concatenate([c + rng.normal(0, 0.3, (25, 2)) for c in centres])
    picked = farthest_point_sampling(pts, 4)
    assert sorted({i // 25 for i in picked}) == [0, 1, 2, 3]  # one view per pose cluster
    mask = np.zeros(100, bool)
    mask[:50] = True  # only frames with a face are candidates
    assert all(i < 50 for i in farthest_point_sampling(pts, 3, candidates=mask))


def test_frame_embeddings_separate_different_expressions():
    a = np.zeros((32, 32, 3), np.uint8)
    a[8:24, 8:24] = 255
    b = np.zeros((32, 32, 3), np.uint8)
    b[:, :16] = 255
    emb = frame_embeddings(np.stack([a, a.copy(), b]))
    assert np.allclose(emb[0], emb[1]) and np.linalg.norm(emb[0] - emb[2]) > 0.5


def test_load_scene_image(tmp_path):
    import cv2

    img = np.zeros((60, 100, 3), np.uint8)
    img[:, 50:] = (0, 0, 255)  # BGR red on the right
    cv2.imwrite(str(tmp_path / "s.png"), img)
    out = load_scene_image(tmp_path / "s.png", 32)
    assert out.shape == (32, 32, 3) and out[16, 28, 0] > 200 and out[16, 2, 0] == 0  # RGB, centre square
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(InputError, match="scene image"):
        load_scene_image(tmp_path / "bad.png", 32)

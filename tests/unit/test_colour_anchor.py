"""The fast colour anchor: match_colors' per-frame Lab transfer (the reference) to one grey level on real and
random frames, at full and half strength; a flat frame gets the scene's mean colour; strength 0 is the identity."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avatarv.pipelines.colour_anchor import colour_anchor, lab_statistics
from avatarv.pipelines.infinitetalk_sampling import match_colors


def _reference(frames: np.ndarray, scene: np.ndarray, strength: float) -> np.ndarray:
    out = match_colors(frames.astype(np.float32) / 255.0, scene.astype(np.float32) / 255.0, strength)
    return np.round(out * 255.0).astype(np.uint8)


@pytest.fixture(scope="module")
def real_frames(real_clips) -> np.ndarray:
    """Six frames of a real talking-head clip at 64 px."""
    from avatarv.media import read_video
    from avatarv.pipelines.reference import resize_square

    return resize_square(read_video(real_clips[0]).frames[:6], 64)


@pytest.mark.parametrize("kind", ["random", "real"])
@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_matches_match_colors(kind, strength, request):
    rng = np.random.default_rng(3)
    frames = (rng.integers(0, 256, (6, 48, 48, 3)).astype(np.uint8) if kind == "random"
              else request.getfixturevalue("real_frames"))
    scene = np.random.default_rng(4).integers(0, 256, frames.shape[1:]).astype(np.uint8)
    got = colour_anchor(frames, scene, strength)
    assert got.dtype == np.uint8 and got.shape == frames.shape
    assert np.abs(got.astype(int) - _reference(frames, scene, strength)).max() <= 1


def test_flat_frame_gets_the_scene_mean_and_strength_zero_is_identity():
    scene = np.random.default_rng(5).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    flat = np.full((2, 32, 32, 3), 77, np.uint8)
    got = colour_anchor(flat, scene, 1.0)
    ref_mean, _ = lab_statistics(cv2.cvtColor(scene.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab))
    want = cv2.cvtColor(ref_mean.astype(np.float32).reshape(1, 1, 3), cv2.COLOR_Lab2RGB).reshape(3)
    assert np.abs(got.reshape(-1, 3).astype(float) - np.clip(want, 0, 1) * 255).max() <= 1
    frames = np.random.default_rng(6).integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    assert np.array_equal(colour_anchor(frames, scene, 0.0), frames)
    assert colour_anchor(None, scene, 1.0) is None
    with pytest.raises(ValueError, match="strength"):
        colour_anchor(frames, scene, 1.5)

"""mediapipe body wrappers (avatarv.media.body): finger-proportion check, hand quality, person presence, and the
models on real frames (../shared/real; skipped with a reason when absent) and on an empty frame."""

from __future__ import annotations

import numpy as np
import pytest

from avatarv.media.body import (
    FINGERS,
    NOSE,
    hand_geometry_plausibility,
    hand_quality,
    person_present,
)


def _hand(scale: float = 0.1) -> np.ndarray:
    """A flat open right hand [21, 3] (metres): palm length ``scale`` (wrist to middle MCP), fingers along +y
    with bone lengths from adult proportions (chains 0.65-0.85 x palm, thumb 0.8 x palm)."""
    w = np.zeros((21, 3))
    chain = {"thumb": (-0.45, 0.30, 0.8), "index": (-0.25, 1.0, 0.72), "middle": (0.0, 1.0, 0.8),
             "ring": (0.22, 0.95, 0.75), "little": (0.42, 0.85, 0.6)}
    for name, (x, y0, length) in chain.items():
        idx = FINGERS[name]
        base = np.array([x, y0, 0.0]) * scale
        for k, i in enumerate(idx):
            w[i] = base + np.array([0.0, length * k / 3, 0.0]) * scale
    return w


def test_finger_proportions_accept_a_hand_and_reject_malformed_skeletons():
    hand = _hand()
    assert hand_geometry_plausibility(hand) == 1.0
    assert hand_geometry_plausibility(_hand(scale=0.5)) == 1.0  # ratios: the unit does not matter
    collapsed = hand.copy()
    for name in ("index", "middle", "ring"):
        a, *rest = FINGERS[name]
        collapsed[list(rest)] = collapsed[a]  # three fingers shrunk to their knuckles
    assert hand_geometry_plausibility(collapsed) == pytest.approx(2 / 5)
    stretched = hand.copy()
    stretched[list(FINGERS["little"])] *= np.array([1.0, 4.0, 1.0])  # a finger longer than the palm x 3
    assert hand_geometry_plausibility(stretched) == pytest.approx(4 / 5)
    assert hand_geometry_plausibility(np.zeros((21, 3))) == 0.0  # no palm
    assert hand_geometry_plausibility(np.full((21, 3), np.nan)) == 0.0


def test_hand_quality_multiplies_confidence_inside_fraction_and_geometry():
    world = _hand()
    img = np.zeros((21, 3))
    img[:, 0], img[:, 1] = np.linspace(10, 50, 21), 20.0
    assert hand_quality(img, world, 0.9, 100, 100) == pytest.approx(0.9)
    half = img.copy()
    half[:10, 0] = -5.0  # 10 of 21 landmarks left of the frame
    assert hand_quality(half, world, 0.9, 100, 100) == pytest.approx(0.9 * 11 / 21)
    bad = world.copy()
    bad[list(FINGERS["index"][1:])] = bad[FINGERS["index"][0]]  # index finger shrunk to its knuckle
    assert hand_quality(img, bad, 1.0, 100, 100) == pytest.approx(4 / 5)


def test_person_present_needs_nose_and_shoulders_visible():
    pose = np.full((4, 33, 4), np.nan, np.float32)
    pose[1, :, 3] = 0.9  # whole body visible
    pose[2, :, 3] = 0.9
    pose[2, [11, 12], 3] = 0.1  # shoulders hidden: (0.9 + 0.1 + 0.1) / 3 < 0.5
    pose[3, :, 3] = 0.0
    pose[3, [NOSE, 11, 12], 3] = 0.6
    assert person_present(pose).tolist() == [False, True, False, True]


def test_models_on_an_empty_frame_find_nobody():
    from avatarv.media.body import body_pose, hand_landmarks, person_masks

    frames = np.full((2, 96, 96, 3), 128, np.uint8)
    assert np.isnan(body_pose(frames)).all()
    hands = hand_landmarks(frames)
    assert hands.count.tolist() == [0, 0]
    mask = person_masks(frames)
    assert mask.shape == (2, 96, 96) and float(mask.mean()) < 0.2
    with pytest.raises(ValueError, match="stride"):
        body_pose(frames, stride=0)
    with pytest.raises(ValueError, match="uint8"):
        person_masks(frames.astype(np.float32))


def test_models_on_a_real_frame(real_clips):
    """woman_glasses_red_jacket, 4 frames at 256 px: a frontal head and shoulders, no hands in view (checked by
    eye on frames 0-121): the nose lies inside dlib's face box, shoulders below it and wider than the face,
    the person mask covers the face centre and not the top corners, no hand is found."""
    import cv2

    from avatarv.media import detect_faces, read_video
    from avatarv.media.body import L_SHOULDER, R_SHOULDER, body_pose, hand_landmarks, person_masks

    clip = next(p for p in real_clips if p.stem == "woman_glasses_red_jacket")
    frames = read_video(clip, fps=25.0).frames[:40:10]
    frames = np.stack([cv2.resize(f, (256, 256), interpolation=cv2.INTER_AREA) for f in frames])
    pose = body_pose(frames)
    assert person_present(pose).all()
    box = detect_faces(frames[0])[0]
    nose = pose[0, NOSE, :2]
    assert box.left < nose[0] < box.right and box.top < nose[1] < box.bottom, (box, nose)
    shoulders = pose[0, [R_SHOULDER, L_SHOULDER], :2]
    assert (shoulders[:, 1] > box.bottom - 0.2 * box.height).all()
    assert shoulders[1, 0] - shoulders[0, 0] > box.width  # subject's left shoulder is on the image's right
    mask = person_masks(frames, stride=2)
    assert np.isnan(mask[1]).all() and np.isfinite(mask[0]).all()
    cy, cx = (box.top + box.bottom) // 2, (box.left + box.right) // 2
    assert mask[0, cy, cx] > 0.8 and mask[0, :20, :20].mean() < 0.3 and mask[0, :20, -20:].mean() < 0.3
    assert hand_landmarks(frames).count.sum() == 0


def test_hand_span_is_the_largest_landmark_distance():
    from avatarv.media.body import hand_span

    p = np.zeros((21, 3))
    p[4, :2] = (3.0, 4.0)
    p[20, :2] = (-3.0, -4.0)
    assert hand_span(p) == pytest.approx(10.0)

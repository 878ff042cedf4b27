"""Body, hands and person masks on RGB frames with mediapipe 0.10.14's ``solutions`` (TFLite models shipped in the
wheel, run offline on the CPU).

- :func:`body_pose`: BlazePose full (``pose_landmark_full.tflite``; the lite and heavy variants are *not*
  shipped and mediapipe would try to download them, so only ``model_complexity=1`` is used) -> 33 landmarks
  ``[x_px, y_px, z, visibility]``; a frame with a person has landmarks, one without has NaN.
- :func:`hand_landmarks`: palm detector + hand landmark model (full) -> up to two hands of 21 landmarks, the
  handedness confidence, and metric 3-D "world" landmarks (metres, origin at the hand's centre) that
  :func:`hand_geometry_plausibility` checks against human finger proportions.
- :func:`person_masks`: selfie segmentation (general model, 256 x 256) -> person probability per pixel.

Frames are processed in order as a video (mediapipe tracks between calls), every ``stride``-th frame; the
others stay NaN. Landmark indices follow mediapipe's documentation (pose: 0 nose, 11/12 shoulders,
23/24 hips; hands: 0 wrist, 1-4 thumb CMC..tip, 5-8 index MCP..tip, 9-12 middle, 13-16 ring, 17-20 little).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POSE_POINTS = 33
HAND_POINTS = 21
MAX_HANDS = 2
NOSE, L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = 0, 11, 12, 23, 24
UPPER_BODY = (NOSE, L_SHOULDER, R_SHOULDER)
FINGERS = {"thumb": (1, 2, 3, 4), "index": (5, 6, 7, 8), "middle": (9, 10, 11, 12), "ring": (13, 14, 15, 16),
           "little": (17, 18, 19, 20)}
# Finger chain length (sum of its three bones) over palm length (wrist to middle MCP). Adult hands (Buryanov &
# Kotiuk 2010, "Proportions of hand segments", Int. J. Morphol. 28(3)): palm length ~10 cm, finger chains from
# the MCP joint 6-8 cm (thumb from the CMC joint ~8-9 cm) -> ratios 0.55-0.9. The bounds below are loose
# (posture, foreshortening of mediapipe's world landmarks, children) and flag only a malformed skeleton.
FINGER_RATIO = {"thumb": (0.45, 1.4), "index": (0.45, 1.3), "middle": (0.5, 1.4), "ring": (0.45, 1.3),
                "little": (0.3, 1.1)}


def _check(frames: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected [T, H, W, 3] uint8 RGB frames, got {frames.shape} {frames.dtype}")


def _indices(n: int, stride: int) -> range:
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    return range(0, n, stride)


def body_pose(frames: np.ndarray, stride: int = 1, min_confidence: float = 0.5) -> np.ndarray:
    """``frames [T,H,W,3]`` uint8 RGB -> ``[T, 33, 4]`` float32 ``(x px, y px, z, visibility)``; NaN on frames
    without a person and on frames off the stride."""
    import mediapipe as mp

    _check(frames)
    t, h, w = frames.shape[:3]
    out = np.full((t, POSE_POINTS, 4), np.nan, np.float32)
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=False,
                                min_detection_confidence=min_confidence) as pose:
        for i in _indices(t, stride):
            res = pose.process(np.ascontiguousarray(frames[i]))
            if res.pose_landmarks is not None:
                out[i] = [(p.x * w, p.y * h, p.z, p.visibility) for p in res.pose_landmarks.landmark]
    return out


@dataclass
class Hands:
    """Hands per frame (slot 0 is the more confident hand): image landmarks ``[T, 2, 21, 3]`` (x px, y px, z),
    world landmarks ``[T, 2, 21, 3]`` (metres), handedness confidence ``[T, 2]``; NaN where no hand."""

    landmarks: np.ndarray
    world: np.ndarray
    score: np.ndarray

    @property
    def count(self) -> np.ndarray:  # [T] hands per frame (0 also off the stride)
        return np.isfinite(self.score).sum(1)


def hand_landmarks(frames: np.ndarray, stride: int = 1, min_confidence: float = 0.5) -> Hands:
    import mediapipe as mp

    _check(frames)
    t, h, w = frames.shape[:3]
    lm = np.full((t, MAX_HANDS, HAND_POINTS, 3), np.nan, np.float32)
    world = np.full_like(lm, np.nan)
    score = np.full((t, MAX_HANDS), np.nan, np.float32)
    with mp.solutions.hands.Hands(static_image_mode=False, max_num_hands=MAX_HANDS, model_complexity=1,
                                  min_detection_confidence=min_confidence) as hands:
        for i in _indices(t, stride):
            res = hands.process(np.ascontiguousarray(frames[i]))
            if not res.multi_hand_landmarks:
                continue
            found = [(c.classification[0].score, a, b) for a, b, c in
                     zip(res.multi_hand_landmarks, res.multi_hand_world_landmarks, res.multi_handedness, strict=True)]
            for k, (s, a, b) in enumerate(sorted(found, key=lambda f: -f[0])[:MAX_HANDS]):
                score[i, k] = s
                lm[i, k] = [(p.x * w, p.y * h, p.z * w) for p in a.landmark]
                world[i, k] = [(p.x, p.y, p.z) for p in b.landmark]
    return Hands(lm, world, score)


def hand_geometry_plausibility(world: np.ndarray) -> float:
    """Fraction of the five fingers whose chain length over the palm length lies in :data:`FINGER_RATIO`
    (``world [21, 3]``, any unit). 1.0: a hand-shaped skeleton; low: collapsed or stretched fingers."""
    w = np.asarray(world, np.float64)
    palm = np.linalg.norm(w[9] - w[0])
    if not np.isfinite(palm) or palm <= 1e-9:
        return 0.0
    ok = 0
    for name, chain in FINGERS.items():
        length = sum(np.linalg.norm(w[b] - w[a]) for a, b in zip(chain[:-1], chain[1:], strict=True))
        lo, hi = FINGER_RATIO[name]
        ok += int(lo <= length / palm <= hi)
    return ok / len(FINGERS)


def hand_quality(landmarks: np.ndarray, world: np.ndarray, score: float, width: int, height: int) -> float:
    """One hand's quality in [0, 1]: handedness confidence x fraction of its 21 landmarks inside the frame x
    :func:`hand_geometry_plausibility`. Low for an uncertain detection, a hand cut by the frame edge, or a
    malformed skeleton (what a generated or motion-smeared hand tends to give)."""
    p = np.asarray(landmarks, np.float64)
    inside = float(((p[:, 0] >= 0) & (p[:, 0] < width) & (p[:, 1] >= 0) & (p[:, 1] < height)).mean())
    return float(score) * inside * hand_geometry_plausibility(world)


def hand_span(landmarks: np.ndarray) -> float:
    """The largest distance between two of a hand's 21 image landmarks ``[21, >=2]`` (px): its size in the
    picture (an open adult hand, wrist to fingertip, is ~1.4 face heights; a fist ~0.8)."""
    p = np.asarray(landmarks, np.float64)[:, :2]
    return float(np.linalg.norm(p[:, None] - p[None], axis=-1).max())


def person_masks(frames: np.ndarray, stride: int = 1) -> np.ndarray:
    """``frames [T,H,W,3]`` -> person probability ``[T,H,W]`` float32 in [0, 1]; NaN off the stride."""
    import mediapipe as mp

    _check(frames)
    t, h, w = frames.shape[:3]
    out = np.full((t, h, w), np.nan, np.float32)
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        for i in _indices(t, stride):
            out[i] = seg.process(np.ascontiguousarray(frames[i])).segmentation_mask
    return out


def person_present(pose: np.ndarray, min_visibility: float = 0.5) -> np.ndarray:
    """``pose [T, 33, 4]`` -> ``[T]`` bool: the upper body (nose and both shoulders) is visible on average."""
    vis = pose[:, list(UPPER_BODY), 3]
    return np.nan_to_num(vis, nan=0.0).mean(1) >= min_visibility

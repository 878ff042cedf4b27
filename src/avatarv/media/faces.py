"""Face detection on RGB frames with dlib's HOG frontal-face detector (built into dlib, no weights to ship).

One small function so every part (inspect, curation, world checks, eval) asks "is there a face, where"
the same way. HOG finds frontal faces down to ≈ 80 px at ``upsample=0`` and ≈ 40 px at ``upsample=1``
(each upsampling step doubles the image side and ≈ 4× the time).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np


class FaceBox(NamedTuple):
    """A detected face: pixel box ``[left, right) × [top, bottom)`` and the detector's score (> 0 = face)."""

    left: int
    top: int
    right: int
    bottom: int
    score: float

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


@functools.cache
def _detector():
    import dlib  # imported lazily: dlib is heavy and only face-related code needs it

    return dlib.get_frontal_face_detector()


def detect_faces(frame_rgb: np.ndarray, upsample: int | None = None, threshold: float = 0.0) -> list[FaceBox]:
    """Faces in one ``[H, W, 3]`` uint8 RGB frame, largest first, boxes clipped to the frame.

    ``upsample=None`` picks 1 for frames whose shorter side is ≤ 320 px (small faces), else 0.
    ``threshold`` is dlib's score cut (0 is dlib's default; raise it for fewer false positives).
    """
    frame = np.ascontiguousarray(frame_rgb)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected [H, W, 3] uint8 RGB, got {frame.shape} {frame.dtype}")
    h, w = frame.shape[:2]
    if upsample is None:
        upsample = 1 if min(h, w) <= 320 else 0
    rects, scores, _ = _detector().run(frame, upsample, threshold)
    boxes = [
        FaceBox(max(0, r.left()), max(0, r.top()), min(w, r.right() + 1), min(h, r.bottom() + 1), float(s))
        for r, s in zip(rects, scores, strict=True)
    ]
    return sorted(boxes, key=lambda b: b.width * b.height, reverse=True)

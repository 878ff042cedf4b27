"""Square face crops: from a box to the FaceNet input and back to frame coordinates."""

from __future__ import annotations

import cv2
import numpy as np

from avatarv.analyzer.model import CROP_SCALE, FACE_INPUT


def crop_square(box: np.ndarray, scale: float = CROP_SCALE) -> np.ndarray:
    """(cx, cy, side) of the square crop around a landmark box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * scale
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2 - 0.05 * side, side], np.float32)


def crop(frame: np.ndarray, square: np.ndarray, size: int = FACE_INPUT) -> np.ndarray:
    """The square (cx, cy, side) of ``frame`` resampled to size² (borders replicated). uint8 [size, size, 3]."""
    cx, cy, side = (float(v) for v in square)
    k = size / side
    # maps frame pixel centres p to crop pixel centres u = (p - cx + side/2)·k - 1/2 (continuous edges align)
    m = np.array([[k, 0, (side / 2 - cx) * k - 0.5], [0, k, (side / 2 - cy) * k - 0.5]], np.float32)
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(frame, m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def to_crop(points: np.ndarray, square: np.ndarray) -> np.ndarray:
    """Frame pixel coordinates → crop coordinates in [-1, 1] (the crop's edges)."""
    cx, cy, side = square
    return (points - np.array([cx, cy], np.float32)) / (side / 2)


def from_crop(points: np.ndarray, square: np.ndarray) -> np.ndarray:
    cx, cy, side = square
    return points * (side / 2) + np.array([cx, cy], np.float32)

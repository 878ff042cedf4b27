"""Display rotation: phones store landscape sensor frames and a display matrix saying how to turn them.

We follow FFmpeg's autorotation (what players show): the display-matrix angle is counter-clockwise in
degrees, so a frame with ``rotation == 90`` is shown turned 90° counter-clockwise — ``np.rot90(frame, 1)``.
Only multiples of 90° occur in practice; mirroring in the matrix is ignored (no phone writes it).
"""

from __future__ import annotations

import av
import numpy as np


def frame_rotation(frame: av.VideoFrame) -> int:
    """Counter-clockwise display rotation of a decoded frame in degrees: 0, 90, 180 or 270."""
    angle = getattr(frame, "rotation", 0) or 0  # PyAV ≥ 13 reads the DISPLAYMATRIX side data
    return int(round(float(angle) / 90.0)) % 4 * 90


def rotated_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """``(width, height)`` as displayed after ``rotation`` degrees."""
    return (height, width) if rotation % 180 else (width, height)


def apply_rotation(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """``[h, w, 3]`` stored → ``[H, W, 3]`` upright (contiguous copy only when it turns)."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb

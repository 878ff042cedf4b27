"""Adding the tile pattern to frames: a luma offset of ±``STRENGTH`` levels, scaled by local activity.

The same offset is added to R, G and B, so luma moves by exactly that amount and chroma not at all (BT.601
Cb/Cr are differences that cancel it). Texture masks the offset (Watson-style contrast masking, kept to
its simplest form: amplitude ∝ local standard deviation, clamped), so flat skin and walls get a third of
the strength and hair, clothes and edges up to 1.5×; h264 also keeps more of the offset where there is
texture, since it spends its bits there.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatarv.provenance.pattern import TILE, Tile, rows_for_height

STRENGTH = 4.0  # luma levels (of 255) at mask 1 and bit gain 1
ACTIVITY_REF = 8.0  # local std (levels) at which the mask is 1
MASK_RANGE = (0.35, 1.5)


def luma(frames: np.ndarray) -> np.ndarray:
    """``[..., H, W, 3]`` uint8 RGB → ``[..., H, W]`` float32 BT.601 luma."""
    f = frames.astype(np.float32)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def pattern_image(tile: Tile, codeword: np.ndarray, height: int, width: int,
                  gains: np.ndarray | None = None) -> np.ndarray:
    """``[H, W]`` float32 in about [-1, 1]: the tiled cells laid on the frame, cell (i, j) covering pixels
    ``[i·c, (i+1)·c) × [j·c, (j+1)·c)`` with ``c = H / rows_for_height(H)``, edges softened by a blur of a
    quarter cell (a blocky ±3-level texture is what the eye would pick out first)."""
    rows = rows_for_height(height)
    cell = height / rows
    cols = int(np.ceil(width / cell))
    cells = tile.cells(codeword, gains)  # [32, 32]
    grid = np.tile(cells, (-(-rows // TILE), -(-cols // TILE)))[:rows, :cols]  # [rows, cols]
    iy = np.minimum(((np.arange(height) + 0.5) / cell).astype(np.int64), rows - 1)
    ix = np.minimum(((np.arange(width) + 0.5) / cell).astype(np.int64), cols - 1)
    image = grid[iy][:, ix].astype(np.float32)  # [H, W]
    if cell >= 2:
        image = cv2.GaussianBlur(image, (0, 0), cell / 4)
    return image


def activity_mask(y: np.ndarray, cell: float) -> np.ndarray:
    """``[H, W]`` luma → ``[H, W]`` amplitude factor from the local std over about two cells."""
    k = max(3, int(round(2 * cell)) | 1)
    mean = cv2.boxFilter(y, -1, (k, k))
    var = np.maximum(cv2.boxFilter(y * y, -1, (k, k)) - mean * mean, 0)
    return np.clip(np.sqrt(var) / ACTIVITY_REF, *MASK_RANGE)


def embed_luma_offset(frame: np.ndarray, pattern: np.ndarray, strength: float = STRENGTH) -> np.ndarray:
    """One ``[H, W, 3]`` uint8 frame + its ``pattern_image`` → the marked frame (uint8)."""
    y = luma(frame)
    cell = frame.shape[0] / rows_for_height(frame.shape[0])
    offset = strength * activity_mask(y, cell) * pattern  # [H, W]
    return np.clip(frame.astype(np.float32) + offset[..., None] + 0.5, 0, 255).astype(np.uint8)


def bit_gains(mean_luma: np.ndarray, mean_mask: np.ndarray, tile: Tile, codeword: np.ndarray,
              strength: float = STRENGTH, target: float = 1.5, max_gain: float = 3.0,
              min_gain: float = 0.5, rounds: int = 2) -> np.ndarray:
    """Per-bit amplitudes that cancel the host's interference (informed embedding, after Malvar & Florêncio,
    "Improved spread spectrum", IEEE TSP 2003): the pattern is static, so the detector's statistic for bit
    b is ``host_b + gain_b · signal_b`` on the video's mean luma, and both terms can be measured here.
    Each bit gets the gain that puts it ``target`` nominal signals on its side of zero, within
    ``[min_gain, max_gain]``: bits the host already favours are weakened (better PSNR), the others boosted.
    ``mean_luma``/``mean_mask`` [H, W]: the video's mean luma and mean ``activity_mask``."""
    from avatarv.provenance.detection import soft_at_origin

    height, width = mean_luma.shape
    rows = rows_for_height(height)
    signs = np.where(codeword.astype(bool), 1.0, -1.0)
    host = soft_at_origin(mean_luma, tile, rows) * signs  # [80], > 0 where the host helps
    gains = np.ones(len(codeword))
    for _ in range(rounds):
        offset = strength * mean_mask * pattern_image(tile, codeword, height, width, gains)
        total = soft_at_origin(mean_luma + offset, tile, rows) * signs
        per_unit = np.maximum((total - host) / gains, 1e-6)  # signal per unit gain
        gains = np.clip((target * per_unit - host) / per_unit, min_gain, max_gain)
    return gains

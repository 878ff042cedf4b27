"""Finding the tile in a (re-encoded, resized, cropped) video and reading its codeword.

The pattern is static, so the detector first averages luma over the frames (the pattern adds up, moving
content and codec noise average out), then searches the geometry on that one image:

1. for each frame-height-in-cells ``rows`` the embedder may have used and each crop factor ``f`` (the
   visible height is ``f`` of the original: 1 after a resize, 0.9 after a 10 % crop), resample the image
   to 2 samples per cell;
2. whiten it (subtract a one-cell blur, divide by the local RMS, clip: the host's low frequencies and
   its edges would otherwise swamp the ±4-level pattern) and fold it onto one 64×64 tile (sum modulo the
   period: a crop's offset becomes a cyclic shift);
3. circularly correlate with the pilot (FFT); the peak's height in standard deviations of the whole
   correlation surface (``z``) measures presence, its position is the crop offset.

The best ``(rows, f)`` is refined on a finer grid; its aligned cells give one soft value per codeword bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatarv.provenance.pattern import CODE_BITS, ROW_CHOICES, TILE, Tile

SAMPLES = 2  # samples per cell in the search grid (shift resolution: half a cell)
PERIOD = TILE * SAMPLES  # 64
CROP_RANGE = (0.78, 1.03)  # visible fraction of the original height the search covers
COARSE_STEP, FINE_STEP = 0.0035, 0.0007  # relative steps of the crop-factor search


@dataclass
class SyncResult:
    z: float  # pilot peak in standard deviations of the correlation surface
    rows: int  # frame height in cells the embedder used (best candidate)
    crop: float  # visible fraction of the original frame height (best candidate)
    soft: np.ndarray  # [80] float, positive = bit 1


def _fold(image: np.ndarray) -> np.ndarray:
    """``[h, w]`` → ``[64, 64]`` mean over all positions congruent modulo the period."""
    h, w = image.shape
    ph, pw = -(-h // PERIOD) * PERIOD, -(-w // PERIOD) * PERIOD
    padded = np.zeros((ph, pw), np.float64)
    padded[:h, :w] = image
    count = np.zeros((ph, pw), np.float64)
    count[:h, :w] = 1
    total = padded.reshape(ph // PERIOD, PERIOD, pw // PERIOD, PERIOD).sum((0, 2))
    n = count.reshape(ph // PERIOD, PERIOD, pw // PERIOD, PERIOD).sum((0, 2))
    return total / np.maximum(n, 1)


def _whiten(grid: np.ndarray) -> np.ndarray:
    """High-pass at one cell, divided by the local RMS over about one cell, clipped at ±1.5: close to the
    sign of the residual, so a host edge weighs no more than a flat patch (on 128-px world clips this took
    the pilot's peak from 3.7 to 7.5 σ; with a 4-cell RMS window and no clipping, edges swamped it)."""
    high = grid - cv2.GaussianBlur(grid, (0, 0), 1.0 * SAMPLES)
    rms = np.sqrt(cv2.GaussianBlur(high * high, (0, 0), 1.0 * SAMPLES)) + 1e-3
    return np.clip(high / rms, -1.5, 1.5)


def _resample(y: np.ndarray, scale: float) -> np.ndarray:
    """Resample ``y`` by ``scale`` (output px per input px) exactly (no rounding of the size), pixel
    centres mapped to pixel centres; ``y`` should already be low-passed when ``scale < 1``."""
    h, w = y.shape
    out_h, out_w = int(h * scale), int(w * scale)
    inv = 1.0 / scale
    m = np.array([[inv, 0, 0.5 * inv - 0.5], [0, inv, 0.5 * inv - 0.5]], np.float64)
    return cv2.warpAffine(y, m, (out_w, out_h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


class _Searcher:
    def __init__(self, mean_luma: np.ndarray, tile: Tile):
        self.y = mean_luma.astype(np.float32)
        self.height = mean_luma.shape[0]
        self.tile = tile
        pilot = np.kron(tile.pilot, np.ones((SAMPLES, SAMPLES)))  # [64, 64]
        self.pilot_fft = np.conj(np.fft.rfft2(pilot))
        self._blurred: dict[int, np.ndarray] = {}

    def _antialiased(self, rows: int) -> np.ndarray:
        if rows not in self._blurred:
            scale = SAMPLES * rows / self.height
            self._blurred[rows] = (cv2.GaussianBlur(self.y, (0, 0), 0.45 / scale) if scale < 1 else self.y)
        return self._blurred[rows]

    def score(self, rows: int, crop: float) -> tuple[float, np.ndarray]:
        """(z, folded aligned to the pilot) for one geometry."""
        scale = SAMPLES * rows * crop / self.height  # samples per current pixel
        folded = _fold(_whiten(_resample(self._antialiased(rows), scale)))
        corr = np.fft.irfft2(np.fft.rfft2(folded) * self.pilot_fft, s=folded.shape)  # [64, 64]
        peak = np.unravel_index(int(np.argmax(corr)), corr.shape)
        z = float((corr[peak] - corr.mean()) / (corr.std() + 1e-12))
        aligned = np.roll(folded, (-peak[0], -peak[1]), axis=(0, 1))
        return z, aligned

    def feasible(self, rows: int, crop: float) -> bool:
        # cells of at least one current pixel, and at least one whole tile in view
        cell_px = self.height / (rows * crop)
        return cell_px >= 1.0 and self.height >= TILE * cell_px


def _grid(lo: float, hi: float, step: float) -> np.ndarray:
    return np.exp(np.arange(np.log(lo), np.log(hi) + 1e-9, step))


def search(mean_luma: np.ndarray, tile: Tile) -> SyncResult:
    """Best geometry for ``mean_luma`` [H, W] (float) and its soft codeword bits."""
    s = _Searcher(mean_luma, tile)
    best = (-np.inf, ROW_CHOICES[0], 1.0)
    for rows in ROW_CHOICES:
        for crop in _grid(*CROP_RANGE, COARSE_STEP):
            if s.feasible(rows, crop):
                z, _ = s.score(rows, crop)
                if z > best[0]:
                    best = (z, rows, float(crop))
    _, rows, crop0 = best
    for crop in crop0 * _grid(1 - COARSE_STEP, 1 + COARSE_STEP, FINE_STEP):
        if s.feasible(rows, crop):
            z, _ = s.score(rows, crop)
            if z > best[0]:
                best = (z, rows, float(crop))
    z, rows, crop = best
    if not np.isfinite(z):  # too small a frame for any geometry
        return SyncResult(0.0, rows, crop, np.zeros(CODE_BITS))
    _, aligned = s.score(rows, crop)
    return SyncResult(z, rows, crop, _soft_bits(aligned, tile))


def _soft_bits(aligned: np.ndarray, tile: Tile) -> np.ndarray:
    """Folded ``[64, 64]`` aligned to the tile → ``[80]`` soft bits (chip-weighted sums over each bit's cells)."""
    cells = aligned.reshape(TILE, SAMPLES, TILE, SAMPLES).sum((1, 3))  # [32, 32]
    carried = tile.bit_of >= 0
    return np.bincount(tile.bit_of[carried], weights=(tile.chips * cells)[carried], minlength=CODE_BITS)


def soft_at_origin(mean_luma: np.ndarray, tile: Tile, rows: int) -> np.ndarray:
    """The detector's soft bits for an unattacked frame (known geometry: ``rows``, no crop, no shift); the
    embedder uses it to measure the host's interference with each bit (``embedding.bit_gains``)."""
    s = _Searcher(mean_luma, tile)
    scale = SAMPLES * rows / s.height
    folded = _fold(_whiten(_resample(s._antialiased(rows), scale)))
    return _soft_bits(folded, tile)

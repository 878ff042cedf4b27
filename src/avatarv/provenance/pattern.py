"""The watermark's spatial pattern: a key-seeded 32×32-cell tile repeated over the frame.

Geometry is defined relative to the frame *height*: a frame is ``rows`` cells tall (``rows_for_height``),
so a uniform resize leaves the pattern where it was in cell coordinates, and the tile's periodicity turns
a crop into a cyclic shift of the tile that the detector finds by circular correlation with the pilot
(the self-synchronising periodic watermark of Kutter, "Watermarking resisting to translation, rotation
and scaling", SPIE 1998; here the scale is found by search, not by autocorrelation).

Each of the 1024 cells of a tile belongs to the pilot (known ±1 chips: sync and presence) or to one of
the 80 codeword bits (``CELLS_PER_BIT`` cells each, key-random positions, key-random chip signs).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from avatarv.provenance.payload import CODE_BITS

TILE = 32  # cells per tile side
CELLS_PER_BIT = 9  # 80 bits × 9 = 720 cells; the other 304 are the pilot
ROW_CHOICES = (128, 64, 32)  # cells per frame height; the detector tries each
DEFAULT_KEY = b"avatarv-watermark-v1"


def rows_for_height(height: int) -> int:
    """Cells per frame height: cells of ≥ 3.75 px where the frame allows (480 px → 128 rows of 3.75 px;
    256 → 64 rows of 4 px; 128 → 32 rows of 4 px; below that the cells shrink: 64 px → 2 px). Larger
    cells (8 px at 512) measured worse: more host interference at low frequencies, fewer tiles to fold."""
    if height >= 384:
        return 128
    return 64 if height >= 192 else 32


@dataclass(frozen=True)
class Tile:
    """One key's tile: ``pilot`` [32, 32] ±1 on pilot cells, 0 elsewhere; ``chips`` [32, 32] ±1 on all
    cells; ``bit_of`` [32, 32] int, the codeword bit a cell carries (-1: pilot)."""

    pilot: np.ndarray
    chips: np.ndarray
    bit_of: np.ndarray

    def cells(self, codeword: np.ndarray, gains: np.ndarray | None = None) -> np.ndarray:
        """``codeword`` [80] bits (and per-bit ``gains`` [80], default 1) → [32, 32] float cell values:
        the pilot's chips, and ±gain·chip on the cells of each bit."""
        signs = np.where(codeword.astype(bool), 1.0, -1.0)
        if gains is not None:
            signs = signs * gains
        carried = np.where(self.bit_of >= 0, signs[np.maximum(self.bit_of, 0)], 1.0)
        return self.chips * carried


@lru_cache(maxsize=8)
def make_tile(key: bytes | None = None) -> Tile:
    seed = int.from_bytes(hashlib.sha256(key or DEFAULT_KEY).digest()[:8], "big")
    rng = np.random.default_rng(seed)
    chips = rng.choice([-1.0, 1.0], size=(TILE, TILE))
    order = rng.permutation(TILE * TILE)
    bit_of = np.full(TILE * TILE, -1, np.int64)
    n_bit_cells = CODE_BITS * CELLS_PER_BIT
    bit_of[order[:n_bit_cells]] = np.arange(n_bit_cells) % CODE_BITS
    bit_of = bit_of.reshape(TILE, TILE)
    pilot = np.where(bit_of < 0, chips, 0.0)
    return Tile(pilot=pilot, chips=chips, bit_of=bit_of)

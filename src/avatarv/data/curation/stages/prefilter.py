"""Temporal prefilter (seed: frame difference + perceptual hash): static and choppy stretches.

Per frame ``t`` (64 px grey): ``rel_diff[t] = mean|I_t - I_{t-1}| / (std(I_t) + 1)`` (divided by contrast so a
dark scene's small differences are not mistaken for stillness) and the 64-bit pHash (imagehash). A frame
*repeats* its predecessor when ``rel_diff < repeat_thresh`` and the pHashes are equal. Over a sliding
window of ``window`` frames:

- static: at least ``static_frac`` of the frames repeat (a frozen picture);
- choppy: between ``choppy_min`` and ``static_frac`` of the frames repeat (frames held 2-4 times, or dropped
  frames replaced by their predecessor: the low effective frame rate the seed filters out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import close_gaps, grey_small, load_video, runs


def phash64(grey: np.ndarray) -> int:
    """pHash of one grey frame (imagehash's algorithm: 32x32 DCT, top-left 8x8 vs median) as an int."""
    import imagehash
    from PIL import Image

    h = imagehash.phash(Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)))
    return int(str(h), 16)


def frame_statistics(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``rel_diff`` [T] (0 for frame 0), ``phash`` [T] uint64, mean luma [T]."""
    grey = grey_small(frames)
    diff = np.zeros(len(grey), np.float32)
    if len(grey) > 1:
        diff[1:] = np.abs(np.diff(grey, axis=0)).mean((1, 2)) / (grey[1:].std((1, 2)) + 1.0)
    hashes = np.array([phash64(g) for g in grey], np.uint64)
    return diff, hashes, grey.mean((1, 2))


def window_fraction(mask: np.ndarray, window: int) -> np.ndarray:
    """Centred moving fraction of True in ``mask``."""
    k = np.ones(window) / window
    return np.convolve(mask.astype(np.float64), k, mode="same")


class Prefilter(Stage):
    name = "prefilter"
    inputs = ("normalise",)
    outputs = ("rel_diff.npy", "phash.npy", "luma.npy")
    resources = Resources(cpu=1.0, memory_mb=1024)

    @dataclass(frozen=True)
    class Config:
        repeat_thresh: float = 0.004
        window: int = 13
        static_frac: float = 0.85
        choppy_min: float = 0.3

    def process(self, item: Item) -> Output:
        video = load_video(item)
        diff, hashes, luma = frame_statistics(video.frames)
        same_hash = np.zeros(len(diff), bool)
        same_hash[1:] = hashes[1:] == hashes[:-1]
        repeat = (diff < self.config.repeat_thresh) & same_hash
        repeat[0] = False
        frac = window_fraction(repeat, self.config.window)
        static = close_gaps(frac >= self.config.static_frac, self.config.window)
        choppy = (frac >= self.config.choppy_min) & ~static
        return Output(
            values={"frames": int(len(diff)), "static": runs(static, 3), "choppy": runs(choppy, 3),
                    "repeat_fraction": float(repeat.mean()), "static_fraction": float(static.mean()),
                    "choppy_fraction": float(choppy.mean())},
            arrays={"rel_diff": diff, "phash": hashes, "luma": luma.astype(np.float32),
                    "static": static, "choppy": choppy})

"""Temporal prefilter (seed: frame difference + perceptual hash): static and choppy stretches.

Per frame ``t`` (64 px grey): ``rel_diff[t] = mean|I_t - I_{t-1}| / (std(I_t) + 1)`` (divided by contrast so a
dark scene's small differences are not mistaken for stillness) and the 64-bit pHash (imagehash). With
``high[t]`` the 85th percentile of ``rel_diff`` over a centred window of ``2 * window`` frames (with frames held
4 times only a quarter of them move):

- static: ``rel_diff < static_max`` for at least ``static_run`` frames in a row (a re-encoded frozen frame
  still differs by <= 2e-4; a calm real speaker on a locked camera by 3e-4 to 6e-3 at 256 px);
- repeat: ``rel_diff[t] < repeat_rel * high[t]`` and ``< repeat_abs`` while the window moves (``high >= moving_min``): a held
  frame between moving ones (h264 leaves held frames a few 1e-3 apart, moving talking frames 2e-2 and up);
- choppy: at least ``choppy_min`` of the window's frames repeat (frames held 2-4 times: the low effective frame
  rate the seed filters out). Isolated dropped frames (a repeat every ~6 frames) stay below it.
The pHash of each frame is stored for the near-duplicate stage and for inspection.
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


def _mask_runs(mask: np.ndarray, min_len: int, n: int) -> np.ndarray:
    out = np.zeros(n, bool)
    for a, b in runs(mask, min_len):
        out[max(a - 1, 0) : b] = True  # frame a - 1 is the first frame of the frozen picture
    return out


def window_fraction(mask: np.ndarray, window: int) -> np.ndarray:
    """Centred moving fraction of True in ``mask``."""
    k = np.ones(window) / window
    return np.convolve(mask.astype(np.float64), k, mode="same")


class Prefilter(Stage):
    name = "prefilter"
    version = "3"
    inputs = ("normalise",)
    outputs = ("rel_diff.npy", "phash.npy", "luma.npy")
    resources = Resources(cpu=1.0, memory_mb=1024)

    @dataclass(frozen=True)
    class Config:
        window: int = 13
        static_max: float = 0.0004  # a calm real speaker on a locked-off camera: 3e-4 to 6e-3
        static_run: int = 6
        moving_min: float = 0.012
        repeat_rel: float = 0.25
        repeat_abs: float = 0.008
        choppy_min: float = 0.3

    def process(self, item: Item) -> Output:
        video = load_video(item)
        diff, hashes, luma = frame_statistics(video.frames)
        c = self.config
        w2 = 2 * c.window
        pad = np.pad(diff, w2 // 2, mode="edge")
        high = np.array([np.percentile(pad[t : t + w2], 85) for t in range(len(diff))], np.float32)
        still = diff < c.static_max
        still[0] = still[1] if len(still) > 1 else False
        static = _mask_runs(still, c.static_run, len(diff))
        repeat = (diff < c.repeat_rel * high) & (diff < c.repeat_abs) & (high >= c.moving_min)
        repeat[0] = False
        frac = window_fraction(repeat, c.window)
        choppy = close_gaps((frac >= c.choppy_min) & ~static, 3)
        return Output(
            values={"frames": int(len(diff)), "static": runs(static, 3), "choppy": runs(choppy, 3),
                    "repeat_fraction": float(repeat.mean()), "static_fraction": float(static.mean()),
                    "choppy_fraction": float(choppy.mean())},
            arrays={"rel_diff": diff, "phash": hashes, "luma": luma.astype(np.float32),
                    "static": static, "choppy": choppy})

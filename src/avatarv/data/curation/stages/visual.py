"""Per-frame picture statistics in one pass: exposure, sharpness, camera shake, optical-flow motion.

Per frame (grey, 128 px): mean luma; the mean squared Laplacian of each tile of a 4 x 4 grid over the
variance of the picture (``tile_energy``: contrast-free, so an under-exposed frame is not called blurred) and
its median over the tiles as the frame's sharpness (a burned-in caption's strokes carry most of a frame's
Laplacian energy, 5x on world footage, but cover at most a band of tiles); global translation to the previous
frame by phase correlation; and OpenCV DIS optical flow (ultrafast preset) magnitudes (seed: "optical flow
motion statistics"). Flags are relative to the frame's shot (from ``scenes``) because an absolute threshold
confuses a dim room with an under-exposed shot:

- dark:  luma < ``dark_rel`` x the shot's 90th-percentile luma, or luma < ``dark_abs``;
- blur: tile by tile against the shot: each tile's energy over its own ``blur_ref_pct``-th percentile in the
  shot (the 75th: the reference stays right when up to a quarter of the shot is something else), the median
  of that ratio over the shot's more textured half of the tiles below ``blur_rel``. Per-tile references keep
  a caption's tiles from setting the scale of the others; the textured half keeps a flat background, whose
  energy is codec noise that blur hardly changes, from outvoting the face (one whole-frame median missed
  the blur of a face in front of a plain wall on world seed 1: recall 0.77). A shot blurred for more than
  three quarters of its length is not judged;
- quality: BRISQUE (Mittal et al. 2012; the ``brisque`` package's SVM, lower is better) on one frame per
  ``brisque_every`` (one a second), the frame area-resized so its longer side is ``brisque_side``. The five real
  clips score 17-45 at 256 px and 55-65 blurred (sigma 1.5 at 128 px); ``quality_brisque`` is their median.
  It replaces the eval suite's classical index as the picture-quality number of the data engine;
- shake: high-frequency camera motion: |shift - median_5(shift)| > ``shake_px`` (px at 128) or the flow's
  rotation/zoom residual is large, sustained over ``shake_window`` frames (a pan or a walking subject is smooth,
  shake is not).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import close_gaps, load_video, runs, shots_of

SIDE = 128
TILES = 4  # sharpness tiles per side


def tile_energy(grey: np.ndarray) -> np.ndarray:
    """[SIDE, SIDE] uint8 -> [TILES * TILES] mean(Laplacian^2) per tile, over the frame's variance."""
    import cv2

    lap = cv2.Laplacian(grey, cv2.CV_32F)
    s = SIDE // TILES
    energy = (lap * lap).reshape(TILES, s, TILES, s).mean(axis=(1, 3)).ravel()
    return (energy / (grey.astype(np.float32).var() + 1.0)).astype(np.float32)


def tile_sharpness(grey: np.ndarray) -> float:
    """[SIDE, SIDE] uint8 -> the median of ``tile_energy`` (a caption-robust sharpness of one frame)."""
    return float(np.median(tile_energy(grey)))


def shot_blur(energy: np.ndarray, rel: float, ref_pct: float) -> np.ndarray:
    """``energy`` [T, tiles] of one shot -> [T] bool blurred (module docstring: per-tile references, the
    median ratio over the more textured half of the tiles)."""
    ref = np.percentile(energy, ref_pct, axis=0) + 1e-9  # [tiles]
    textured = np.argsort(ref)[len(ref) // 2 :]
    return np.median(energy[:, textured] / ref[textured], axis=1) < rel


@lru_cache(maxsize=1)
def brisque_model():
    """The ``brisque`` package's BRISQUE with the numpy 2 fix: its ``scale_features`` turns each feature into a
    Python float, and under numpy 2 some features are 1-element arrays (``float()`` of those fails), so the
    features are flattened first (same numbers, same SVM)."""
    from brisque import BRISQUE

    class _Brisque(BRISQUE):
        def scale_features(self, features):
            flat = np.concatenate([np.ravel(np.asarray(f, dtype=np.float64)) for f in features])
            lo = np.array([float(v) for v in self.scale_params["min_"]])
            hi = np.array([float(v) for v in self.scale_params["max_"]])
            return -1 + 2.0 / (hi - lo) * (flat - lo)

    return _Brisque(url=False)


def brisque_score(frame: np.ndarray, side: int = 256) -> float:
    """BRISQUE of one RGB uint8 frame, area-resized to a longer side of ``side`` px (lower is better); NaN for a
    frame without texture (a black fade frame, a flat screen: BRISQUE's statistics divide by zero there)."""
    import warnings

    import cv2

    h, w = frame.shape[:2]
    s = side / max(h, w)
    img = cv2.resize(frame, (max(int(round(w * s)), 8), max(int(round(h * s)), 8)), interpolation=cv2.INTER_AREA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            score = float(brisque_model().score(img))
        except (ValueError, ZeroDivisionError):
            return float("nan")
    return score if np.isfinite(score) else float("nan")


def _median_filter(x: np.ndarray, k: int) -> np.ndarray:
    pad = np.pad(x, ((k // 2, k // 2),) + ((0, 0),) * (x.ndim - 1), mode="edge")
    return np.stack([np.median(pad[t : t + k], axis=0) for t in range(len(x))])


def frame_measures(frames: np.ndarray) -> dict[str, np.ndarray]:
    import cv2

    n = len(frames)
    luma = np.zeros(n, np.float32)
    energy = np.zeros((n, TILES * TILES), np.float32)
    shift = np.zeros((n, 2), np.float32)
    flow_mag = np.zeros(n, np.float32)
    flow_resid = np.zeros(n, np.float32)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    prev = None
    win = cv2.createHanningWindow((SIDE, SIDE), cv2.CV_32F)
    for t, f in enumerate(frames):
        g = cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (SIDE, SIDE), interpolation=cv2.INTER_AREA)
        luma[t] = g.mean()
        energy[t] = tile_energy(g)
        if prev is not None:
            (dx, dy), _ = cv2.phaseCorrelate(prev.astype(np.float32), g.astype(np.float32), win)
            shift[t] = (dx, dy)
            flow = dis.calc(prev, g, None)
            mag = np.linalg.norm(flow, axis=-1)
            flow_mag[t] = mag.mean()
            # the part of the flow a global translation does not explain (rotation, zoom, shake)
            flow_resid[t] = np.linalg.norm(flow - np.median(flow.reshape(-1, 2), axis=0), axis=-1).mean()
        prev = g
    sharp = np.median(energy, axis=1).astype(np.float32)  # tile_sharpness of every frame
    return {"luma": luma, "sharpness": sharp, "tile_energy": energy, "shift": shift, "flow_mag": flow_mag,
            "flow_resid": flow_resid}


class Visual(Stage):
    name = "visual"
    version = "5"
    inputs = ("normalise", "scenes")
    resources = Resources(cpu=1.0, memory_mb=1024)

    @dataclass(frozen=True)
    class Config:
        dark_rel: float = 0.5
        dark_abs: float = 20.0
        blur_rel: float = 0.25
        blur_ref_pct: float = 75.0
        shake_px: float = 1.5
        shake_window: int = 7
        shake_frac: float = 0.5
        brisque_every: int = 25
        brisque_side: int = 256

    def process(self, item: Item) -> Output:
        c = self.config
        video = load_video(item)
        m = frame_measures(video.frames)
        n = video.num_frames
        dark = m["luma"] < c.dark_abs
        blur = np.zeros(n, bool)
        jitter = np.linalg.norm(m["shift"] - _median_filter(m["shift"], 5), axis=-1)
        for a, b in shots_of(item, n):
            ref_l = np.percentile(m["luma"][a:b], 90)
            dark[a:b] |= m["luma"][a:b] < c.dark_rel * ref_l
            blur[a:b] = shot_blur(m["tile_energy"][a:b], c.blur_rel, c.blur_ref_pct)
            jitter[a] = 0.0  # no motion across a boundary
        k = np.ones(c.shake_window) / c.shake_window
        shaky = np.convolve((jitter > c.shake_px).astype(float), k, mode="same") >= c.shake_frac
        shaky = close_gaps(shaky, c.shake_window)
        q_idx = np.arange(0, n, max(c.brisque_every, 1))
        quality = np.array([brisque_score(video.frames[t], c.brisque_side) for t in q_idx], np.float32)
        return Output(
            values={"frames": n, "dark": runs(dark, 3), "blur": runs(blur, 3), "shake": runs(shaky, 3),
                    "luma_mean": float(m["luma"].mean()), "sharpness_median": float(np.median(m["sharpness"])),
                    "motion_mean": float(m["flow_mag"].mean()), "motion_p90": float(np.percentile(m["flow_mag"], 90)),
                    "shake_fraction": float(shaky.mean()),
                    "quality_brisque": float(np.nanmedian(quality)) if np.isfinite(quality).any() else None,
                    "quality_backend": "brisque"},
            arrays={**m, "jitter": jitter.astype(np.float32), "dark": dark, "blur": blur, "shake": shaky,
                    "brisque": quality, "brisque_frames": q_idx})

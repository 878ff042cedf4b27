"""Scene cuts (seed: PySceneDetect): candidates from ContentDetector (HSV content change: hard cuts),
ThresholdDetector (brightness crossing a floor: fades through black) and a gradual-change scan (hue-saturation
histogram distance between frames ``t - span`` and ``t + span``: dissolves, which neither detector sees). A
candidate becomes a shot boundary only if the picture really changes:

- the hue-saturation histograms of the ``span`` frames before and after differ (Bhattacharyya > ``hist_min``):
  rejects camera shake, where pixels move but the colours stay;
- the frames still differ after the best global gain (``mean|g·a - b| / mean(b) > gain_residual_min``):
  rejects a sudden exposure change (the same picture, darker), which ContentDetector reports as a cut.
  On 6 x 60 s of world footage the exposure changes ContentDetector fired on left at most 0.11 and the true
  hard cuts at least 0.20 (a dark shot cut to a bright one of similar layout), so the floor sits between.

The shots between boundaries are what later stages (blur/dark baselines, clipping, identity graph) work in."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import FPS, load_video


def detect_transitions(frames: np.ndarray, content_threshold: float, fade_threshold: float,
                       min_scene_len: int) -> tuple[list[int], list[int]]:
    """Frame indices where a new shot starts: (hard cuts, fade boundaries)."""
    from scenedetect.common import FrameTimecode
    from scenedetect.detectors import ContentDetector, ThresholdDetector

    content = ContentDetector(threshold=content_threshold, min_scene_len=min_scene_len)
    fade = ThresholdDetector(threshold=fade_threshold, min_scene_len=min_scene_len, fade_bias=0.0)
    cuts, fades = [], []
    for t, rgb in enumerate(frames):
        tc = FrameTimecode(t, FPS)
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        cuts += [c.frame_num for c in content.process_frame(tc, bgr)]
        fades += [c.frame_num for c in fade.process_frame(tc, bgr)]
    end = FrameTimecode(len(frames), FPS)
    fades += [c.frame_num for c in fade.post_process(end)] if hasattr(fade, "post_process") else []
    return sorted(set(cuts)), sorted(set(fades))


def _hs_hist(rgb: np.ndarray) -> np.ndarray:
    import cv2

    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    h = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256]).astype(np.float32)
    return h / (h.sum() + 1e-6)


def _bhatta(a: np.ndarray, b: np.ndarray) -> float:
    import cv2

    return float(cv2.compareHist(a.astype(np.float32), b.astype(np.float32), cv2.HISTCMP_BHATTACHARYYA))


def _gain_residual(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float32), b.astype(np.float32)
    g = (a * b).sum() / max((a * a).sum(), 1e-6)
    return float(np.abs(g * a - b).mean() / max(b.mean(), 1.0))


class Scenes(Stage):
    name = "scenes"
    inputs = ("normalise",)
    resources = Resources(cpu=1.0, memory_mb=1024)

    @dataclass(frozen=True)
    class Config:
        content_threshold: float = 27.0
        fade_threshold: float = 12.0
        min_scene_len: int = 12  # frames
        merge_within: int = 6  # a cut within this many frames of another transition is the same one
        span: int = 9  # frames either side for the gradual scan and the checks
        gradual_min: float = 0.5  # histogram distance t - span vs t + span that makes a gradual candidate
        hist_min: float = 0.3
        gain_residual_min: float = 0.15

    def process(self, item: Item) -> Output:
        video = load_video(item)
        n = video.num_frames
        c = self.config
        cuts, fades = detect_transitions(video.frames, c.content_threshold, c.fade_threshold, c.min_scene_len)
        from avatarv.data.curation.stages.common import grey_small

        hists = np.stack([_hs_hist(f) for f in video.frames])
        grey = grey_small(video.frames, 32)
        span = c.span
        far = np.zeros(n)
        for t in range(span, n - span):
            far[t] = _bhatta(hists[t - span], hists[t + span])
        gradual = [t for t in range(1, n - 1) if far[t] > c.gradual_min and far[t] >= far[t - 1] and far[t] > far[t + 1]]

        def real_change(t: int, hard: bool) -> bool:
            lo, hi = max(t - span, 0), min(t + span, n)
            if _bhatta(hists[lo:t].mean(0), hists[t:hi].mean(0)) < c.hist_min:
                return False
            a, b = (t - 1, t) if hard else (lo, hi - 1)
            return _gain_residual(grey[a], grey[b]) > c.gain_residual_min

        cands = [(b, True) for b in cuts] + [(b, False) for b in fades + gradual]
        bounds: list[int] = []
        # hard cuts first (exact frame), then gradual ones strongest first, each away from accepted boundaries
        for b in cuts:
            if 0 < b < n and all(abs(b - o) > c.merge_within for o in bounds) and real_change(b, True):
                bounds.append(int(b))
        for b in sorted(set(fades + gradual), key=lambda t: -far[min(max(t, 0), n - 1)]):
            if 0 < b < n and all(abs(b - o) > 2 * span for o in bounds) and real_change(b, False):
                bounds.append(int(b))
        bounds.sort()
        edges = [0, *bounds, n]
        shots = [[a, b] for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
        return Output(values={"frames": n, "candidates": sorted(int(b) for b, _ in cands), "transitions": bounds,
                              "shots": shots})

"""Per-clip avatar signals, quality score and quality tier (seed: avatar signals -> tiers by rules).

For every clip from ``clips``: the eval suite's classical no-reference quality (``ClassicalNRQuality``,
1..5) at 2 fps, and the avatar signals aggregated from the frame-level stages: mouth openness mean/std
(expressiveness), blink rate, teeth visibility, face clarity, head yaw/pitch, lighting (face luma, left/right
imbalance), camera motion and shake, lip-sync correlation and lag. Gaze and hands stay ``unavailable`` (see
``faces.py``).

Tier rules (first that holds; thresholds in ``Config``):

    A  quality >= a_quality, sync corr >= a_sync, |yaw| <= a_yaw, clarity >= a_clarity, duration >= a_seconds
    B  quality >= b_quality, sync corr >= b_sync
    C  everything else that survived clipping
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import FPS, load_video


def _nanmean(x) -> float | None:
    x = np.asarray(x, np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else None


class Tiers(Stage):
    name = "tiers"
    inputs = ("normalise", "clips", "faces", "visual", "lipsync")
    resources = Resources(cpu=1.0, memory_mb=1024)

    @dataclass(frozen=True)
    class Config:
        a_quality: float = 2.8
        a_sync: float = 0.5
        a_yaw: float = 20.0
        a_clarity: float = 0.3
        a_seconds: float = 4.0
        b_quality: float = 2.2
        b_sync: float = 0.3

    def tier(self, s: dict) -> str:
        c = self.config
        sync = s["sync_corr"] if s["sync_corr"] is not None else -1.0
        if (s["quality"] >= c.a_quality and sync >= c.a_sync and (s["yaw_abs"] or 0) <= c.a_yaw
                and (s["clarity"] or 0) >= c.a_clarity and s["seconds"] >= c.a_seconds):
            return "A"
        if s["quality"] >= c.b_quality and sync >= c.b_sync:
            return "B"
        return "C"

    def process(self, item: Item) -> Output:
        from avatarv.eval.quality import ClassicalNRQuality

        up = item.upstream
        clips = up["clips"].values["clips"]
        if not clips:
            return Output(values={"clips": [], "tiers": {}})
        video = load_video(item)
        scorer = ClassicalNRQuality()
        f = {k: up["faces"].array(k) for k in ("mouth_open", "ear", "teeth", "clarity", "face_luma",
                                                "light_imbalance", "pose")}
        flow, shake = up["visual"].array("flow_mag"), up["visual"].array("shake")
        lip = up["lipsync"]
        corr = lip.array("corr") if lip.ok else None
        lag = lip.array("lag") if lip.ok else None
        out = []
        for a, b in clips:
            idx = np.arange(a, b, int(FPS // 2))
            ear = f["ear"][a:b]
            blinks = int(np.sum(np.diff((np.nan_to_num(ear, nan=1.0) < 0.2).astype(int)) == 1))
            s = {
                "clip": [a, b], "seconds": (b - a) / FPS,
                "quality": float(np.mean(scorer.score_frames(video.frames[idx]))),
                "mouth_open_mean": _nanmean(f["mouth_open"][a:b]),
                "mouth_open_std": float(np.nanstd(f["mouth_open"][a:b])) if np.isfinite(f["mouth_open"][a:b]).any() else None,
                "blink_rate_hz": blinks / ((b - a) / FPS), "teeth": _nanmean(f["teeth"][a:b]),
                "clarity": _nanmean(f["clarity"][a:b]), "face_luma": _nanmean(f["face_luma"][a:b]),
                "light_imbalance": _nanmean(f["light_imbalance"][a:b]),
                "yaw_abs": _nanmean(np.abs(f["pose"][a:b, 0])), "pitch_abs": _nanmean(np.abs(f["pose"][a:b, 1])),
                "motion": float(flow[a:b].mean()), "shake_fraction": float(shake[a:b].mean()),
                "sync_corr": _nanmean(corr[a:b]) if corr is not None else None,
                "sync_lag": _nanmean(lag[a:b]) if lag is not None else None,
                "gaze": None, "hands": None,  # unavailable: see faces.py
            }
            s["tier"] = self.tier(s)
            out.append(s)
        counts = {t: sum(1 for s in out if s["tier"] == t) for t in "ABC"}
        return Output(values={"clips": out, "tiers": counts})

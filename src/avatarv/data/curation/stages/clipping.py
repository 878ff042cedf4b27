"""Smart clipping (seed: clips chosen by duration, quality, motion and face presence) as an exact optimisation.

Per frame ``t`` the stage builds a usability mask and a score from the upstream signals::

    usable[t] = one face of at least the eligible size (faces.eligible)
                and not dark / blurred / shaking (visual) and not static / choppy (prefilter)
                and not out of sync (lipsync) and no burned-in text (ocr)          [each when that stage ran]
    score[t]  = w_q * q[t] + w_m * m[t] + w_f * f[t]
        q: sharpness over its shot's 90th percentile, clipped to [0, 1]          (picture quality)
        m: min(flow_mag / motion_target, 1)                                      (a moving, talking subject)
        f: face height / frame height over ``face_target``, clipped to [0, 1]   (face presence and size)

Choose disjoint clips C = {[a_i, b_i)} maximising

    sum_i ( sum_{t in [a_i, b_i)} score[t]  -  clip_cost )

subject to: each clip lies inside one shot (no cut inside a clip) and inside a usable run;
``min_len <= b_i - a_i <= max_len`` frames. ``clip_cost`` makes one long clip better than several short ones.
Solved exactly by dynamic programming over frame positions on a grid of ``step`` frames:
``best[t] = max(best[t - step], max_L best[t - L] + S(t - L, t) - clip_cost)`` with prefix sums for S,
O(T * (max_len - min_len) / step^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import runs, shots_of


def choose_clips(score: np.ndarray, usable: np.ndarray, shots: list[list[int]], min_len: int, max_len: int,
                 step: int, clip_cost: float) -> list[list[int]]:
    """The optimal clip set (see the module docstring) as [start, end) frame intervals."""
    clips: list[list[int]] = []
    for s0, s1 in shots:
        for a0, b0 in runs(usable[s0:s1], min_len):
            a0, b0 = a0 + s0, b0 + s0
            n = b0 - a0
            prefix = np.concatenate([[0.0], np.cumsum(score[a0:b0])])
            grid = list(range(0, n + 1, step))
            if grid[-1] != n:
                grid.append(n)
            best = {0: 0.0}
            back: dict[int, int | None] = {0: None}
            for t in grid[1:]:
                cand, arg = best[grid[grid.index(t) - 1]], None  # no clip ends at t
                for s in grid:
                    if s >= t:
                        break
                    if s in best and min_len <= t - s <= max_len:
                        v = best[s] + prefix[t] - prefix[s] - clip_cost
                        if v > cand:
                            cand, arg = v, s
                best[t], back[t] = cand, arg
            t, out = n, []
            while t > 0:
                s = back[t]
                if s is None:
                    t = grid[grid.index(t) - 1]
                else:
                    out.append([a0 + s, a0 + t])
                    t = s
            clips += sorted(out)
    return sorted(clips)


class SmartClipping(Stage):
    name = "clips"
    inputs = ("scenes", "visual", "faces", "prefilter", "lipsync", "ocr")  # the last two may be left out
    resources = Resources(cpu=1.0, memory_mb=512)

    @dataclass(frozen=True)
    class Config:
        min_len: int = 50  # frames (2 s)
        max_len: int = 250  # frames (10 s)
        step: int = 5
        clip_cost: float = 5.0
        w_quality: float = 1.0
        w_motion: float = 0.5
        w_face: float = 0.5
        motion_target: float = 0.5  # px/frame at 128 px
        face_target: float = 0.3

    def process(self, item: Item) -> Output:
        c = self.config
        up = item.upstream
        faces, visual, pre = up["faces"], up["visual"], up["prefilter"]
        n = int(faces.values["frames"])
        usable = np.zeros(n, bool)
        for a, b in faces.values["eligible"]:
            usable[a:b] = True
        for art, keys in ((visual, ("dark", "blur", "shake")), (pre, ("static", "choppy")),
                          (up.get("lipsync"), ("desync",)), (up.get("ocr"), ("text",))):
            if art is None or not art.ok:
                continue
            for k in keys:
                for a, b in art.values.get(k, []):
                    usable[a:b] = False
        shots = shots_of(item, n)
        sharp = visual.array("sharpness")
        q = np.zeros(n, np.float32)
        for a, b in shots:
            q[a:b] = np.clip(sharp[a:b] / (np.percentile(sharp[a:b], 90) + 1e-6), 0, 1)
        m = np.clip(visual.array("flow_mag") / c.motion_target, 0, 1)
        box = faces.array("box")
        face_h = np.nan_to_num((box[:, 3] - box[:, 1]) / float(faces.values["height"]))
        f = np.clip(face_h / c.face_target, 0, 1)
        score = c.w_quality * q + c.w_motion * m + c.w_face * f
        clips = choose_clips(score, usable, shots, c.min_len, c.max_len, c.step, c.clip_cost)
        shot_of = [next(k for k, (a, b) in enumerate(shots) if a <= s < b) for s, _ in clips]
        return Output(values={"frames": n, "clips": clips, "clip_shot": shot_of,
                              "clip_scores": [float(score[a:b].mean()) for a, b in clips],
                              "usable_fraction": float(usable.mean()),
                              "clipped_fraction": float(sum(b - a for a, b in clips) / max(n, 1))},
                      arrays={"usable": usable, "score": score.astype(np.float32)})

"""Cross-scene pair sampling (seed: "the identity graph supports sampling of cross-scene reference pairs
organised by resolution, duration and demographic balance").

Input: the clips of the identity graph (``ClipInfo``: person, scene, the crop resolution and length the clip
really has, its measured categories) and the graph's same-person / different-scene pairs. ``sample_pairs``
returns ordered (target, reference) pairs:

1. **matching** (``eligible``): same person, different scene, target and reference in the same resolution
   bucket and the same duration bucket (``PairRules``), so a pair never teaches the model to turn a 90 px
   reference into a 512 px target, or a 2 s reference into a 12 s target; every pair is tried both ways;
2. **balance**: greedy, most-under-represented first: each step takes the eligible pair whose target's labels
   have been taken least so far (the sum, over the balance dimensions, of how often the target's label in
   that dimension was already taken); among equals, the target whose labels are rarest among the
   candidates (sum of 1 / supply), which serves the most deficits at once; then a seeded shuffle. The dimensions are the measured
   categories (``{"categories": {dim: label}}`` of a ``categories`` stage) plus ``identity``, so no person
   and no category value dominates; without categories, ``identity`` and ``scene``. With a budget
   (``max_pairs``) the counts per label come out as even as the candidates allow (an exact split in one
   dimension; the unit test checks both). There is no demographic classifier here: demographic balance is
   whatever the categories measure (nothing is inferred about protected attributes);
3. ``per_target``: at most this many references per target clip.

Pure and deterministic: the same inputs and seed give the same list. O(pairs^2) in the greedy step: fine
for a graph's tens of thousands of pairs per bucket; a bigger graph is sampled per bucket.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ClipInfo:
    person: int
    scene: int
    resolution: int  # px: the side of the square face crop the clip really has (before resizing)
    frames: int  # clip length at ``fps``
    categories: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PairRules:
    resolution_buckets: tuple[int, ...] = (0, 96, 192, 384, 768)  # lower bounds (px) of the crop side
    duration_buckets_s: tuple[float, ...] = (0.0, 2.0, 4.0, 8.0, 16.0)  # lower bounds (s)
    fps: float = 25.0
    per_target: int = 2  # references per target clip at most
    max_pairs: int = 0  # 0: every eligible pair (in balanced order)
    seed: int = 0


def bucket(value: float, bounds: tuple[float, ...]) -> int:
    """Index of the last lower bound ``<= value`` (0 below the first)."""
    return max(int(np.searchsorted(np.asarray(bounds, float), value, side="right")) - 1, 0)


def buckets(clip: ClipInfo, rules: PairRules) -> tuple[int, int]:
    return bucket(clip.resolution, rules.resolution_buckets), bucket(clip.frames / rules.fps, rules.duration_buckets_s)


def eligible(target: ClipInfo, ref: ClipInfo, rules: PairRules) -> bool:
    return (target.person == ref.person and target.scene != ref.scene
            and buckets(target, rules) == buckets(ref, rules))


def balance_labels(clip: ClipInfo) -> dict[str, str]:
    """The labels a clip is balanced on (module docstring, step 2)."""
    if clip.categories:
        return {**{f"category:{k}": str(v) for k, v in clip.categories.items()}, "identity": str(clip.person)}
    return {"identity": str(clip.person), "scene": str(clip.scene)}


def sample_pairs(clips: list[ClipInfo], graph_pairs: list[tuple[int, int]], rules: PairRules = PairRules()
                 ) -> list[tuple[int, int]]:
    """Ordered (target, reference) clip indices (module docstring)."""
    cand = sorted({(t, r) for a, b in graph_pairs for t, r in ((a, b), (b, a))
                   if eligible(clips[t], clips[r], rules)})
    order = np.random.default_rng(rules.seed).permutation(len(cand))
    cand = [cand[i] for i in order]
    labels = {t: balance_labels(clips[t]) for t in {t for t, _ in cand}}
    supply = Counter(lv for t in labels for lv in labels[t].items())  # target clips carrying each label
    rarity = {t: sum(1.0 / supply[lv] for lv in labels[t].items()) for t in labels}
    taken: Counter = Counter()  # (dimension, label) -> times taken
    per_target: Counter = Counter()
    out: list[tuple[int, int]] = []
    while cand and (not rules.max_pairs or len(out) < rules.max_pairs):
        # least taken first; among equals, the target with the rarest labels (it serves the most deficits);
        # then the seeded shuffle
        k = min(range(len(cand)), key=lambda i: (sum(taken[lv] for lv in labels[cand[i][0]].items()),
                                                 -rarity[cand[i][0]], i))
        t, r = cand.pop(k)
        out.append((t, r))
        taken.update(labels[t].items())
        per_target[t] += 1
        if per_target[t] >= rules.per_target:
            cand = [p for p in cand if p[0] != t]
    return out

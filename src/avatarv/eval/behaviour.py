"""Behaviour similarity on the world: does a video move like the reference identity?

Signals are *predicted* from pixels by the world analyzer (``avatarv.world.analyzer``: pose, mouth, blink,
smile per frame), never read from labels, so a generated video is measured exactly like a real one. Its
behaviour statistics (blink rate, nod / sway amplitude and frequency, mouth gain, level and lag behind the
audio, smile rate: ``behaviour_stats``) are compared with the reference's by ``behaviour_similarity`` (1 = identical,
``exp(-RMS of scaled differences)``).

*Behaviour identification*: among K identities, each known by one reference clip, which one's behaviour does a
new clip (another scene, other words) match? Accuracy against chance 1/K, on ground-truth world clips, says
how much identity the statistics carry; a generator that reproduces behaviour keeps that accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from avatarv.eval.inputs import as_video
from avatarv.media import Video

HELD_OUT_IDS, HELD_OUT_SCENES = 4_000_000, 400_000


@cache
def _analyzer(path: str | None = None):
    from avatarv.world.analyzer import WorldAnalyzer

    return WorldAnalyzer.load(path)


def video_signals(source: str | Path | Video | tuple[np.ndarray, np.ndarray], analyzer=None
                  ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(the analyzer's per-frame signals, the audio) of a video: a path, a ``Video``, or ``(frames, audio)``."""
    if isinstance(source, tuple):
        frames, audio = source
    else:
        video = as_video(source, require_audio=True)
        frames, audio = video.frames, video.audio
    analyzer = analyzer or _analyzer()
    return analyzer.predict(np.ascontiguousarray(frames)), audio


def video_behaviour(source: str | Path | Video | tuple[np.ndarray, np.ndarray], analyzer=None) -> dict[str, float]:
    """Behaviour statistics of a video (a path, a ``Video``, or ``(frames, audio)``) from predicted signals."""
    from avatarv.world.analyzer import behaviour_stats

    return behaviour_stats(*video_signals(source, analyzer))


def behaviour_similarity(a: dict[str, float], b: dict[str, float]) -> float:
    from avatarv.world.analyzer import behaviour_similarity as sim

    return sim(a, b)


@dataclass
class IdentificationResult:
    accuracy: float
    chance: float
    k: int
    trials: int
    confusion: list[list[int]]
    mean_percentile: float = float("nan")  # chance 0.5 (``rank_scores``)
    mean_margin: float = float("nan")  # chance 0

    def to_json(self) -> dict:
        return {"accuracy": self.accuracy, "chance": self.chance, "k": self.k, "trials": self.trials,
                "confusion": self.confusion, "mean_percentile": self.mean_percentile,
                "mean_margin": self.mean_margin}


def identify(query: dict[str, float], references: list[dict[str, float]]) -> int:
    """Index of the reference whose behaviour the query matches best."""
    return int(np.argmax([behaviour_similarity(query, r) for r in references]))


def rank_scores(query: dict[str, float], references: list[dict[str, float]], truth: int) -> dict[str, float]:
    """How well the query picks out its own reference among all, finer than a top-1 hit:

    hit         1 when the own reference is the most similar (ties broken as ``identify`` does)
    percentile  fraction of the other references less similar than the own one (ties count half); 1 = best,
                chance 0.5. With K references it moves in steps of 1/(K-1) where a hit moves in steps of 1.
    margin      similarity to the own reference minus the mean similarity to the others; chance 0
    """
    sims = np.array([behaviour_similarity(query, r) for r in references])
    own, others = sims[truth], np.delete(sims, truth)
    if not len(others):
        raise ValueError("rank_scores needs at least 2 references")
    percentile = float(((others < own).sum() + 0.5 * (others == own).sum()) / len(others))
    return {"hit": float(int(np.argmax(sims)) == truth), "percentile": percentile,
            "margin": float(own - others.mean())}


def behaviour_identification(k: int = 8, queries_per_id: int = 1, seconds: float = 12.0, size: int = 128,
                             seed: int = 0, analyzer=None) -> IdentificationResult:
    """K held-out identities, a reference clip each (scene A) and ``queries_per_id`` query clips each (other
    scenes, other speech); ground-truth world clips measured by the analyzer. Accuracy vs chance 1/K."""
    from avatarv.world import make_clip

    analyzer = analyzer or _analyzer()
    refs, queries = [], []
    for i in range(k):
        ident = HELD_OUT_IDS + i
        ref = make_clip(ident, HELD_OUT_SCENES + 10 * i, seconds, size, seed, clip_index=0)
        refs.append(video_behaviour((ref.frames, ref.audio), analyzer))
        for q in range(queries_per_id):
            clip = make_clip(ident, HELD_OUT_SCENES + 10 * i + 1 + q, seconds, size, seed, clip_index=1 + q)
            queries.append((i, video_behaviour((clip.frames, clip.audio), analyzer)))
    confusion = np.zeros((k, k), int)
    ranks = []
    for truth, stats in queries:
        confusion[truth, identify(stats, refs)] += 1
        ranks.append(rank_scores(stats, refs, truth))
    return IdentificationResult(float(np.trace(confusion) / len(queries)), 1.0 / k, k, len(queries), confusion.tolist(),
                                float(np.mean([r["percentile"] for r in ranks])),
                                float(np.mean([r["margin"] for r in ranks])))

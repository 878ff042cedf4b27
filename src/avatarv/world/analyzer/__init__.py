"""The world analyzer: per-frame signals (face box, landmarks, pose, mouth, blink, smile, gaze) predicted
from pixels by small CNNs trained on world frames, and behaviour statistics computed from them.

    from avatarv.world.analyzer import WorldAnalyzer, behaviour_stats
    pred = WorldAnalyzer.load().predict(frames)           # shipped weights in avatarv/assets
    stats = behaviour_stats(pred, audio)                   # blink rate, nod amplitude, mouth gain/level/lag, …
"""

from avatarv.analyzer.predictor import DEFAULT_WEIGHTS, WorldAnalyzer  # the inference half: avatarv.analyzer
from avatarv.world.analyzer.behaviour import behaviour_similarity, behaviour_stats

__all__ = ["DEFAULT_WEIGHTS", "WorldAnalyzer", "behaviour_similarity", "behaviour_stats"]

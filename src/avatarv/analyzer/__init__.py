"""The face analyzer: per-frame signals (face box, 68 landmarks, head pose, mouth opening, blink, smile, gaze)
read from pixels by two small CNNs (``model.py``), with the shipped weights (``avatarv/assets``).

A component of its own, not of the synthetic world: the pipeline reads a reference video's motion with it
(``pipelines/reference.py``, for DiTs trained with reference motion), evaluation reads outputs with it, and
the world trains it (``world/analyzer/train.py``) and adds behaviour statistics on top
(``world/analyzer/behaviour.py``). It imports nothing of avatarv but ``errors``.

    from avatarv.analyzer import WorldAnalyzer
    signals = WorldAnalyzer.load().predict(frames)  # frames [T, H, W, 3] uint8 -> {name: [T, ...]}
"""

from avatarv.analyzer.predictor import DEFAULT_WEIGHTS, WorldAnalyzer

__all__ = ["DEFAULT_WEIGHTS", "WorldAnalyzer"]

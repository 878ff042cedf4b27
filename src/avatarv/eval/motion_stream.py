"""Behaviour in motion-stream space: what the DiT meant to do, read without the VAE decoder.

The DiT generates a motion stream jointly with the video (``avatarv.pipelines.motion_track``): per latent
frame, the mean head pose, blink, smile, ... and the 4 per-frame mouth openings
(``avatarv.models.dit.motion_codec``). Behaviour statistics (``behaviour_stats``: blink rate, nod and sway,
mouth gain, smile rate) computed on that stream say whether the model carries a person's way of moving even
while its pixels are too blurry for the pixel analyzer.

To compare like with like, a real video (a reference, a ground-truth clip) is measured in the same space: the
world analyzer's per-frame signals are passed through the stream's own representation (``through_stream``:
latent-frame means, per-frame mouth) before the statistics. So a ground-truth clip and a generated stream lose
the same detail (a blink shorter than 4 frames is averaged the same way in both).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avatarv.models.dit.motion_codec import MOTION_SIGNALS, MotionCodec

NEEDED = ("pitch", "yaw", "blink", "smile", "mouth_open")  # what ``behaviour_stats`` reads
STREAM_DIM = len(MOTION_SIGNALS) + 4  # every signal's mean + the 4 per-frame mouth openings


def through_stream(signals: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-frame signals → what a motion stream can hold of them, per frame (signals it lacks: zeros)."""
    t = len(signals["mouth_open"])
    full = {n: np.asarray(signals.get(n, np.zeros(t)), np.float64) for n in MOTION_SIGNALS}
    codec = MotionCodec(STREAM_DIM)  # raw features: no statistics
    return codec.decode(codec.encode(full), t)  # over the latent frames that cover frames 0 … t − 1


def stream_behaviour(signals: dict[str, np.ndarray], audio: np.ndarray | None, fps: float) -> dict[str, float]:
    """``behaviour_stats`` of per-frame stream signals."""
    from avatarv.world.analyzer import behaviour_stats

    missing = [n for n in NEEDED if n not in signals]
    if missing:
        raise ValueError(f"the motion stream lacks {', '.join(missing)} (motion_dim too small for behaviour)")
    return behaviour_stats(signals, audio, fps=int(round(fps)))


def video_stream_behaviour(signals: dict[str, np.ndarray], audio: np.ndarray | None, fps: float) -> dict[str, float]:
    """Behaviour of a real video's analyzer signals, measured in motion-stream space."""
    return stream_behaviour(through_stream(signals), audio, fps)


def behaviour_in_both_spaces(signals: dict[str, np.ndarray], audio: np.ndarray | None
                             ) -> tuple[dict[str, float], dict[str, float]]:
    """(pixel-space, motion-stream-space) behaviour of a real video's analyzer signals: how references are
    measured, by the benchmark (``behaviour_metric``) and by the thesis figure alike."""
    from avatarv.world.analyzer import behaviour_stats
    from avatarv.world.analyzer.behaviour import FPS  # what behaviour_stats assumes of every video

    return behaviour_stats(signals, audio), video_stream_behaviour(signals, audio, FPS)


def track_behaviour(track: str | Path, audio: np.ndarray | None) -> dict[str, float]:
    """Behaviour of a saved generated motion track (``save_motion_track``), against the video's audio."""
    from avatarv.pipelines.motion_track import load_motion_track

    signals, fps = load_motion_track(track)
    return stream_behaviour(signals, audio, fps)

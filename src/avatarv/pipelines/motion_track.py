"""The generated motion stream of a long video, per output frame.

The DiT predicts motion features (``avatarv.models.dit.motion_codec``: head pose, mouth, blink, smile,
... per latent frame) jointly with the video. ``MotionTrack`` stitches each chunk's prediction into one
per-frame track, each frame kept once, as the frames are. One difference: a chunk's *known* leading frames
(the scene image, the previous chunk's overlap) are given to the model, not generated, and the motion loss
is on generated frames only, so the model's motion for them is untrained. They take the motion that
generated them: the previous chunk's tail (the overlap is exactly those frames; ``MotionCodec.carry`` makes
the next chunk's known motion of it), or for the first chunk's scene frame, the first generated frame's. The track is what the model *meant* to do, read without the VAE
decoder and a pixel analyzer; behaviour measured on it isolates the DiT from the decoder's blur
(``avatarv.eval.motion_stream``).

File format (``save_motion_track``): an ``.npz`` with one float32 array ``[frames]`` per signal and ``fps``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class MotionTrack:
    """Accumulates per-frame motion of consecutive chunks (``[T, S]`` rows, S signals in a fixed order)."""

    def __init__(self, names: list[str], overlap_frames: int, total_frames: int):
        self.names = list(names)
        self.overlap, self.total = overlap_frames, total_frames
        self.rows: list[np.ndarray] = []
        self.pending: np.ndarray | None = None
        self.written = 0

    def add(self, signals: dict[str, np.ndarray], last: bool, known: int = 0) -> int:
        """One chunk's per-frame signals (all of its frames, the overlap included), of which the first
        ``known`` were given to the model. Returns rows kept."""
        x = np.stack([np.asarray(signals[n], np.float64) for n in self.names], axis=1)  # [T, S]
        if known:
            if self.pending is not None:
                if len(self.pending) != known:
                    raise ValueError(f"{known} known frames but an overlap of {len(self.pending)}")
                x[:known] = self.pending
            else:
                x[:known] = x[min(known, len(x) - 1)]
        tail = 0 if last else self.overlap
        new = x[: len(x) - tail][: max(0, self.total - self.written)]
        self.rows.append(new)
        self.written += len(new)
        self.pending = None if last else x[len(x) - self.overlap :].copy()
        return len(new)

    def signals(self) -> dict[str, np.ndarray]:
        x = np.concatenate(self.rows) if self.rows else np.zeros((0, len(self.names)))
        return {n: x[:, k].astype(np.float32) for k, n in enumerate(self.names)}


def save_motion_track(path: str | Path, signals: dict[str, np.ndarray], fps: float) -> Path:
    """Write the track atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, fps=np.float32(fps), **{k: np.asarray(v, np.float32) for k, v in signals.items()})
    os.replace(tmp, path)
    return path


def load_motion_track(path: str | Path) -> tuple[dict[str, np.ndarray], float]:
    """(per-frame signals, fps) of a saved track."""
    from avatarv.errors import InputError

    try:
        with np.load(path) as data:
            fps = float(data["fps"])
            return {k: data[k] for k in data.files if k != "fps"}, fps
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"{path}: not a motion track ({err})") from err


def motion_track_path(video_path: str | Path) -> Path:
    """Where the motion track of an output video lives: ``out.mp4`` → ``out.motion.npz``."""
    video_path = Path(video_path)
    return video_path.with_name(video_path.stem + ".motion.npz")

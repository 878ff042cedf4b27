"""Clip labels: per-frame ground truth (NPZ) and per-clip metadata (JSON), saved beside the mp4.

Coordinates are pixels with pixel centres at integer coordinates (OpenCV / dlib convention). Landmarks
follow the 68-point iBUG layout. Head pose is (yaw, pitch, roll) in degrees: yaw > 0 turns the face to the
image right, pitch > 0 tilts the chin down, roll > 0 tilts the head clockwise in the image.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from avatarv.errors import InputError


@dataclass
class ClipLabels:
    landmarks: np.ndarray  # [T, 68, 2] float32
    iris: np.ndarray  # [T, 2, 2] float32: image-left eye, image-right eye
    face_box: np.ndarray  # [T, 4] x0, y0, x1, y1: box of the 68 landmarks
    head_box: np.ndarray  # [T, 4] skull + jaw
    pose: np.ndarray  # [T, 3] yaw, pitch, roll (deg)
    mouth_open: np.ndarray  # [T] 0..1 (lip gap ≈ 0.34 · mouth_open face units)
    mouth_round: np.ndarray  # [T] 0..1
    smile: np.ndarray  # [T] 0..1
    blink: np.ndarray  # [T] lid closure 0..1
    blink_closed: np.ndarray  # [T] bool: closure ≥ 0.5
    brow_raise: np.ndarray  # [T]
    gaze: np.ndarray  # [T, 2] x (image right +), y (down +), -1..1
    shrug: np.ndarray  # [T]
    visible: np.ndarray  # [T] bool: a person's face is in the frame with all 68 points inside
    speaking: np.ndarray  # [T] bool: the audio envelope is above 0.15 (voice present)
    audio_envelope: np.ndarray  # [T] envelope of the *original* speech (before any injected offset)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.landmarks)

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "meta"}

    def save(self, stem: str | Path) -> tuple[Path, Path]:
        """Write ``stem.npz`` (arrays) and ``stem.json`` (meta + per-frame scalars), atomically."""
        stem = Path(stem)
        npz, js = stem.with_suffix(".npz"), stem.with_suffix(".json")
        tmp = npz.with_name(npz.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **self.arrays())
        os.replace(tmp, npz)
        per_frame = {
            "face_box": np.round(self.face_box, 2).tolist(),
            "pose": np.round(self.pose, 3).tolist(),
            "mouth_open": np.round(self.mouth_open, 4).tolist(),
            "blink_closed": self.blink_closed.astype(int).tolist(),
            "smile": np.round(self.smile, 3).tolist(),
            "gaze": np.round(self.gaze, 3).tolist(),
            "visible": self.visible.astype(int).tolist(),
        }
        tmp = js.with_name(js.name + ".tmp")
        tmp.write_text(json.dumps({**self.meta, "frames": per_frame, "arrays": npz.name}, indent=1, sort_keys=True))
        os.replace(tmp, js)
        return npz, js

    @classmethod
    def load(cls, stem: str | Path) -> ClipLabels:
        stem = Path(stem)
        npz, js = stem.with_suffix(".npz"), stem.with_suffix(".json")
        if not npz.is_file():
            raise InputError("labels not found (expected a .npz beside the clip)", npz)
        with np.load(npz) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(js.read_text()) if js.is_file() else {}
        meta.pop("frames", None)
        meta.pop("arrays", None)
        return cls(**arrays, meta=meta)


def box_of(points: np.ndarray) -> np.ndarray:
    """[..., N, 2] → [..., 4] (x0, y0, x1, y1)."""
    return np.concatenate([points.min(-2), points.max(-2)], axis=-1).astype(np.float32)

"""dlib's real face tools run on world frames: detection rate and landmark error against the labels.

dlib's HOG frontal face detector and its 68-point iBUG predictor are the same tools the project runs on
real footage; that they work on world frames is what makes the world a faithful test bed. The predictor
weights come from the installed ``face_recognition_models`` package, located without importing it (its
``__init__`` imports ``pkg_resources``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from avatarv.errors import ConfigError


def predictor_path() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("package face_recognition_models is not installed (pip install face-recognition-models)")
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "models" / "shape_predictor_68_face_landmarks.dat"
        if path.is_file():
            return path
    raise ConfigError("shape_predictor_68_face_landmarks.dat not found in face_recognition_models/models")


@lru_cache(maxsize=1)
def dlib_models():
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor_path()))


def interocular(landmarks: np.ndarray) -> np.ndarray:
    """Outer-eye-corner distance (iBUG 36–45), the usual normaliser of landmark error. [..., 68, 2] → [...]"""
    return np.linalg.norm(landmarks[..., 45, :] - landmarks[..., 36, :], axis=-1)


@dataclass
class FaceCheck:
    detected: np.ndarray  # [T] bool: dlib found a face overlapping the labelled one
    landmarks: np.ndarray  # [T, 68, 2] dlib's points (NaN where not detected)
    error_px: np.ndarray  # [T] mean point-to-point error in px (NaN where not detected)
    nme: np.ndarray  # [T] error_px / inter-ocular distance

    @property
    def detection_rate(self) -> float:
        return float(self.detected.mean()) if len(self.detected) else 0.0

    def summary(self) -> dict:
        ok = self.detected
        return {
            "frames": int(len(ok)),
            "detection_rate": self.detection_rate,
            "error_px": float(np.nanmean(self.error_px)) if ok.any() else float("nan"),
            "nme": float(np.nanmean(self.nme)) if ok.any() else float("nan"),
            "nme_median": float(np.nanmedian(self.nme)) if ok.any() else float("nan"),
        }


def check_frames(frames: np.ndarray, landmarks: np.ndarray, upsample: int | None = None) -> FaceCheck:
    """Run dlib on frames [T, H, W, 3] uint8 RGB and compare with label landmarks [T, 68, 2].

    ``upsample`` defaults to 1 below 200 px (HOG's 80 px window needs it for small faces), else 0."""
    import dlib

    detector, predictor = dlib_models()
    t = len(frames)
    if upsample is None:
        upsample = 1 if frames.shape[1] < 200 else 0
    found = np.zeros(t, bool)
    pred = np.full((t, 68, 2), np.nan, np.float32)
    for i in range(t):
        img = np.ascontiguousarray(frames[i])
        rects = detector(img, upsample)
        if not rects:
            continue
        lab = landmarks[i]
        lc = lab.mean(0)
        # the detection whose centre is closest to the labelled face, if it overlaps it
        best = min(rects, key=lambda r: (r.center().x - lc[0]) ** 2 + (r.center().y - lc[1]) ** 2)
        if not (best.left() <= lc[0] <= best.right() and best.top() <= lc[1] <= best.bottom()):
            continue
        shape = predictor(img, dlib.rectangle(best.left(), best.top(), best.right(), best.bottom()))
        pred[i] = [(p.x, p.y) for p in shape.parts()]
        found[i] = True
    err = np.linalg.norm(pred - landmarks, axis=-1).mean(-1)
    return FaceCheck(detected=found, landmarks=pred, error_px=err, nme=err / interocular(landmarks))

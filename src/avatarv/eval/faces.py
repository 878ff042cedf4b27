"""Face detection and landmarks behind small interfaces, with dlib's real models as the default.

``dlib-bin`` ships the HOG frontal-face detector; ``face-recognition-models`` ships the MMOD CNN detector, the
5- and 68-point landmark predictors and the ResNet identity model as ``.dat`` files. We locate that package's
``models/`` folder through ``importlib.util.find_spec`` and never import it (its ``__init__`` imports
``pkg_resources``). World footage uses its own exact labels through :class:`LabelledFaces` instead.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from avatarv.errors import InputError

# --- model files ----------------------------------------------------------------------------------------------


def dlib_model_path(name: str) -> Path:
    """Path of a model file shipped by ``face-recognition-models`` (e.g. ``mmod_human_face_detector.dat``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the face-recognition-models package is not installed (pip install face-recognition-models)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise InputError("dlib model file missing from face-recognition-models", path)
    return path


@cache
def dlib_model(kind: str, name: str):
    """dlib models are loaded once per process (the 68-point predictor takes ~0.6 s)."""
    import dlib

    path = str(dlib_model_path(name))
    return {
        "mmod": dlib.cnn_face_detection_model_v1,
        "shape": dlib.shape_predictor,
        "resnet": dlib.face_recognition_model_v1,
    }[kind](path)


# --- detections -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceBox:
    """A face in one frame: ``box = (x1, y1, x2, y2)`` in pixels of the full frame, detector ``score``."""

    frame: int
    box: tuple[float, float, float, float]
    score: float = 1.0

    @property
    def size(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


class FaceDetector(ABC):
    """Finds faces in RGB frames. Subclasses implement :meth:`detect`; :meth:`detect_video` runs it on frames
    (every ``every``-th frame, the tracker interpolates between them)."""

    name = "detector"

    @abstractmethod
    def detect(self, frame: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """``frame`` ``[H,W,3]`` uint8 RGB -> ``[(box, score), ...]``."""

    def detect_video(self, frames: Sequence[np.ndarray] | np.ndarray, every: int = 1) -> list[list[FaceBox]]:
        out: list[list[FaceBox]] = []
        for i, frame in enumerate(frames):
            if i % every:
                out.append([])
                continue
            out.append([FaceBox(i, box, score) for box, score in self.detect(frame)])
        return out


def _rescale(frame: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return np.ascontiguousarray(frame)
    import cv2

    h, w = frame.shape[:2]
    return cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _rect_box(rect, scale: float) -> tuple[float, float, float, float]:
    return (rect.left() / scale, rect.top() / scale, (rect.right() + 1) / scale, (rect.bottom() + 1) / scale)


class DlibHogDetector(FaceDetector):
    """dlib's HOG + linear SVM frontal-face detector through ``avatarv.media.faces.detect_faces`` (one way to
    ask "where is the face" across avatarv; ~20 ms on a 512 px frame here; finds faces from ~80 px, ~40 px with
    ``upsample=1``, which ``None`` picks for frames of <= 320 px). ``scale`` < 1 detects on a downscaled frame,
    as the original pipeline runs its S3FD at ``facedet_scale = 0.25``. Score: the SVM margin."""

    name = "dlib-hog"

    def __init__(self, upsample: int | None = None, scale: float = 1.0):
        self.upsample, self.scale = upsample, scale

    def detect(self, frame):
        from avatarv.media.faces import detect_faces

        found = detect_faces(_rescale(frame, self.scale), upsample=self.upsample)
        s = self.scale
        return [((b.left / s, b.top / s, b.right / s, b.bottom / s), float(b.score)) for b in found]


class DlibMmodDetector(FaceDetector):
    """dlib's MMOD CNN face detector (more robust to pose than HOG; ~1.7 s per 512 px frame on this CPU)."""

    name = "dlib-mmod"

    def __init__(self, upsample: int = 0, scale: float = 1.0, model_path: str | Path | None = None):
        self.upsample, self.scale = upsample, scale
        self.model_name = str(model_path) if model_path else "mmod_human_face_detector.dat"

    def detect(self, frame):
        import dlib

        if Path(self.model_name).is_absolute():
            det = dlib.cnn_face_detection_model_v1(self.model_name)
        else:
            det = dlib_model("mmod", self.model_name)
        found = det(_rescale(frame, self.scale), self.upsample)
        return [(_rect_box(d.rect, self.scale), float(d.confidence)) for d in found]


class LabelledFaces(FaceDetector):
    """Faces known in advance: per-frame boxes from labels (the synthetic world's exact face boxes) or from an
    earlier detection pass. ``boxes[i]`` is a list of ``(x1, y1, x2, y2)`` (or a single box, or None) for
    frame ``i``."""

    name = "labels"

    def __init__(self, boxes: Sequence):
        self.boxes = [self._as_list(b) for b in boxes]

    @staticmethod
    def _as_list(b) -> list[tuple[float, float, float, float]]:
        if b is None:
            return []
        arr = np.asarray(b, dtype=np.float64)
        if arr.size == 0:
            return []
        return [tuple(map(float, row)) for row in arr.reshape(-1, 4)]

    def detect(self, frame):  # a labelled detector has no frame index here; use detect_video
        raise NotImplementedError("LabelledFaces answers per frame index: call detect_video")

    def detect_video(self, frames, every: int = 1):
        n = len(frames)
        if n != len(self.boxes):
            raise ValueError(f"{len(self.boxes)} labelled frames for a video of {n} frames")
        return [[FaceBox(i, box, 1.0) for box in self.boxes[i]] if i % every == 0 else [] for i in range(n)]


DETECTORS = {"dlib-hog": DlibHogDetector, "dlib-mmod": DlibMmodDetector}


def get_detector(name: str = "dlib-hog", **kwargs) -> FaceDetector:
    if name not in DETECTORS:
        raise InputError(f"unknown face detector {name!r} (choose from {sorted(DETECTORS)})")
    return DETECTORS[name](**kwargs)


# --- landmarks --------------------------------------------------------------------------------------------------


def _dlib_rect(box):
    import dlib

    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return dlib.rectangle(x1, y1, x2 - 1, y2 - 1)


def dlib_shape(frame: np.ndarray, box, points: int = 5):
    """dlib ``full_object_detection`` (5 or 68 landmarks) for a face box; what dlib's identity model needs."""
    name = {5: "shape_predictor_5_face_landmarks.dat", 68: "shape_predictor_68_face_landmarks.dat"}[points]
    return dlib_model("shape", name)(np.ascontiguousarray(frame), _dlib_rect(box))


def five_points_68(landmarks68: np.ndarray) -> np.ndarray:
    """68-point (iBUG) landmarks -> the 5 points of the ArcFace template, in its order: eye on the image's left,
    eye on the image's right, nose tip, mouth corner on the left, mouth corner on the right. ``[5, 2]``."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def dlib_five_points(frame: np.ndarray, box) -> np.ndarray:
    """ArcFace 5 points from dlib's 68-point predictor (the 5-point model has no mouth corners)."""
    shape = dlib_shape(frame, box, 68)
    return five_points_68(np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64))

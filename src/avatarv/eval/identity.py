"""Identity similarity: one interface, several face recognisers.

- ``dlib``: dlib's ResNet-29 face-recognition model (128-d, trained with a metric loss; shipped by
  ``face-recognition-models``). The default for real footage: it is a real model that installs from PyPI.
  dlib's own verification rule is Euclidean distance < 0.6 on the raw descriptors; we report that distance and
  the cosine similarity.
- ``arcface-onnx``: an ArcFace-format ONNX recogniser from a local path (e.g. insightface's ``w600k_r50.onnx``),
  the seed's metric ("ArcFace cosine similarity"). Faces are aligned to 112 x 112 with the standard ArcFace
  5-point template by a similarity transform (Umeyama), pixels fed as ``(RGB - 127.5) / 127.5`` NCHW.
- ``world``: the world identity embedder (``world_identity.py``: a small CNN trained with an ArcFace loss on
  world identities, shipped in ``src/avatarv/assets/eval/``), registered on first use.

Face similarity of a video to a reference (seed, "Objective Metrics"): the reference embedding is the
normalised mean of the reference's face embeddings at 2 fps (one image: its embedding); each frame of the
video at 2 fps scores the cosine similarity of its largest face to it; the case score is the 10 % trimmed mean
over frames with a face (frames without one are counted, not scored).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avatarv.errors import InputError
from avatarv.eval.faces import DlibHogDetector, FaceDetector, dlib_five_points, dlib_model, dlib_shape
from avatarv.eval.inputs import as_video
from avatarv.eval.protocol import sample_frame_indices, trimmed_mean
from avatarv.media import Video

# The ArcFace alignment template for 112 x 112 crops (insightface ``arcface_dst``; Deng et al. 2019): eye on the
# image's left, eye on the image's right, nose tip, left mouth corner, right mouth corner.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
ARCFACE_SIZE = 112


# --- maths ----------------------------------------------------------------------------------------------------------


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of embeddings along the last axis (broadcasting)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / np.maximum(na * nb, 1e-12)


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) taking ``src`` points to
    ``dst`` points (Umeyama 1991), as a ``[2, 3]`` affine matrix for ``cv2.warpAffine``. No reflection."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)  # [2,2]
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    var_s = (s0**2).sum() / len(src)
    scale = (sig * sign).sum() / var_s
    trans = mu_d - scale * rot @ mu_s
    return np.concatenate([scale * rot, trans[:, None]], 1)


def arcface_align(frame: np.ndarray, five_points: np.ndarray, size: int = ARCFACE_SIZE) -> np.ndarray:
    """Warp a face to the ArcFace template: ``frame [H,W,3]`` + 5 points ``[5,2]`` -> ``[size,size,3]``."""
    import cv2

    template = ARCFACE_TEMPLATE_112 * (size / ARCFACE_SIZE)
    m = umeyama_similarity(five_points, template)
    return cv2.warpAffine(np.ascontiguousarray(frame), m, (size, size), borderValue=0.0)


# --- backends -------------------------------------------------------------------------------------------------------


class IdentityEmbedder(ABC):
    """Face recogniser: finds the faces of a frame and embeds them. ``embed_faces`` is the one method to write;
    ``embed_largest`` picks the largest face (the speaker, in a talking-head video)."""

    name = "identity"
    dim = 0

    def __init__(self, detector: FaceDetector | None = None):
        self.detector = detector or DlibHogDetector()

    def faces(self, frame: np.ndarray) -> list[tuple[float, float, float, float]]:
        return [box for box, _ in self.detector.detect(frame)]

    @abstractmethod
    def embed_faces(self, frame: np.ndarray, boxes: list) -> np.ndarray:
        """``frame [H,W,3]`` uint8 RGB and face boxes -> embeddings ``[len(boxes), dim]``."""

    def embed_largest(self, frame: np.ndarray, box=None) -> np.ndarray | None:
        """Embedding of the largest face (or of ``box``); None when no face is found."""
        largest = box if box is not None else largest_box(self.faces(frame))
        if largest is None:
            return None
        return self.embed_faces(frame, [largest])[0]


def largest_box(boxes: list) -> tuple[float, float, float, float] | None:
    """The largest ``(x0, y0, x1, y1)`` box by area (the speaker, in a talking-head video); None for none."""
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])) if boxes else None


class DlibResNetEmbedder(IdentityEmbedder):
    """dlib's ResNet face descriptor (128-d) on the 5-point-aligned 150 x 150 chip dlib makes itself."""

    name = "dlib"
    dim = 128

    def __init__(self, detector: FaceDetector | None = None, num_jitters: int = 0):
        super().__init__(detector)
        self.num_jitters = num_jitters

    def embed_faces(self, frame, boxes):
        model = dlib_model("resnet", "dlib_face_recognition_resnet_model_v1.dat")
        frame = np.ascontiguousarray(frame)
        out = [np.array(model.compute_face_descriptor(frame, dlib_shape(frame, b, 5), self.num_jitters)) for b in boxes]
        return np.stack(out) if out else np.zeros((0, self.dim))

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """dlib's verification distance (Euclidean on raw descriptors; same person below 0.6)."""
        return np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64), axis=-1)


class ArcFaceOnnxEmbedder(IdentityEmbedder):
    """An ArcFace-format ONNX recogniser from a local file, run by onnxruntime.

    Input ``[N,3,112,112]`` float ``(RGB - input_mean) / input_std`` (127.5 / 127.5 for insightface's models);
    output ``[N, D]``. ``landmarks(frame, box) -> [5,2]`` gives the alignment points (dlib's 68-point predictor
    reduced to the template's 5 by default; the world can pass its exact landmarks)."""

    name = "arcface-onnx"

    def __init__(
        self,
        model_path: str | Path,
        detector: FaceDetector | None = None,
        landmarks: Callable[[np.ndarray, tuple], np.ndarray] | None = None,
        input_mean: float = 127.5,
        input_std: float = 127.5,
    ):
        super().__init__(detector)
        import onnxruntime as ort

        path = Path(model_path)
        if not path.is_file():
            raise InputError("ArcFace ONNX model not found", path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for bad files
            raise InputError(f"not a loadable ONNX model ({err.__class__.__name__})", path) from err
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        if len(inp.shape) != 4 or inp.shape[1] != 3:
            raise InputError(f"expected an NCHW image input, model takes {inp.shape}", path)
        self.size = inp.shape[2] if isinstance(inp.shape[2], int) else ARCFACE_SIZE
        self.dim = int(self.session.get_outputs()[0].shape[-1]) if isinstance(self.session.get_outputs()[0].shape[-1], int) else 0
        self.landmarks = landmarks or dlib_five_points
        self.input_mean, self.input_std = input_mean, input_std

    def preprocess(self, aligned: np.ndarray) -> np.ndarray:
        """Aligned RGB faces ``[N,112,112,3]`` uint8 -> network input ``[N,3,112,112]`` float32."""
        x = (np.asarray(aligned, dtype=np.float32) - self.input_mean) / self.input_std
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def embed_aligned(self, aligned: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: self.preprocess(aligned)})[0], dtype=np.float64)

    def embed_faces(self, frame, boxes):
        if not boxes:
            return np.zeros((0, self.dim))
        aligned = np.stack([arcface_align(frame, self.landmarks(frame, b), self.size) for b in boxes])
        return self.embed_aligned(aligned)


_BACKENDS: dict[str, Callable[..., IdentityEmbedder]] = {
    "dlib": DlibResNetEmbedder,
    "arcface-onnx": ArcFaceOnnxEmbedder,
}


def register_identity_backend(name: str, factory: Callable[..., IdentityEmbedder]) -> None:
    """Adds a backend (the world identity embedder registers itself as ``world``)."""
    _BACKENDS[name] = factory


def identity_backends() -> list[str]:
    return sorted({*_BACKENDS, "world"})


def get_identity_embedder(name: str = "dlib", **kwargs) -> IdentityEmbedder:
    if name == "world" and name not in _BACKENDS:
        from avatarv.eval.world_identity import WorldIdentityEmbedder

        register_identity_backend("world", WorldIdentityEmbedder)
    if name not in _BACKENDS:
        raise InputError(f"unknown identity backend {name!r} (choose from {identity_backends()})")
    return _BACKENDS[name](**kwargs)


# --- protocol -------------------------------------------------------------------------------------------------------


@dataclass
class FaceSimilarity:
    """Per-frame cosine similarity to the reference (NaN: no face) and the trimmed mean over frames."""

    face_sim: float
    per_frame: list[float] = field(default_factory=list)
    frame_indices: list[int] = field(default_factory=list)
    frames_without_face: int = 0
    backend: str = ""

    def to_json(self) -> dict:
        return {
            "face_sim": self.face_sim,
            "backend": self.backend,
            "n_frames": len(self.per_frame),
            "frames_without_face": self.frames_without_face,
            "per_frame": [None if not np.isfinite(v) else float(v) for v in self.per_frame],
            "frame_indices": self.frame_indices,
        }


def frame_embeddings(embedder: IdentityEmbedder, frames: np.ndarray, indices) -> list[np.ndarray | None]:
    return [embedder.embed_largest(frames[i]) for i in indices]


def reference_embedding(embedder: IdentityEmbedder, reference: str | Path | Video | np.ndarray) -> np.ndarray:
    """The reference's identity: an image ``[H,W,3]`` -> its face's embedding; a video -> the normalised mean of
    its faces' embeddings at 2 fps; an embedding ``[D]`` (computed before) -> itself, normalised. Raises
    ``InputError`` when no face is found."""
    if isinstance(reference, np.ndarray) and reference.ndim == 1:
        return normalize(reference)
    if isinstance(reference, np.ndarray) and reference.ndim == 3:
        emb = embedder.embed_largest(reference)
        if emb is None:
            raise InputError("no face found in the reference image")
        return normalize(emb)
    video = as_video(reference)  # type: ignore[arg-type]
    embs = [e for e in frame_embeddings(embedder, video.frames, sample_frame_indices(video.num_frames, video.fps)) if e is not None]
    if not embs:
        raise InputError("no face found in the reference video", video.source)
    return normalize(normalize(np.stack(embs)).mean(0))


def face_similarity(
    reference: str | Path | Video | np.ndarray, video: str | Path | Video, embedder: IdentityEmbedder | None = None,
    boxes_from: str | Path | Video | None = None,
) -> FaceSimilarity:
    """Face similarity of ``video`` to ``reference`` by the seed's protocol (2 fps, 10 % trimmed mean).

    ``boxes_from``: a video of the same framing (a benchmark's driving clip) whose detected faces give the boxes
    to embed in ``video`` at the same frames, instead of detecting in ``video`` itself. A generated face too
    degraded for the detector is then still measured (and scores low) rather than left out; a frame whose
    source has no face stays NaN.
    """
    embedder = embedder or DlibResNetEmbedder()
    ref = reference_embedding(embedder, reference)
    vid = as_video(video)
    idx = sample_frame_indices(vid.num_frames, vid.fps)
    if boxes_from is None:
        embs = frame_embeddings(embedder, vid.frames, idx)
    else:
        src = as_video(boxes_from)
        embs = []
        for i in idx:
            largest = largest_box(embedder.faces(src.frames[i])) if i < src.num_frames else None
            embs.append(None if largest is None else embedder.embed_largest(vid.frames[i], box=largest))
    sims = [float("nan") if e is None else float(cosine_similarity(e, ref)) for e in embs]
    return FaceSimilarity(
        face_sim=trimmed_mean(sims),
        per_frame=sims,
        frame_indices=[int(i) for i in idx],
        frames_without_face=int(sum(1 for s in sims if not np.isfinite(s))),
        backend=embedder.name,
    )

"""Dense face landmarks on real footage: mediapipe FaceMesh (478 points with irises), one face, video mode.

mediapipe 0.10.14 ships the TFLite face detector and face-mesh models inside the wheel (no download), so this
is a real, offline landmark model for real faces (lip sync, blink, gaze). One function, ``face_mesh``, turns a
sequence of RGB frames into pixel landmarks ``[T, 478, 3]``; every call builds a fresh FaceMesh graph so its
tracking state never leaks from one sequence into the next (same frames -> same landmarks).

Index sets below are mediapipe's canonical-mesh vertex ids (``mediapipe/python/solutions/face_mesh_connections``,
``FACEMESH_LIPS``, ``FACEMESH_*_EYE``, ``FACEMESH_*_IRIS``), ordered around each contour. "Left"/"right" are the
*subject's* sides, as mediapipe names them (the subject's right eye is on the image's left in a frontal view).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_LANDMARKS = 478  # 468 mesh vertices + 2 × 5 iris points (refine_landmarks=True)

# Lips, each contour in order starting at the subject's right mouth corner (61 outer, 78 inner), lower lip first.
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
MOUTH_CORNERS = (61, 291)  # outer corners: subject's right, left
INNER_LIP_MIDS = (13, 14)  # upper, lower inner-lip midpoints: their distance is the mouth opening
OUTER_LIP_MIDS = (0, 17)  # upper, lower outer-lip midpoints

# Eyes: contour (upper then lower lid), corners (outer, inner) and the lid midpoints used for blink ratios.
RIGHT_EYE = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
RIGHT_EYE_CORNERS = (33, 133)  # outer, inner
LEFT_EYE_CORNERS = (263, 362)  # outer, inner
RIGHT_EYE_LIDS = (159, 145)  # upper, lower
LEFT_EYE_LIDS = (386, 374)  # upper, lower

# Irises (refine_landmarks=True only): centre first, then four points on the rim.
RIGHT_IRIS = (468, 469, 470, 471, 472)
LEFT_IRIS = (473, 474, 475, 476, 477)

NOSE_TIP = 1
FOREHEAD = 10  # top of the face oval, on the midline
CHIN = 152  # bottom of the face oval, on the midline


@dataclass(frozen=True)
class FaceMeshConfig:
    """mediapipe FaceMesh settings (its defaults except refine_landmarks, which adds the irises)."""

    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    static_image_mode: bool = False  # video mode: track between frames (steadier, ≈ 2× faster)


@dataclass
class FaceMeshTrack:
    """Landmarks of the one face in a frame sequence."""

    points: np.ndarray  # [T, 478, 3] float32: x, y in pixels; z in pixels at x's scale (mediapipe's relative
    #                      depth × frame width; smaller = nearer the camera); NaN where no face was found
    detected: np.ndarray  # [T] bool

    @property
    def detected_fraction(self) -> float:
        return float(self.detected.mean()) if self.detected.size else 0.0


def face_mesh(frames_rgb: np.ndarray, config: FaceMeshConfig | None = None) -> FaceMeshTrack:
    """Landmarks of the largest-confidence face in each of ``frames_rgb`` ``[T, H, W, 3]`` uint8 RGB.

    Frames are fed in order to one FaceMesh graph built for this call (video mode tracks between frames), so
    the output depends only on the frames and the config.
    """
    from mediapipe.python.solutions import face_mesh as mp_face_mesh  # imported lazily: heavy (TFLite, jax)

    cfg = config or FaceMeshConfig()
    frames = np.asarray(frames_rgb)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected frames [T, H, W, 3] uint8 RGB, got {frames.shape} {frames.dtype}")
    t, h, w = frames.shape[:3]
    points = np.full((t, N_LANDMARKS, 3), np.nan, dtype=np.float32)  # [T, 478, 3]
    detected = np.zeros(t, dtype=bool)
    scale = np.array([w, h, w], dtype=np.float32)  # mediapipe gives x, y in [0, 1] of width/height, z ~ x
    with mp_face_mesh.FaceMesh(
        static_image_mode=cfg.static_image_mode,
        max_num_faces=1,
        refine_landmarks=True,
        min_detection_confidence=cfg.min_detection_confidence,
        min_tracking_confidence=cfg.min_tracking_confidence,
    ) as mesh:
        for k in range(t):
            result = mesh.process(np.ascontiguousarray(frames[k]))
            if not result.multi_face_landmarks:
                continue
            lm = result.multi_face_landmarks[0].landmark
            xyz = np.array([(p.x, p.y, p.z) for p in lm], dtype=np.float32)  # [478, 3] normalised
            points[k] = xyz * scale
            detected[k] = True
    return FaceMeshTrack(points, detected)


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """Inner-lip opening over mouth width (corner to corner), per frame: ``[T, 478, ≥2] -> [T]`` (NaN where no face).

    A scale-free measure of how open the mouth is (≈ 0 closed, ≈ 0.3–0.6 wide open on real speech)."""
    p = np.asarray(points, dtype=np.float64)[..., :2]
    gap = np.linalg.norm(p[:, INNER_LIP_MIDS[0]] - p[:, INNER_LIP_MIDS[1]], axis=-1)
    width = np.linalg.norm(p[:, MOUTH_CORNERS[0]] - p[:, MOUTH_CORNERS[1]], axis=-1)
    return gap / np.maximum(width, 1e-9)

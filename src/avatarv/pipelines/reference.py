"""Reference preparation, once per job: face-centred square crop, faceless frames flagged, VAE latents.

The reference is 4k + 1 frames, k + 1 ≤ the preset's ``max_ref_latent_frames``: a contiguous stretch at the
native 25 fps (``stride`` 1: the latents keep real timing, blink rhythm and nod speed as they are), or every
``stride``-th frame of a ``stride`` times longer stretch (the same tokens cover more behaviour, at a lower
frame rate; a model is trained with the stride it is used with, ``ModelConfig.ref_frame_stride``). Latent
frame j of the reference covers frames 4j − 3 … 4j of those; it counts as faceless when most of them have
no detected face, and is then excluded from attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from avatarv.errors import InputError
from avatarv.media import Video
from avatarv.media.faces import detect_faces
from avatarv.models.dit import RefInputs
from avatarv.models.vae import VideoVAE


@dataclass
class PreparedReference:
    ref: RefInputs
    frames: np.ndarray  # [T, S, S, 3] uint8 cropped reference frames that were encoded
    face_found: np.ndarray  # [T] bool per frame
    crop: tuple[int, int, int]  # (left, top, side) in source pixels
    scene_frame: np.ndarray  # [S, S, 3] the default scene image (first frame with a face)
    ref_hr: RefInputs | None = None  # the same reference at the refiner's resolution (when asked for)


def face_crop_box(frames: np.ndarray, found_boxes: list) -> tuple[int, int, int]:
    """A square (left, top, side) around the median face, 2.2 face heights wide, inside the frame."""
    h, w = frames.shape[1:3]
    boxes = np.array([[b.left, b.top, b.right, b.bottom] for b in found_boxes], dtype=np.float64)
    cx = np.median((boxes[:, 0] + boxes[:, 2]) / 2)
    cy = np.median((boxes[:, 1] + boxes[:, 3]) / 2)
    size = np.median(boxes[:, 3] - boxes[:, 1]) * 2.2
    side = int(min(max(size, 16), h, w))
    left = int(np.clip(cx - side / 2, 0, w - side))
    top = int(np.clip(cy - side / 2 - 0.1 * side, 0, h - side))  # a little headroom above the face
    return left, top, side


def resize_square(frames: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def reference_motion(frames: np.ndarray, num_latents: int, motion_dim: int, analyzer=None) -> torch.Tensor:
    """The reference's motion tokens' features ``[1, num_latents, motion_dim]`` (raw, as the shards hold them):
    the face analyzer's (``avatarv.analyzer``) per-frame reading of the encoded reference frames ``[4(num_latents − 1) + 1, S, S, 3]``,
    through ``data.shards.reference_motion_features`` (the signals it cannot read are zero, as in training)."""
    from avatarv.analyzer import WorldAnalyzer
    from avatarv.data.shards import reference_motion_features

    if len(frames) != 4 * (num_latents - 1) + 1:
        raise ValueError(f"{len(frames)} reference frames do not make {num_latents} latent frames")
    signals = (analyzer or WorldAnalyzer.load()).predict(np.ascontiguousarray(frames))
    return reference_motion_features(signals, num_latents, motion_dim)[None]


def prepare_reference(
    video: Video, vae: VideoVAE, resolution: int, max_latents: int, detect_every: int = 1,
    hr_resolution: int | None = None, stride: int = 1, motion_dim: int = 0, analyzer=None, on_phase=None,
) -> PreparedReference:
    """``motion_dim`` > 0: the reference also gets its motion features (``reference_motion``; raw, the caller
    normalises them for its DiT) — for a DiT trained with them (``ModelConfig.ref_motion``). ``on_phase(name)``
    is told each step (face detection, motion, VAE encoding) as it starts."""
    on_phase = on_phase or (lambda name: None)
    if stride < 1:
        raise ValueError(f"reference frame stride {stride}: expected >= 1")
    frames = video.frames[::stride]
    n_lat = min(max_latents, (len(frames) - 1) // 4 + 1)
    n = (n_lat - 1) * 4 + 1
    if len(frames) < 1:
        raise InputError("the reference video has no frames", video.source)
    frames = frames[:n]
    found = np.zeros(n, dtype=bool)
    boxes = []
    on_phase(f"finding the face in {n} reference frames")
    for i in range(0, n, detect_every):
        faces = detect_faces(frames[i])
        if faces:
            found[i : i + detect_every] = True
            boxes.append(faces[0])
    if not boxes:
        raise InputError("no face found in the reference video (a visible, frontal face is needed)", video.source)
    left, top, side = face_crop_box(frames, boxes)
    square = frames[:, top : top + side, left : left + side]
    crops = resize_square(square, resolution)
    # latent j ← frames 4j−3 … 4j (j = 0: frame 0): faceless when most of them have no face
    mask = [found[0]] + [found[4 * j - 3 : 4 * j + 1].mean() >= 0.5 for j in range(1, n_lat)]
    frame_mask = torch.tensor([mask], dtype=torch.bool)
    if motion_dim:
        on_phase("reading the reference's motion")
    motion = reference_motion(crops, n_lat, motion_dim, analyzer) if motion_dim else None  # [1, n_lat, dim]
    on_phase(f"encoding the reference ({n} frames)")
    ref = RefInputs(latents=vae.encode(crops), motion=motion, frame_mask=frame_mask)  # [1, z, n_lat, h, w]
    ref_hr = None
    if hr_resolution is not None:
        on_phase(f"encoding the reference at {hr_resolution} px")
        ref_hr = RefInputs(latents=vae.encode(resize_square(square, hr_resolution)), frame_mask=frame_mask)
    scene = crops[int(np.argmax(found))]
    return PreparedReference(ref=ref, frames=crops, face_found=found, crop=(left, top, side), scene_frame=scene,
                             ref_hr=ref_hr)

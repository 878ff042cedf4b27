"""Face tracks and SyncNet crops as the public pipeline makes them (joonson/syncnet_python, ``run_pipeline.py``).

- ``track_shot``: greedy IoU tracking. A track starts at the first unused detection; it takes, frame after
  frame, a detection whose IoU with the track's last box is > 0.5, as long as no more than
  ``num_failed_det = 25`` frames separate them; then the next track starts from what is left. Boxes are
  linearly interpolated over the frames the track spans (``scipy.interpolate.interp1d``). A track is kept when
  it is long enough (``min_track``) and its mean box width or height is above ``min_face_size`` (100 px).
- ``crop_video``: box size ``s = max(w, h) / 2`` and centre, each median-filtered with a 13-frame kernel; the
  frame is padded by ``bsi = int(s (1 + 2 cs))`` with grey 110 (``cs = crop_scale = 0.4``); the crop spans
  ``y in [cy - s, cy + s (1 + 2 cs))`` and ``x in [cx - s (1 + cs), cx + s (1 + cs))`` (a square 2 s (1 + cs)
  wide reaching from the top of the box to well below the chin, so the mouth is in it) and is resized to
  224 x 224 with ``cv2.resize`` (bilinear).

Differences, on purpose: the original keeps a track when it has ``> min_track`` detections with
``min_track = 100`` in its current ``run_pipeline.py``; we count the frames the track spans (so detecting every
k-th frame works) and use ``>= 50`` frames (2 s), the length the talking-head benchmarks evaluate. At most one
detection per frame joins a track (the original can take two overlapping boxes of one frame). Shots: the
original runs PySceneDetect first and tracks within each shot; :func:`track_faces` takes shot boundaries if
a caller has them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal
from scipy.interpolate import interp1d

from avatarv.eval.faces import FaceBox

IOU_THRESHOLD = 0.5
NUM_FAILED_DET = 25
MIN_TRACK = 50
MIN_FACE_SIZE = 100.0
CROP_SCALE = 0.4
SMOOTH_KERNEL = 13
PAD_VALUE = 110
CROP_SIZE = 224


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of ``(x1, y1, x2, y2)`` boxes (``bb_intersection_over_union``)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class FaceTrack:
    """A face followed over consecutive frames: ``frames [N]`` (consecutive ints) and ``boxes [N, 4]``."""

    frames: np.ndarray
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def start(self) -> int:
        return int(self.frames[0])

    @property
    def stop(self) -> int:  # exclusive
        return int(self.frames[-1]) + 1

    def mean_size(self) -> float:
        return float(max(np.mean(self.boxes[:, 2] - self.boxes[:, 0]), np.mean(self.boxes[:, 3] - self.boxes[:, 1])))


def _track_shot(
    detections: list[list[FaceBox]], min_track: int, num_failed_det: int, iou_threshold: float, min_face_size: float
) -> list[FaceTrack]:
    pool = [list(frame_faces) for frame_faces in detections]  # detections not yet taken by a track
    tracks: list[FaceTrack] = []
    while True:
        track: list[FaceBox] = []
        for frame_faces in pool:
            if not frame_faces:
                continue
            if not track:
                track.append(frame_faces.pop(0))
                continue
            if frame_faces[0].frame - track[-1].frame > num_failed_det:
                break  # lost: the gap is too long (later frames are further still)
            ious = [box_iou(f.box, track[-1].box) for f in frame_faces]
            best = int(np.argmax(ious))
            if ious[best] > iou_threshold:
                track.append(frame_faces.pop(best))
        if not track:
            return tracks
        frames = np.array([f.frame for f in track])
        boxes = np.array([f.box for f in track], dtype=np.float64)
        span = np.arange(frames[0], frames[-1] + 1)
        if len(span) < min_track:
            continue
        if len(frames) > 1:
            boxes = interp1d(frames, boxes, axis=0)(span)
        face_track = FaceTrack(span, boxes)
        if face_track.mean_size() > min_face_size:
            tracks.append(face_track)


def track_faces(
    detections: list[list[FaceBox]],
    min_track: int = MIN_TRACK,
    num_failed_det: int = NUM_FAILED_DET,
    iou_threshold: float = IOU_THRESHOLD,
    min_face_size: float = MIN_FACE_SIZE,
    shot_starts: Sequence[int] = (),
) -> list[FaceTrack]:
    """Face tracks from per-frame detections (``detections[i]`` = faces of frame ``i``), shot by shot.

    ``shot_starts``: first frames of shots after the first (cuts); tracks never cross them, and shots shorter
    than ``min_track`` are skipped as in the original.
    """
    bounds = [0, *sorted(s for s in shot_starts if 0 < s < len(detections)), len(detections)]
    tracks: list[FaceTrack] = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if b - a >= min_track:
            tracks.extend(_track_shot(detections[a:b], min_track, num_failed_det, iou_threshold, min_face_size))
    return sorted(tracks, key=lambda t: (t.start, -len(t)))


def smoothed_boxes(track: FaceTrack, kernel: int = SMOOTH_KERNEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half size ``s``, centre ``x``, centre ``y`` per frame, each median-filtered (``signal.medfilt``, 13).

    ``medfilt`` zero-pads, as in the original: the first and last 6 values are medians over a window holding
    zeros, which for tracks of >= 13 frames picks a real value near the extreme. Tracks shorter than the
    kernel (not produced by :func:`track_faces`) use the largest odd kernel that fits.
    """
    b = track.boxes
    kernel = min(kernel, len(b) if len(b) % 2 else len(b) - 1)
    s = np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2
    x = (b[:, 0] + b[:, 2]) / 2
    y = (b[:, 1] + b[:, 3]) / 2
    return (signal.medfilt(s, kernel), signal.medfilt(x, kernel), signal.medfilt(y, kernel))


def crop_face(frame: np.ndarray, s: float, cx: float, cy: float, crop_scale: float = CROP_SCALE, size: int = CROP_SIZE):
    """One SyncNet crop (``crop_video``'s loop body): pad by ``int(s (1 + 2 cs))`` with 110, cut, resize."""
    import cv2

    pad = int(s * (1 + 2 * crop_scale))
    padded = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), mode="constant", constant_values=PAD_VALUE)
    my, mx = cy + pad, cx + pad
    face = padded[int(my - s) : int(my + s * (1 + 2 * crop_scale)), int(mx - s * (1 + crop_scale)) : int(mx + s * (1 + crop_scale))]
    if face.size == 0:
        raise ValueError(f"empty face crop (s={s}, centre=({cx}, {cy}))")
    return cv2.resize(face, (size, size))


def crop_track(frames: np.ndarray, track: FaceTrack, crop_scale: float = CROP_SCALE, size: int = CROP_SIZE) -> np.ndarray:
    """SyncNet crops of a track: ``frames [T,H,W,3]`` -> ``[len(track), size, size, 3]`` (same channel order)."""
    s, x, y = smoothed_boxes(track)
    return np.stack(
        [crop_face(frames[f], s[i], x[i], y[i], crop_scale, size) for i, f in enumerate(track.frames)]
    )


def tracks_from_boxes(
    boxes: np.ndarray, visible: np.ndarray | None = None, min_track: int = MIN_TRACK, min_face_size: float = 0.0
) -> list[FaceTrack]:
    """Face tracks from known per-frame boxes (the world's exact ``face_box`` labels, ``[T, 4]``): every run of
    consecutive frames where the face is ``visible`` and at least ``min_track`` long. No detector, no IoU: the
    labels already say which face is which. ``min_face_size`` defaults to 0 (world clips are small on purpose)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    visible = np.ones(len(boxes), dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    tracks = []
    start = None
    for i, v in enumerate([*visible, False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            if i - start >= min_track:
                track = FaceTrack(np.arange(start, i), boxes[start:i].copy())
                if track.mean_size() > min_face_size:
                    tracks.append(track)
            start = None
    return tracks


def tracks_from_world_labels(labels, min_track: int = MIN_TRACK) -> list[FaceTrack]:
    """The hook for world footage: tracks from ``ClipLabels.face_box`` (box of the 68 landmarks) and ``visible``."""
    return tracks_from_boxes(labels.face_box, labels.visible, min_track=min_track)

"""Lip sync from lip *geometry*: a domain-free SyncNet on face-mesh lip landmarks vs MFCCs.

The public SyncNet reads face pixels, so a network trained on the synthetic world's painted faces means nothing
on real faces, and the public weights are not to be had offline. This scorer reads only where the lips are:

1. Lip points (20: 12 outer, 8 inner contour) and the two outer eye corners, from mediapipe FaceMesh on real
   faces (``media.face_mesh``) or from the world's 68-point labels (same anatomical points, ``IBUG_*``).
2. ``lip_geometry``: each frame in a face-aligned frame (origin between the outer eye corners, x along the eye
   line, unit = inter-ocular distance), so translation, scale and in-plane rotation drop out; plus four
   distances (inner opening, outer height, outer and inner width) in the same unit. ``[T, 44]``.
3. ``clip_features``: per-clip normalisation (median removed; the 40 coordinates share one scale, each
   distance its own), which removes the identity's lip shape and how wide it opens its mouth: what is left is
   *when* the lips move. Audio: SyncNet's MFCCs (``sync.mfcc_features``, 100 Hz), per-clip robust-normalised.
4. ``LandmarkSyncNet``: two small towers embed a window of ``W`` video frames (``[44, W]``) and the ``4W`` MFCC
   frames that span it (``[13, 4W]``); trained contrastively on the world (where sync is exact) with the
   same clip's audio at other offsets as negatives (``train_landmark_sync``).
5. Offset / Sync-C / Sync-D exactly as SyncNet's (``sync.distance_table`` + ``sync.sync_scores``: 31 offsets,
   offset = argmin of the mean distance, confidence = median - min). offset > 0: the audio leads the video.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from avatarv.eval.small_weights import load_small_weights, save_small_weights
from avatarv.eval.sync import (
    MFCC_PER_FRAME,
    SAMPLES_PER_FRAME,
    VSHIFT,
    SyncResult,
    distance_table,
    mfcc_features,
)

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "eval" / "landmark_sync.safetensors"

# The same 20 lip points and 2 eye corners in both layouts, in the same order (outer contour from the subject's
# right corner over the upper lip, then the lower; inner likewise). mediapipe ids: media.face_mesh; iBUG-68:
# world labels (48..59 outer, 60..67 inner, 36/45 outer eye corners).
MEDIAPIPE_LIPS = (61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91, 78, 81, 13, 311, 308, 402, 14, 178)
IBUG_LIPS = (48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67)
MEDIAPIPE_EYES = (33, 263)  # outer corners: subject's right (image left), subject's left
IBUG_EYES = (36, 45)
N_LIPS = len(MEDIAPIPE_LIPS)
# positions in the 20-point order of the points the distances use
_OUTER_CORNERS, _INNER_CORNERS, _OUTER_MIDS, _INNER_MIDS = (0, 6), (12, 16), (3, 9), (14, 18)
N_FEATURES = 2 * N_LIPS + 4  # 44
FEATURE_CLIP = 5.0  # normalised features and MFCCs are clipped to +-5 (digital silence, tracking glitches)


# --- geometry -----------------------------------------------------------------------------------------------


def lips_and_eyes(points: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """``[T, 478|68, ≥2]`` landmarks -> ``(lips [T, 20, 2], eyes [T, 2, 2])`` in the canonical order."""
    p = np.asarray(points, dtype=np.float64)[..., :2]
    lips, eyes = {"mediapipe": (MEDIAPIPE_LIPS, MEDIAPIPE_EYES), "ibug": (IBUG_LIPS, IBUG_EYES)}[layout]
    return p[:, list(lips)], p[:, list(eyes)]


def align(lips: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """Lip points in the face-aligned frame: ``[T, 20, 2]`` (origin = eye midpoint, x along the eye line from
    the subject's right eye to the left, y perpendicular (down the face in an upright image), unit = inter-ocular
    distance). Invariant to translating, scaling and rotating the image in-plane."""
    centre = eyes.mean(1, keepdims=True)  # [T,1,2]
    axis = eyes[:, 1] - eyes[:, 0]  # [T,2]
    iod = np.linalg.norm(axis, axis=-1)  # [T]
    ex = axis / np.maximum(iod, 1e-9)[:, None]
    ey = np.stack([-ex[:, 1], ex[:, 0]], -1)  # x rotated by +90 deg: image-down for an upright face
    rel = (lips - centre) / np.maximum(iod, 1e-9)[:, None, None]  # [T,20,2]
    return np.stack([(rel * ex[:, None]).sum(-1), (rel * ey[:, None]).sum(-1)], -1)


def lip_geometry(lips: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """Per-frame geometry ``[T, 44]``: the 40 aligned coordinates, then inner opening, outer height, outer width,
    inner width (all in inter-ocular units). NaN rows stay NaN."""
    a = align(lips, eyes)  # [T,20,2]

    def dist(ij):
        return np.linalg.norm(a[:, ij[0]] - a[:, ij[1]], axis=-1)

    distances = np.stack([dist(_INNER_MIDS), dist(_OUTER_MIDS), dist(_OUTER_CORNERS), dist(_INNER_CORNERS)], -1)
    return np.concatenate([a.reshape(len(a), -1), distances], -1)


def _fill_missing(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Rows where ``ok`` is False linearly interpolated in time from the nearest detected rows (held at the ends)."""
    if ok.all():
        return x
    t = np.arange(len(x))
    return np.stack([np.interp(t, t[ok], x[ok, f]) for f in range(x.shape[1])], 1)


def clip_features(geometry: np.ndarray) -> np.ndarray:
    """Per-clip normalisation of ``lip_geometry`` ``[T, 44]`` -> ``[T, 44]`` float32.

    Frames with no face (NaN) are interpolated; the per-clip median is removed; the 40 coordinates are divided by
    one shared scale (RMS deviation over all of them: keeps which points move most), each distance by its own.
    Raises ValueError when no frame has a face."""
    g = np.asarray(geometry, dtype=np.float64)
    ok = np.isfinite(g).all(1)
    if not ok.any():
        raise ValueError("no frame with a face")
    g = _fill_missing(g, ok)
    g = g - np.median(g[ok], axis=0)
    coords, dists = g[:, : 2 * N_LIPS], g[:, 2 * N_LIPS :]
    coords = coords / max(float(np.sqrt((coords[ok] ** 2).mean())), 1e-4)
    dists = dists / np.maximum(dists[ok].std(0), 1e-4)
    return np.clip(np.concatenate([coords, dists], 1), -FEATURE_CLIP, FEATURE_CLIP).astype(np.float32)


def audio_features(audio: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """SyncNet's MFCCs ``[13, M]`` (100 Hz) normalised per clip: median removed, divided by the inter-quartile
    range / 1.35 (robust std), clipped to +-5 (digital silence makes log energy -36)."""
    m = mfcc_features(audio, sample_rate)  # [13,M]
    q1, med, q3 = np.percentile(m, [25, 50, 75], axis=1, keepdims=True)
    scale = np.maximum((q3 - q1) / 1.35, 1e-3)
    return np.clip((m - med) / scale, -FEATURE_CLIP, FEATURE_CLIP).astype(np.float32)


# --- windows (SyncNet's: video frames i..i+W-1 against MFCC frames 4i..4i+4W-1) -----------------------------------


def n_windows(n_frames: int, n_samples: int, window: int) -> int:
    """``min(T, floor(N / 640)) - W``, SyncNet's count (``sync.window_count`` for W = 5)."""
    return max(min(n_frames, n_samples // SAMPLES_PER_FRAME) - window, 0)


def video_windows(features: np.ndarray, n: int, window: int) -> np.ndarray:
    """``[T, F]`` -> ``[n, F, W]``, window ``i`` = frames ``i..i+W-1``."""
    idx = np.arange(n)[:, None] + np.arange(window)[None, :]  # [n,W]
    return np.ascontiguousarray(features[idx].transpose(0, 2, 1))


def audio_windows(mfcc: np.ndarray, n: int, window: int) -> np.ndarray:
    """``[13, M]`` -> ``[n, 13, 4W]``, window ``i`` = MFCC frames ``4i..4i+4W-1``."""
    span = MFCC_PER_FRAME * window
    need = MFCC_PER_FRAME * (n - 1) + span if n else 0
    if mfcc.shape[1] < need:
        raise ValueError(f"{mfcc.shape[1]} MFCC frames, need {need} for {n} windows")
    idx = MFCC_PER_FRAME * np.arange(n)[:, None] + np.arange(span)[None, :]  # [n,4W]
    return np.ascontiguousarray(mfcc[:, idx].transpose(1, 0, 2))


# --- the network ----------------------------------------------------------------------------------------------


class Tower(nn.Module):
    """``[B, C, L]`` -> ``[B, D]``: two temporal convolutions (the second strided by ``stride`` to W steps),
    then an MLP over the flattened window."""

    def __init__(self, c_in: int, length: int, stride: int, hidden: int, embed_dim: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(c_in, hidden, 3, padding=1), nn.GELU(),
            nn.Conv1d(hidden, hidden, stride, stride=stride), nn.GELU(),
            nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU(),
        )
        self.head = nn.Sequential(nn.Linear(hidden * (length // stride), hidden), nn.GELU(), nn.Linear(hidden, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).flatten(1))


class LandmarkSyncNet(nn.Module):
    """Lip-geometry windows ``[B, 44, W]`` and MFCC windows ``[B, 13, 4W]`` -> L2-comparable ``[B, D]``."""

    def __init__(self, window: int = 5, hidden: int = 64, embed_dim: int = 32):
        super().__init__()
        self.window, self.hidden, self.embed_dim = window, hidden, embed_dim
        self.lips = Tower(N_FEATURES, window, 1, hidden, embed_dim)
        self.audio = Tower(13, MFCC_PER_FRAME * window, MFCC_PER_FRAME, hidden, embed_dim)
        # One constant coordinate appended to both embeddings: it leaves every ||v - a|| unchanged but sets the
        # distance to the zero rows that ``sync.distance_table`` pads beyond the clip's ends (sqrt(|v|^2 + c^2)).
        # Set after training so that a padded comparison costs what a wrong offset costs on average; with c = 0
        # short clips drift to offsets near +-15, where more columns are padding (train_landmark_sync.calibrate_pad_norm).
        self.register_buffer("pad_norm", torch.zeros(1))

    def _with_pad(self, e: torch.Tensor) -> torch.Tensor:
        return torch.cat([e, self.pad_norm.expand(e.shape[0], 1)], 1)  # [B, D+1]

    def embed_lips(self, x: torch.Tensor) -> torch.Tensor:
        return self._with_pad(self.lips(x))

    def embed_audio(self, x: torch.Tensor) -> torch.Tensor:
        return self._with_pad(self.audio(x))


def save_landmark_sync(model: LandmarkSyncNet, path: str | Path, meta: dict) -> Path:
    meta = {**meta, "window": model.window, "hidden": model.hidden, "embed_dim": model.embed_dim}
    return save_small_weights(model, path, meta)


def load_landmark_sync(path: str | Path | None = None) -> LandmarkSyncNet:
    """The shipped landmark SyncNet (``assets/eval/landmark_sync.safetensors``) in eval mode."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS

    def build(meta: dict) -> LandmarkSyncNet:
        return LandmarkSyncNet(int(meta.get("window", 5)), int(meta.get("hidden", 64)), int(meta.get("embed_dim", 32)))

    return load_small_weights(path, build, "landmark SyncNet", "make train-landmark-sync")


# --- scoring ---------------------------------------------------------------------------------------------------


@torch.no_grad()
def embed(model: LandmarkSyncNet, features: np.ndarray, mfcc: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised features ``[T, 44]`` and MFCCs ``[13, M]`` -> embeddings of windows ``0..n-1``: ``(video, audio)``,
    ``[n, D]`` each."""
    v = model.embed_lips(torch.from_numpy(video_windows(features, n, model.window)))
    a = model.embed_audio(torch.from_numpy(audio_windows(mfcc, n, model.window)))
    return v.double().numpy(), a.double().numpy()


@dataclass
class LipTrack:
    """What the scorer needs of a face: canonical lips ``[T, 20, 2]`` and outer eye corners ``[T, 2, 2]`` in
    pixels (NaN where no face), 25 fps."""

    lips: np.ndarray
    eyes: np.ndarray

    @classmethod
    def from_landmarks(cls, points: np.ndarray, layout: str = "mediapipe") -> LipTrack:
        return cls(*lips_and_eyes(points, layout))

    @property
    def detected(self) -> np.ndarray:
        return np.isfinite(self.lips).all((1, 2)) & np.isfinite(self.eyes).all((1, 2))

    def features(self) -> np.ndarray:
        return clip_features(lip_geometry(self.lips, self.eyes))


def evaluate_lips(model: LandmarkSyncNet, track: LipTrack, audio: np.ndarray, vshift: int = VSHIFT,
                  start_frame: int = 0) -> SyncResult:
    """Offset, Sync-C, Sync-D of one lip track against its audio (16 kHz mono from the track's first frame)."""
    n = n_windows(len(track.lips), len(audio), model.window)
    if n <= 0 or not track.detected.any():
        raise ValueError(f"track too short or faceless for lip sync: {len(track.lips)} frames, "
                         f"{int(track.detected.sum())} with a face, {len(audio)} samples")
    video_emb, audio_emb = embed(model, track.features(), audio_features(audio), n)
    return SyncResult.from_dists(distance_table(video_emb, audio_emb, vshift), start_frame)


def evaluate_frames(model: LandmarkSyncNet, frames_rgb: np.ndarray, audio: np.ndarray, vshift: int = VSHIFT,
                    start_frame: int = 0) -> SyncResult:
    """Face mesh on ``frames_rgb`` ``[T, H, W, 3]`` (one face, 25 fps) then :func:`evaluate_lips`."""
    from avatarv.media.face_mesh import face_mesh

    return evaluate_lips(model, LipTrack.from_landmarks(face_mesh(frames_rgb).points), audio, vshift, start_frame)


def evaluate_landmark_video(source, model: LandmarkSyncNet | None = None, min_track: int = 50, vshift: int = VSHIFT):
    """The Sync-C backend for real faces: a video file (or decoded ``Video``) -> ``sync_video.VideoSyncResult``.

    mediapipe FaceMesh (one face) on every frame; each run of >= ``min_track`` frames with a face is a track,
    scored by :func:`evaluate_lips`; the video's numbers are the window-weighted means, as for SyncNet. Raises
    ``InputError`` when the video has no audio or no face run that long."""
    from avatarv.errors import InputError
    from avatarv.eval.inputs import as_video
    from avatarv.eval.sync_video import VideoSyncResult
    from avatarv.media.face_mesh import face_mesh

    model = model if model is not None else load_landmark_sync()
    video = as_video(source, require_audio=True)
    lips = LipTrack.from_landmarks(face_mesh(video.frames).points)
    result = VideoSyncResult(source=str(video.source))
    m = np.concatenate([[False], lips.detected, [False]]).astype(np.int8)
    starts, stops = np.flatnonzero(np.diff(m) == 1), np.flatnonzero(np.diff(m) == -1)
    for a, b in zip(starts, stops, strict=True):
        if b - a < max(min_track, model.window + 1):
            continue
        audio = video.audio[a * SAMPLES_PER_FRAME : b * SAMPLES_PER_FRAME]
        if n_windows(b - a, len(audio), model.window) > 0:
            result.tracks.append(evaluate_lips(model, LipTrack(lips.lips[a:b], lips.eyes[a:b]), audio, vshift, int(a)))
    if not result.tracks:
        raise InputError(f"no run of >= {min_track} frames with a face (face mesh found one in "
                         f"{int(lips.detected.sum())} of {video.num_frames} frames)", video.source)
    return result

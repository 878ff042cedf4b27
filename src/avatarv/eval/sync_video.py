"""Sync-C / Sync-D of a whole video: face tracks -> SyncNet crops -> per-track scores (the public
``run_pipeline.py`` then ``run_syncnet.py``, in memory instead of through temporary avi/wav files).

A video may hold several face tracks (cuts, several people); ``run_syncnet.py`` reports each. Our video-level
numbers are the means over tracks weighted by their window counts (one track: its own numbers), and every
track is listed beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avatarv.errors import InputError
from avatarv.eval.face_tracks import MIN_FACE_SIZE, MIN_TRACK, FaceTrack, crop_track, track_faces
from avatarv.eval.faces import DlibHogDetector, FaceDetector
from avatarv.eval.inputs import as_video
from avatarv.eval.sync import SAMPLES_PER_FRAME, VSHIFT, SyncResult, evaluate_track
from avatarv.eval.syncnet import SyncNet
from avatarv.media import Video


@dataclass
class VideoSyncResult:
    """Per-track SyncNet results of one video and their window-weighted means."""

    tracks: list[SyncResult] = field(default_factory=list)
    source: str = ""

    @property
    def n_windows(self) -> int:
        return sum(t.n_windows for t in self.tracks)

    def _mean(self, attr: str) -> float:
        if not self.tracks:
            return float("nan")
        w = np.array([t.n_windows for t in self.tracks], dtype=np.float64)
        v = np.array([getattr(t, attr) for t in self.tracks], dtype=np.float64)
        return float((w * v).sum() / w.sum())

    @property
    def sync_c(self) -> float:
        return self._mean("sync_c")

    @property
    def sync_d(self) -> float:
        return self._mean("sync_d")

    @property
    def offset(self) -> int | None:
        """The offset of the longest track (offsets are not averaged)."""
        return max(self.tracks, key=lambda t: t.n_windows).offset if self.tracks else None

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "sync_c": self.sync_c,
            "sync_d": self.sync_d,
            "offset": self.offset,
            "n_tracks": len(self.tracks),
            "n_windows": self.n_windows,
            "tracks": [t.to_json() for t in self.tracks],
        }


def face_tracks(
    video: Video,
    detector: FaceDetector | None = None,
    detect_every: int = 1,
    min_track: int = MIN_TRACK,
    min_face_size: float = MIN_FACE_SIZE,
    shot_starts=(),
) -> list[FaceTrack]:
    """Detect (every ``detect_every``-th frame) and track faces; dlib HOG unless a detector is given."""
    detector = detector or DlibHogDetector()
    detections = detector.detect_video(video.frames, every=detect_every)
    return track_faces(detections, min_track=min_track, min_face_size=min_face_size, shot_starts=shot_starts)


def evaluate_sync_video(
    source: str | Path | Video,
    model: SyncNet,
    detector: FaceDetector | None = None,
    tracks: list[FaceTrack] | None = None,
    detect_every: int = 1,
    min_track: int = MIN_TRACK,
    min_face_size: float = MIN_FACE_SIZE,
    vshift: int = VSHIFT,
) -> VideoSyncResult:
    """SyncNet offset / Sync-C / Sync-D of a video file (or decoded ``Video``) at 25 fps with 16 kHz audio.

    ``tracks``: face tracks to use instead of detecting (e.g. from the world's labels). Raises ``InputError``
    when the video has no audio or no face track long enough.
    """
    video = as_video(source, require_audio=True)
    if tracks is None:
        tracks = face_tracks(video, detector, detect_every, min_track, min_face_size)
    if not tracks:
        raise InputError(
            f"no face track of >= {min_track} frames with faces > {min_face_size:g} px "
            f"({video.num_frames} frames, {video.size[0]}x{video.size[1]})",
            video.source,
        )
    assert video.audio is not None
    result = VideoSyncResult(source=str(video.source))
    for track in tracks:
        crops = crop_track(video.frames, track)
        audio = video.audio[track.start * SAMPLES_PER_FRAME : track.stop * SAMPLES_PER_FRAME]
        result.tracks.append(evaluate_track(model, crops, audio, vshift=vshift, start_frame=track.start))
    return result

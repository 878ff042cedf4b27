"""``write_mp4``: frames (+ audio) → an h264/AAC mp4, atomically.

The file is encoded under a hidden temporary name in the destination folder and renamed over the final
name with ``os.replace`` (atomic on POSIX within one file system), so a reader, a crashed run or a
curation executor never sees a half-written ``out.mp4``: either the old file or the complete new one.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np

from avatarv.media.audio import SAMPLE_RATE
from avatarv.media.encoder import Mp4Encoder, check_audio, check_frames


def temp_path_for(path: Path) -> Path:
    """A unique hidden sibling of ``path`` (same folder, so ``os.replace`` is a rename, not a copy)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def write_mp4(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    crf: int = 18,
    preset: str = "veryfast",
) -> Path:
    """Write ``frames`` [T, H, W, 3] uint8 RGB at ``fps`` and optional ``audio`` [N] float32 mono.

    h264 (libx264, yuv420p, ``crf``/``preset``) + AAC. The frame size must be even (yuv420p).
    Returns the path. On any error no file is left at ``path`` (nor a temporary beside it).
    """
    path = Path(path)
    frames = check_frames(frames)
    audio = check_audio(audio)
    if frames.shape[0] == 0:
        raise ValueError("no frames to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    height, width = frames.shape[1:3]
    encoder = None
    try:
        encoder = Mp4Encoder(tmp, fps, width, height, sample_rate if audio is not None else None, crf, preset)
        # One-second spans of video then audio keep the two streams interleaved in the file.
        step = max(1, int(round(fps)))
        for start in range(0, frames.shape[0], step):
            stop = min(start + step, frames.shape[0])
            chunk_audio = None
            if audio is not None:
                a0 = int(round(start / fps * sample_rate))
                a1 = audio.size if stop == frames.shape[0] else int(round(stop / fps * sample_rate))
                chunk_audio = audio[a0:a1]
            encoder.append(frames[start:stop], chunk_audio)
        encoder.close()
        encoder = None
        os.replace(tmp, path)
    finally:
        if encoder is not None:
            encoder.abort()
        tmp.unlink(missing_ok=True)
    return path

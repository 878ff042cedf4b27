"""Turning what a caller hands the evaluators (a path or an already decoded ``Video``) into a ``Video``."""

from __future__ import annotations

from pathlib import Path

from avatarv.errors import InputError
from avatarv.media import Video, read_video

EVAL_FPS = 25.0  # every metric here reads video at 25 fps (SyncNet's rate)


def as_video(source: str | Path | Video, require_audio: bool = False, fps: float = EVAL_FPS) -> Video:
    """``Video`` at ``fps`` from a path (decoded by ``avatarv.media.read_video``) or a ``Video`` (checked)."""
    if isinstance(source, Video):
        video = source
        if abs(video.fps - fps) > 1e-6:
            raise InputError(f"video is at {video.fps:g} fps, the evaluation needs {fps:g} (read it with fps={fps:g})", video.source)
        if require_audio and video.audio is None:
            raise InputError("no audio stream (Sync-C/Sync-D need the speech in the video)", video.source)
        return video
    path = Path(source)
    video = read_video(path, fps=fps, require_audio=require_audio)
    if video.num_frames == 0:
        raise InputError("no video frames", path)
    return video

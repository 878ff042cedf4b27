"""Pick a few upright frames spread over a video, by seeking (cheap on long files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avatarv.errors import InputError
from avatarv.media.container import media_errors, open_input, video_streams
from avatarv.media.rotation import apply_rotation, frame_rotation


def sample_frames(path: str | Path, count: int = 5) -> list[tuple[float, np.ndarray]]:
    """``count`` frames at evenly spaced times (``(k + 0.5) / count`` of the duration).

    Returns ``(seconds, [H, W, 3] uint8 RGB upright)`` pairs; fewer if the video is shorter.
    """
    container = open_input(path)
    try:
        videos = video_streams(container)
        if not videos:
            raise InputError("no video stream (expected a video file)", path)
        stream = videos[0]
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1e6
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        targets = [start + (k + 0.5) / count * duration for k in range(count)] if duration else [start]
        picked: list[tuple[float, np.ndarray]] = []
        with media_errors(path):
            for target in targets:
                container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
                for frame in container.decode(stream):
                    if frame.time is None or frame.time + 1e-4 >= target:
                        rgb = apply_rotation(frame.to_ndarray(format="rgb24"), frame_rotation(frame))
                        picked.append((float(frame.time or 0.0), rgb))
                        break
        if not picked:
            raise InputError("no video frame could be decoded (corrupt video)", path)
        return picked
    finally:
        container.close()

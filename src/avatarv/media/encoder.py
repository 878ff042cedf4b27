"""One h264 + AAC mp4 encoder behind both writers (``write_mp4`` and ``StreamingMp4Writer``).

Video: libx264, yuv420p (what every player decodes), CRF quality. Audio: AAC mono at the given rate.
Frames and audio are appended in matching time spans so the muxer interleaves them closely.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from avatarv.media.audio import SAMPLE_RATE


def fps_fraction(fps: float) -> Fraction:
    """25 → 25/1, 29.97 → 30000/1001: an exact rational the codec time base can hold."""
    return Fraction(fps).limit_denominator(1001)


def check_frames(frames: np.ndarray, width: int | None = None, height: int | None = None) -> np.ndarray:
    """Validate ``[T, H, W, 3]`` uint8 RGB (a single ``[H, W, 3]`` frame is promoted to T = 1)."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3] RGB, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be uint8, got {frames.dtype} (convert with (x * 255).round().clip(0, 255))"
        )
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise ValueError(f"h264 yuv420p needs an even frame size, got {w}x{h}")
    if (width is not None and w != width) or (height is not None and h != height):
        raise ValueError(f"frames are {w}x{h}, the writer was opened for {width}x{height}")
    return frames


def check_audio(audio: np.ndarray | None) -> np.ndarray | None:
    """Validate ``[N]`` mono float audio; returns float32 clipped to [-1, 1]."""
    if audio is None:
        return None
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono [N], got shape {audio.shape} (downmix with .mean(axis=...))")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be float in [-1, 1], got {audio.dtype}")
    return np.clip(audio, -1.0, 1.0).astype(np.float32, copy=False)


class Mp4Encoder:
    """Encode RGB frames (+ mono audio) into an mp4 container opened on ``target``.

    ``movflags`` selects the mp4 layout: ``None`` for a regular file (moov at the end), or
    ``"frag_keyframe+empty_moov+default_base_moof"`` for a fragmented file that plays while it grows.
    """

    def __init__(
        self,
        target: str | Path,
        fps: float,
        width: int,
        height: int,
        sample_rate: int | None = SAMPLE_RATE,
        crf: int = 18,
        preset: str = "veryfast",
        movflags: str | None = None,
        x264_options: dict[str, str] | None = None,
        container_options: dict[str, str] | None = None,
    ):
        self.fps = fps_fraction(fps)
        self.width, self.height = width, height
        self.sample_rate = sample_rate
        options: dict[str, Any] = dict(container_options or {})
        if movflags:
            options["movflags"] = movflags
        self.container = av.open(str(target), mode="w", format="mp4", options=options)
        # bitexact: no library version strings in the file, so the same input gives the same bytes.
        self.container.flags |= av.container.Flags.bitexact.value
        self.video = self.container.add_stream("libx264", rate=self.fps)
        self.video.width, self.video.height = width, height
        self.video.pix_fmt = "yuv420p"
        self.video.codec_context.time_base = 1 / self.fps
        self.video.options = {"crf": str(crf), "preset": preset, **(x264_options or {})}
        self.audio = None
        if sample_rate is not None:
            self.audio = self.container.add_stream("aac", rate=sample_rate, layout="mono")
            self.audio.codec_context.time_base = Fraction(1, sample_rate)
        self.frames_written = 0
        self.samples_written = 0

    def append(self, frames: np.ndarray, audio: np.ndarray | None = None, keyframe: bool = False) -> None:
        """Encode ``frames`` [T, H, W, 3] uint8 and ``audio`` [N] float32 (appended in that order)."""
        frames = check_frames(frames, self.width, self.height)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = self.frames_written
            if keyframe and i == 0:
                frame.pict_type = av.video.frame.PictureType.I
            self.container.mux(self.video.encode(frame))
            self.frames_written += 1
        audio = check_audio(audio)
        if audio is not None and audio.size:
            if self.audio is None:
                raise ValueError("audio given but the writer was opened without audio (sample_rate=None)")
            frame = av.AudioFrame.from_ndarray(audio[None, :], format="fltp", layout="mono")
            frame.sample_rate = self.sample_rate
            frame.pts = self.samples_written
            frame.time_base = Fraction(1, self.sample_rate)
            self.container.mux(self.audio.encode(frame))
            self.samples_written += audio.size

    def close(self) -> None:
        """Flush the encoders and finish the file."""
        self.container.mux(self.video.encode(None))
        if self.audio is not None:
            self.container.mux(self.audio.encode(None))
        self.container.close()

    def abort(self) -> None:
        """Close without flushing (after an error); the output is incomplete and must be discarded."""
        try:
            self.container.close()
        except Exception:  # the file is being discarded anyway
            pass

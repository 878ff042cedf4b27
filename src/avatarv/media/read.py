"""Reading video and audio into numpy: the one place media enters avatarv.

``read_video`` returns frames on a regular time grid (``k / fps``) whatever the source does: variable
frame rate phones, 30/60 fps webcams and 24 fps film all become 25 fps by *sample and hold* on
presentation timestamps (for output time ``t`` take the latest source frame with ``pts ≤ t``), which is
what a player shows at that instant. Rotation metadata is applied so faces come out upright, and the
audio track comes back as 16 kHz mono aligned to the first video frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from avatarv.errors import InputError
from avatarv.media.audio import SAMPLE_RATE, MonoAccumulator, resample
from avatarv.media.container import check_not_truncated, check_size, media_errors, open_input, video_streams
from avatarv.media.rotation import apply_rotation, frame_rotation, rotated_size

# Two timestamps closer than this are the same instant (mp4 time bases are ≥ 1/90000 s; float rounding).
_EPS = 1e-4
# Decoded audio longer than the header says by less than this is codec padding (AAC: 1024-sample frames).
_ENCODER_PADDING_S = 0.15


@dataclass
class Video:
    """Decoded video on a regular time grid, with its audio.

    ``frames[k]`` is shown at ``k / fps`` seconds; ``audio[n]`` is at ``n / sample_rate`` seconds on the
    same clock (sample 0 is the instant of frame 0), so ``audio`` is lip-synced to ``frames``.
    """

    frames: np.ndarray  # [T, H, W, 3] uint8 RGB, upright
    fps: float
    audio: np.ndarray | None  # [N] float32 mono in [-1, 1], or None when the file has no audio
    sample_rate: int = SAMPLE_RATE
    source: Path = field(default_factory=Path)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration(self) -> float:
        """Seconds covered by the frames (``T / fps``)."""
        return self.num_frames / self.fps

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])


def read_video(
    path: str | Path,
    fps: float = 25.0,
    max_frames: int | None = None,
    size: int | tuple[int, int] | None = None,
    sample_rate: int = SAMPLE_RATE,
    require_audio: bool = False,
) -> Video:
    """Read a video file as upright RGB frames at ``fps`` plus mono audio at ``sample_rate``.

    ``size``: ``(width, height)`` to resize every frame to, or an int to scale the shorter side to
    that many pixels keeping the aspect ratio (both rounded to even), or None to keep the source size.
    ``max_frames``: stop after that many output frames (the audio is cut to the same duration).
    ``require_audio``: raise ``InputError`` if the file has no audio stream (speech expected in it).
    Audio is cut to the video's duration and starts at frame 0's instant (zero-padded if it starts later).
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    container = open_input(path)
    path = Path(path)
    try:
        return _read_video(container, path, fps, max_frames, size, sample_rate, require_audio)
    finally:
        container.close()


def _read_video(container, path, fps, max_frames, size, sample_rate, require_audio) -> Video:
    videos = video_streams(container)
    if not videos:
        raise InputError("no video stream (expected a video file)", path)
    vstream = videos[0]
    astream = container.streams.audio[0] if container.streams.audio else None
    if require_audio and astream is None:
        raise InputError("no audio stream (expected speech in the video)", path)
    check_size(vstream.codec_context.width, vstream.codec_context.height, path)
    vstream.thread_type = "AUTO"

    grid = _FrameGrid(fps, max_frames, size)
    audio = MonoAccumulator() if astream is not None else None
    streams = [vstream] + ([astream] if astream is not None else [])
    with media_errors(path):
        # demux() ends with an empty packet per stream, whose decode() drains the decoder's delayed frames.
        for packet in container.demux(streams):
            if packet.stream is vstream and not grid.done:
                for frame in packet.decode():
                    grid.push(frame)
            elif audio is not None and packet.stream is astream:
                for frame in packet.decode():
                    audio.add(frame)
            if grid.done and (audio is None or grid.start is None or audio.end_time >= grid.end_time + 0.1):
                break
        frames = grid.finish()
    if frames.shape[0] == 0:
        raise InputError("no video frames could be decoded (zero-length or corrupt video)", path)
    if max_frames is None:
        check_not_truncated(
            path,
            "video",
            grid.source_end_time - (grid.start or 0.0),
            _declared_duration(vstream, container),
            container,
        )

    wave = None
    if audio is not None:
        mono = audio.mono()
        if audio.rate is not None and mono.size:
            # Align to frame 0: drop audio before it, zero-pad if audio starts later.
            shift = int(round(((audio.start_time or 0.0) - (grid.start or 0.0)) * audio.rate))
            mono = mono[-shift:] if shift < 0 else np.concatenate([np.zeros(shift, np.float32), mono])
            wave = resample(mono, audio.rate, sample_rate)
            wave = wave[: int(round(frames.shape[0] / fps * sample_rate))]
        else:
            wave = np.zeros(0, np.float32)
        if require_audio and wave.size == 0:
            raise InputError("audio stream has no samples (expected speech in the video)", path)
    return Video(frames=frames, fps=float(fps), audio=wave, sample_rate=sample_rate, source=path)


class _FrameGrid:
    """Sample-and-hold of decoded frames onto the output grid ``t_k = start + k / fps``.

    Frames arrive in presentation order. A frame is converted to RGB only if some grid point picks
    it, and at most once, so downsampling 60 → 25 fps skips the colour conversion of dropped frames.
    """

    def __init__(self, fps: float, max_frames: int | None, size: int | tuple[int, int] | None):
        self.fps = fps
        self.max_frames = max_frames
        self.size = size
        self.start: float | None = None  # seconds, pts of the first frame
        self.out: list[np.ndarray] = []  # each [H, W, 3] uint8
        self._held: av.VideoFrame | None = None
        self._held_rgb: np.ndarray | None = None
        self._held_time = 0.0
        self._last_step = 1.0 / fps  # seconds between the last two source frames
        self._last_duration: float | None = None
        self.done = False

    @property
    def end_time(self) -> float:
        """Seconds (absolute): instant just after the last output frame."""
        return (self.start or 0.0) + len(self.out) / self.fps

    @property
    def source_end_time(self) -> float:
        """Seconds (absolute): when the held source frame stops being shown."""
        duration = self._last_duration if self._last_duration else self._last_step
        return self._held_time + duration

    def push(self, frame: av.VideoFrame) -> None:
        t = frame.time
        if t is None:  # no timestamps: assume a constant rate
            t = self._held_time + self._last_step if self._held is not None else 0.0
        t = float(t)
        if self.start is None:
            self.start = t
        if self._held is not None:
            if t <= self._held_time:  # out-of-order or duplicate timestamp: keep the newer picture
                t = self._held_time
            else:
                self._last_step = t - self._held_time
            self._emit_until(t)
        self._held, self._held_rgb, self._held_time = frame, None, t
        self._last_duration = (
            float(frame.duration * frame.time_base) if frame.duration and frame.time_base else None
        )

    def _emit_until(self, t: float) -> None:
        """Emit grid points strictly before ``t`` (those whose latest frame is the held one)."""
        while not self.done and self.start + len(self.out) / self.fps < t - _EPS:
            if self._held_rgb is None:
                self._held_rgb = self._convert(self._held)
            self.out.append(self._held_rgb)
            if self.max_frames is not None and len(self.out) >= self.max_frames:
                self.done = True

    def _convert(self, frame: av.VideoFrame) -> np.ndarray:
        rotation = frame_rotation(frame)
        if self.size is None:
            rgb = frame.to_ndarray(format="rgb24")  # [h, w, 3]
        else:
            out_w, out_h = _target_size(self.size, *rotated_size(frame.width, frame.height, rotation))
            # Resize in stored orientation (swap for ±90°), then rotate: one resample, no transpose of a big frame.
            w, h = (out_h, out_w) if rotation % 180 else (out_w, out_h)
            shrinking = w * h < frame.width * frame.height
            rgb = frame.reformat(
                w, h, format="rgb24", interpolation="AREA" if shrinking else "BICUBIC"
            ).to_ndarray()
        return apply_rotation(rgb, rotation)

    def finish(self) -> np.ndarray:
        if self._held is not None and not self.done:
            self._emit_until(self.source_end_time)
        if not self.out:
            return np.zeros((0, 0, 0, 3), np.uint8)
        return np.stack(self.out)  # [T, H, W, 3]


def _target_size(size: int | tuple[int, int], width: int, height: int) -> tuple[int, int]:
    """``(w, h)`` for a requested size: exact pair, or shorter side = ``size`` (even, aspect kept)."""
    if isinstance(size, tuple | list):
        return int(size[0]), int(size[1])
    scale = size / min(width, height)
    return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))


def _declared_duration(stream: av.stream.Stream, container: av.container.InputContainer) -> float | None:
    """Seconds the header says the stream lasts, or None if it does not say."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1e6
    return None


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read the (first) audio stream of any audio or video file as ``[N]`` float32 mono at ``sample_rate``."""
    container = open_input(path)
    path = Path(path)
    try:
        if not container.streams.audio:
            raise InputError("no audio stream (expected speech)", path)
        astream = container.streams.audio[0]
        audio = MonoAccumulator()
        with media_errors(path):
            for frame in container.decode(astream):
                audio.add(frame)
            mono = audio.mono()
        if mono.size == 0 or audio.rate is None:
            raise InputError("audio stream has no samples (zero-length audio)", path)
        declared = _declared_duration(astream, container)
        check_not_truncated(path, "audio", mono.size / audio.rate, declared, container)
        if declared is not None and 0 < mono.size / audio.rate - declared < _ENCODER_PADDING_S:
            # AAC/MP3 decoders return whole codec frames; the header knows where the real end is.
            mono = mono[: int(round(declared * audio.rate))]
        return resample(mono, audio.rate, sample_rate)
    finally:
        container.close()

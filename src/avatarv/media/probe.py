"""``probe``: what a media file holds (streams, timing, size, rotation, audio layout) without decoding it all.

Only packet headers are scanned (no decoding), plus one decoded video frame to read the display
rotation and prove the stream decodes. Frame-rate facts come from the packets themselves, because
headers lie about variable-frame-rate phone footage: ``avg_frame_rate`` is frames / duration,
``real_frame_rate`` FFmpeg's guess of the base rate, and ``vfr`` is True when packet intervals vary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from avatarv.errors import InputError
from avatarv.media.container import (
    check_not_truncated,
    is_attached_picture,
    media_errors,
    open_input,
    video_streams,
)
from avatarv.media.rotation import frame_rotation, rotated_size

# Packets scanned per stream for timing (≈ 6 min at 25 fps); enough to see VFR, cheap to demux.
_MAX_SCAN_PACKETS = 10_000


@dataclass
class StreamInfo:
    """One stream of a container."""

    index: int
    kind: str  # "video" | "audio" | "subtitle" | "data" | ...
    codec: str
    attached_picture: bool = False  # cover art (a still image), not a video
    duration: float | None = None  # seconds, from the header
    # video
    width: int | None = None  # coded (stored) size
    height: int | None = None
    pix_fmt: str | None = None
    avg_frame_rate: float | None = None
    real_frame_rate: float | None = None
    # audio
    sample_rate: int | None = None
    channels: int | None = None
    channel_layout: str | None = None


@dataclass
class MediaInfo:
    """Summary of a media file; video fields describe the first video stream, audio the first audio."""

    path: Path
    format: str
    duration: float | None  # seconds: the longest stream, measured from packets where possible
    size_bytes: int
    bit_rate: int | None
    streams: list[StreamInfo] = field(default_factory=list)
    has_video: bool = False
    has_audio: bool = False
    video_codec: str | None = None
    width: int | None = None  # as displayed (rotation applied)
    height: int | None = None
    rotation: int = 0  # degrees counter-clockwise applied for display (0, 90, 180, 270)
    fps: float | None = None  # frames per second, from packet timestamps (median interval)
    avg_frame_rate: float | None = None  # header: frames / duration
    real_frame_rate: float | None = None  # header: FFmpeg's lowest rate that represents all timestamps
    vfr: bool = False  # packet intervals vary: variable frame rate
    num_frames: int | None = None  # video packets counted (None if the scan stopped early)
    video_duration: float | None = None
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    audio_duration: float | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict (paths as strings)."""
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def probe(path: str | Path) -> MediaInfo:
    """Describe a media file. Raises ``InputError`` if it is missing, not media, or corrupt."""
    container = open_input(path)
    path = Path(path)
    try:
        return _probe(container, path)
    finally:
        container.close()


def _probe(container, path: Path) -> MediaInfo:
    info = MediaInfo(
        path=path,
        format=container.format.name,
        duration=container.duration / 1e6 if container.duration is not None else None,
        size_bytes=path.stat().st_size,
        bit_rate=container.bit_rate or None,
    )
    for stream in container.streams:
        info.streams.append(_stream_info(stream))
    videos = video_streams(container)
    video = videos[0] if videos else None
    audio = container.streams.audio[0] if container.streams.audio else None
    info.has_video, info.has_audio = video is not None, audio is not None

    with media_errors(path, "reading packets"):
        times = _packet_times([s for s in (video, audio) if s is not None], container)
    if video is not None:
        vinfo = info.streams[video.index]
        info.video_codec = vinfo.codec
        info.avg_frame_rate, info.real_frame_rate = vinfo.avg_frame_rate, vinfo.real_frame_rate
        starts, ends, complete = times[video.index]
        if not starts:
            raise InputError("video stream has no frames (zero-length video)", path)
        info.num_frames = len(starts) if complete else None
        info.fps, info.vfr = _frame_rate(np.sort(np.asarray(starts)))
        info.video_duration = max(ends) - min(starts)
        if complete:
            check_not_truncated(path, "video", info.video_duration, vinfo.duration, container)
        info.rotation = _first_frame_rotation(path, video.index)
        info.width, info.height = rotated_size(vinfo.width or 0, vinfo.height or 0, info.rotation)
    if audio is not None:
        ainfo = info.streams[audio.index]
        info.audio_codec, info.audio_sample_rate = ainfo.codec, ainfo.sample_rate
        info.audio_channels = ainfo.channels
        starts, ends, _ = times[audio.index]
        info.audio_duration = max(ends) - min(starts) if starts else 0.0
        if times[audio.index][2]:
            check_not_truncated(path, "audio", info.audio_duration, ainfo.duration, container)
    measured = [d for d in (info.video_duration, info.audio_duration) if d]
    if measured:
        info.duration = max(measured)
    return info


def _stream_info(stream) -> StreamInfo:
    ctx = stream.codec_context
    out = StreamInfo(
        index=stream.index,
        kind=stream.type,
        codec=ctx.codec.canonical_name if ctx is not None else "unknown",  # "mp3", not decoder "mp3float"
        duration=float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None,
    )
    if stream.type == "video":
        out.attached_picture = is_attached_picture(stream)
        out.width, out.height = ctx.width, ctx.height
        out.pix_fmt = ctx.pix_fmt
        out.avg_frame_rate = float(stream.average_rate) if stream.average_rate else None
        out.real_frame_rate = float(stream.base_rate) if stream.base_rate else None
    elif stream.type == "audio":
        out.sample_rate = ctx.sample_rate
        out.channels = ctx.channels if hasattr(ctx, "channels") else len(ctx.layout.channels)
        out.channel_layout = ctx.layout.name
    return out


def _packet_times(streams, container) -> dict[int, tuple[list[float], list[float], bool]]:
    """Per stream index: packet start times, end times (seconds) and whether all packets were seen."""
    times: dict[int, tuple[list[float], list[float], bool]] = {s.index: ([], [], True) for s in streams}
    for packet in container.demux(streams):
        if packet.size == 0 or packet.pts is None:
            continue
        starts, ends, _ = times[packet.stream.index]
        if len(starts) >= _MAX_SCAN_PACKETS:
            times[packet.stream.index] = (starts, ends, False)
            if all(len(t[0]) >= _MAX_SCAN_PACKETS for t in times.values()):
                break
            continue
        start = float(packet.pts * packet.time_base)
        starts.append(start)
        ends.append(start + float((packet.duration or 0) * packet.time_base))
    return times


def _frame_rate(starts: np.ndarray) -> tuple[float | None, bool]:
    """``(fps, vfr)`` from sorted frame start times: median interval, and whether intervals vary > 10 %."""
    if starts.size < 2:
        return None, False
    steps = np.diff(starts)
    steps = steps[steps > 0]
    if steps.size == 0:
        return None, False
    median = float(np.median(steps))
    # Timestamps are rounded to the time base (e.g. 1/1000 s for 30000/1001 fps in some files): allow 10 %.
    vfr = bool(np.any(np.abs(steps - median) > 0.1 * median))
    return round(1.0 / median, 3), vfr


def _first_frame_rotation(path: Path, index: int) -> int:
    """Rotation of the first decodable frame (a fresh open: the packet scan has consumed the file)."""
    container = open_input(path)
    try:
        with media_errors(path, "decoding the first frame"):
            for frame in container.decode(container.streams[index]):
                return frame_rotation(frame)
    finally:
        container.close()
    raise InputError("no video frame could be decoded (corrupt video)", path)

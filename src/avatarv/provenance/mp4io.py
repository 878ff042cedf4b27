"""Rewriting an mp4 for provenance: re-encode its video frame by frame (audio packets copied as they are),
or remux it (``-c copy``), with container metadata added; always to a temporary file renamed over the
destination, so a reader never sees a half-written output and ``src == dst`` is allowed.

Fragmented MP4 (what ``StreamingMp4Writer`` writes) comes out as a regular mp4 with ``moov`` first
(``+faststart``). Custom keys such as ``avatarv_watermark`` are only kept by the mp4 muxer with
``use_metadata_tags`` (they land in ``moov/udta/meta``, readable by ffprobe and PyAV).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np

from avatarv.errors import InputError
from avatarv.media.container import media_errors, open_input, video_streams
from avatarv.media.write import temp_path_for

_MOVFLAGS = "+faststart+use_metadata_tags"


def _video_stream(container, path: Path):
    streams = video_streams(container)
    if not streams:
        container.close()
        raise InputError("no video stream", path)
    return streams[0]


def iter_frames(path: str | Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Decoded ``[H, W, 3]`` uint8 RGB frames of the first video stream, as stored (no resampling)."""
    path = Path(path)
    container = open_input(path)
    try:
        stream = _video_stream(container, path)
        with media_errors(path):
            for n, frame in enumerate(container.decode(stream)):
                if max_frames is not None and n >= max_frames:
                    return
                yield frame.to_ndarray(format="rgb24")
    finally:
        container.close()


def read_metadata(path: str | Path) -> dict[str, str]:
    """The container's metadata tags (``{}`` when it has none)."""
    container = open_input(path)
    try:
        return dict(container.metadata)
    finally:
        container.close()


def rewrite_mp4(src: str | Path, dst: str | Path, metadata: dict[str, str],
                frame_fn: Callable[[np.ndarray], np.ndarray] | None = None, crf: int = 18,
                preset: str = "veryfast") -> Path:
    """Copy ``src`` to ``dst`` with ``metadata`` added. With ``frame_fn`` ([H, W, 3] uint8 → same) the video
    is decoded, passed through it and re-encoded (h264 ``crf``, timestamps kept); without it every stream
    is copied. Audio is always copied packet for packet."""
    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() != ".mp4":
        raise InputError("the output must be an .mp4 file", dst)
    inp = open_input(src)
    tmp = temp_path_for(dst)
    try:
        vin = _video_stream(inp, src)
        ain = inp.streams.audio[0] if inp.streams.audio else None
        out = av.open(str(tmp), mode="w", format="mp4", options={"movflags": _MOVFLAGS})
        try:
            out.metadata.update({k: v for k, v in inp.metadata.items() if k not in ("encoder", "major_brand",
                                                                                    "minor_version",
                                                                                    "compatible_brands")})
            out.metadata.update(metadata)
            if frame_fn is None:
                vout = out.add_stream_from_template(vin)
            else:
                vout = out.add_stream("libx264", rate=vin.average_rate or 25)
                vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
                vout.pix_fmt = "yuv420p"
                vout.time_base = vin.time_base
                vout.options = {"crf": str(crf), "preset": preset}
            aout = out.add_stream_from_template(ain) if ain is not None else None
            with media_errors(src):
                for packet in inp.demux([s for s in (vin, ain) if s is not None]):
                    if packet.stream is ain or (frame_fn is None and packet.stream is vin):
                        if packet.dts is None:  # the demuxer's flush packet
                            continue
                        packet.stream = aout if packet.stream is ain else vout
                        out.mux(packet)
                        continue
                    for frame in packet.decode():
                        marked = av.VideoFrame.from_ndarray(frame_fn(frame.to_ndarray(format="rgb24")), "rgb24")
                        marked.pts, marked.time_base = frame.pts, frame.time_base
                        out.mux(vout.encode(marked.reformat(format="yuv420p")))
                if frame_fn is not None:
                    out.mux(vout.encode(None))
        finally:
            out.close()
        os.replace(tmp, dst)
    finally:
        inp.close()
        tmp.unlink(missing_ok=True)
    return dst

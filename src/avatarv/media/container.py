"""Opening media files for reading, with every failure turned into one ``InputError`` naming the file.

PyAV raises a zoo of exceptions (``FileNotFoundError``, ``av.error.InvalidDataError``, ``EOFError``,
``av.error.ValueError`` ...) whose messages read like FFmpeg internals. Everything that reads media goes
through :func:`open_input` and :func:`media_errors` so a person sees ``avatarv: clip.mp4: not a media file``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import av

from avatarv.errors import InputError

# Frames smaller than this cannot hold a face; larger than this are almost surely a corrupt header
# (8K UHD is 7680 px wide) and would need gigabytes to decode.
MIN_SIDE = 8
MAX_SIDE = 8192


def check_file(path: str | Path) -> Path:
    """The path as ``Path`` if it names a non-empty regular file, else ``InputError``."""
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", p)
    if p.is_dir():
        raise InputError("is a directory, expected a media file", p)
    if not os.access(p, os.R_OK):
        raise InputError("not readable (permission denied)", p)
    if p.stat().st_size == 0:
        raise InputError("empty file (0 bytes)", p)
    return p


def open_input(path: str | Path) -> av.container.InputContainer:
    """Open a media file for reading; a missing, empty or non-media file raises ``InputError``."""
    p = check_file(path)
    try:
        container = av.open(str(p), mode="r")
    except av.error.InvalidDataError:
        raise InputError("not a media file (or truncated before its header)", p) from None
    except (av.error.FFmpegError, OSError, EOFError) as err:
        raise InputError(f"cannot open as media: {_short(err)}", p) from None
    if not video_streams(container) and not container.streams.audio:
        container.close()
        raise InputError("not a media file (no audio or video streams)", p)
    return container


def is_attached_picture(stream) -> bool:
    """Cover art in an mp3/m4a is a one-frame 'video' stream; it is not a video."""
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def video_streams(container: av.container.InputContainer) -> list:
    """The container's real video streams (cover art excluded)."""
    return [s for s in container.streams.video if not is_attached_picture(s)]


def check_size(width: int, height: int, path: str | Path) -> None:
    """Reject frame sizes no real video has (``MIN_SIDE``..``MAX_SIDE`` pixels per side)."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise InputError(f"frame size {width}x{height} is too small (minimum {MIN_SIDE} px per side)", path)
    if width > MAX_SIDE or height > MAX_SIDE:
        raise InputError(f"frame size {width}x{height} is too large (maximum {MAX_SIDE} px per side)", path)


# Formats whose header durations come from an exact sample index (not a bitrate estimate, as in mp3).
_INDEXED_FORMATS = ("mov", "mp4", "wav", "matroska")
# Decoded shorter than declared by more than this is truncation: above AAC priming/padding (≤ 0.13 s)
# and the last frame's duration, below any real cut.
TRUNCATION_TOLERANCE_S = 0.25


def check_not_truncated(
    path: str | Path, kind: str, decoded: float, declared: float | None, container: av.container.Container
) -> None:
    """``InputError`` if a stream decoded to clearly less than its header says (a cut-off download)."""
    indexed = any(name in _INDEXED_FORMATS for name in container.format.name.split(","))
    if not indexed or declared is None:
        return
    if declared - decoded > max(TRUNCATION_TOLERANCE_S, 0.05 * declared):
        raise InputError(
            f"truncated or corrupt {kind}: decoded {decoded:.2f} s of the {declared:.2f} s in its header",
            path,
        )


@contextlib.contextmanager
def media_errors(path: str | Path, doing: str = "decoding") -> Iterator[None]:
    """Turn FFmpeg errors raised while demuxing/decoding into ``InputError("corrupt ...")``."""
    try:
        yield
    except InputError:
        raise
    except (av.error.FFmpegError, EOFError) as err:
        raise InputError(f"corrupt or truncated media ({doing} failed: {_short(err)})", path) from None


def _short(err: BaseException) -> str:
    """FFmpeg's message without the errno prefix and the file name it repeats."""
    msg = getattr(err, "strerror", None) or str(err)
    return str(msg).strip().rstrip(".")

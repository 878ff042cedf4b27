"""The few fragmented-MP4 (ISO/IEC 14496-12) box edits the streaming writer needs.

``StreamingMp4Writer`` muxes every append into its own small fMP4 (so FFmpeg writes and closes a
complete fragment, with the duration of its last sample known) and appends that fragment to the growing
file. Each small file numbers its fragments from 1 and starts each track's decode time at 0, so before
appending we rewrite two fields: ``mfhd.sequence_number`` and ``tfdt.baseMediaDecodeTime``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

# Boxes whose payload is a list of boxes (only those on the path to the fields we edit).
_CONTAINERS = {b"moof", b"traf"}


def iter_boxes(
    data: bytes | bytearray, start: int = 0, end: int | None = None
) -> Iterator[tuple[bytes, int, int]]:
    """``(type, offset, size)`` of each box in ``data[start:end]`` (offset of the box header)."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size == 1:  # 64-bit size follows the type
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        elif size == 0:  # box extends to the end
            size = end - pos
        if size < 8 or pos + size > end:
            raise ValueError(f"malformed mp4 box {kind!r} at {pos} (size {size})")
        yield kind, pos, size
        pos += size


def split_init_and_fragments(data: bytes) -> tuple[bytes, bytes]:
    """``(ftyp+moov, moof+mdat pairs)`` of a small fMP4; the trailing ``mfra`` index is dropped."""
    init, fragments = bytearray(), bytearray()
    for kind, pos, size in iter_boxes(data):
        if kind in (b"ftyp", b"moov"):
            init += data[pos : pos + size]
        elif kind in (b"moof", b"mdat"):
            fragments += data[pos : pos + size]
    return bytes(init), bytes(fragments)


def retime_fragments(
    fragments: bytes, first_sequence: int, decode_offsets: dict[int, int]
) -> tuple[bytes, int]:
    """Renumber ``moof``s from ``first_sequence`` and add ``decode_offsets[track_id]`` to each ``tfdt``.

    Offsets are in each track's timescale. Returns the edited bytes and the next sequence number.
    """
    out = bytearray(fragments)
    sequence = first_sequence
    for kind, pos, size in iter_boxes(out):
        if kind != b"moof":
            continue
        for sub, spos, ssize in iter_boxes(out, pos + 8, pos + size):
            if sub == b"mfhd":
                struct.pack_into(">I", out, spos + 12, sequence)
                sequence += 1
            elif sub == b"traf":
                _retime_traf(out, spos, ssize, decode_offsets)
    return bytes(out), sequence


def _retime_traf(out: bytearray, pos: int, size: int, decode_offsets: dict[int, int]) -> None:
    track_id = None
    for kind, bpos, _ in iter_boxes(out, pos + 8, pos + size):
        if kind == b"tfhd":
            track_id = struct.unpack_from(">I", out, bpos + 12)[0]
        elif kind == b"tfdt":
            if track_id is None:
                raise ValueError("tfdt before tfhd in traf")
            offset = decode_offsets.get(track_id, 0)
            if out[bpos + 8] == 1:  # version 1: 64-bit decode time
                value = struct.unpack_from(">Q", out, bpos + 12)[0]
                struct.pack_into(">Q", out, bpos + 12, value + offset)
            else:
                value = struct.unpack_from(">I", out, bpos + 12)[0]
                struct.pack_into(">I", out, bpos + 12, value + offset)

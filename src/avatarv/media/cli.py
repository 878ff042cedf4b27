"""``avatarv inspect FILE...``: what is in a media file, and is there a face to animate.

Prints streams, duration, frame rate (flagging variable frame rate), displayed size, rotation, audio
rate/channels, and whether dlib's detector sees a face in a few frames spread over the video.
A bad file prints ``avatarv: FILE: what is wrong`` on stderr; the others are still inspected, and
the exit code is 2 if any file was bad (the last error is raised as ``InputError`` for ``cli.main``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from avatarv.errors import InputError
from avatarv.media.faces import detect_faces
from avatarv.media.probe import MediaInfo, probe
from avatarv.media.sample import sample_frames


def face_summary(path: Path, count: int) -> dict:
    """Face visibility over ``count`` sampled frames: how many have a face, and the largest box."""
    frames = sample_frames(path, count)
    per_frame = [detect_faces(rgb) for _, rgb in frames]
    boxes = [faces[0] for faces in per_frame if faces]
    largest = max(boxes, key=lambda b: b.width * b.height) if boxes else None
    return {
        "visible": bool(boxes),
        "frames_with_face": len(boxes),
        "frames_checked": len(frames),
        "largest_box": list(largest[:4]) if largest else None,
        "times": [round(t, 3) for t, _ in frames],
    }


def _fmt_seconds(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds:.2f} s"


def format_report(info: MediaInfo, face: dict | None) -> str:
    """Human-readable block for one file."""
    lines = [f"{info.path}"]
    rate = f", {info.bit_rate / 1000:.0f} kb/s" if info.bit_rate else ""
    lines.append(f"  container  {info.format}, {_fmt_seconds(info.duration)}, {info.size_bytes} bytes{rate}")
    for s in info.streams:
        if s.kind == "video":
            art = " (cover art)" if s.attached_picture else ""
            lines.append(
                f"  stream {s.index}   video {s.codec} {s.width}x{s.height} {s.pix_fmt or ''}".rstrip() + art
            )
        elif s.kind == "audio":
            lines.append(
                f"  stream {s.index}   audio {s.codec} {s.sample_rate} Hz, {s.channels} ch ({s.channel_layout})"
            )
        else:
            lines.append(f"  stream {s.index}   {s.kind} {s.codec}")
    if info.has_video:
        fps = "?" if info.fps is None else f"{info.fps:g} fps"
        mode = "variable frame rate" if info.vfr else "constant frame rate"
        header = f"avg {info.avg_frame_rate or 0:g}, base {info.real_frame_rate or 0:g}"
        frames = f", {info.num_frames} frames" if info.num_frames is not None else ""
        lines.append(
            f"  video      {fps} ({mode}; header {header}), {_fmt_seconds(info.video_duration)}{frames}"
        )
        lines.append(f"  size       {info.width}x{info.height} as displayed, rotation {info.rotation}°")
    else:
        lines.append("  video      none")
    if info.has_audio:
        lines.append(
            f"  audio      {info.audio_sample_rate} Hz, {info.audio_channels} channel(s), "
            f"{_fmt_seconds(info.audio_duration)}"
        )
    else:
        lines.append("  audio      none")
    if face is not None:
        if face["visible"]:
            l, t, r, b = face["largest_box"]
            lines.append(
                f"  face       visible in {face['frames_with_face']}/{face['frames_checked']} sampled frames "
                f"(largest {r - l}x{b - t} px at {l},{t})"
            )
        else:
            lines.append(f"  face       not visible in {face['frames_checked']} sampled frames")
    return "\n".join(lines)


def inspect(
    files: list[Path] = typer.Argument(..., help="Media files (video or audio)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON list with a record per file."),
    frames: int = typer.Option(5, "--frames", min=1, help="Frames sampled for face detection."),
    no_faces: bool = typer.Option(False, "--no-faces", help="Skip face detection."),
) -> None:
    """Print streams, duration, fps (VFR), size, rotation, audio and whether a face is visible."""
    records, errors = [], []
    for path in files:
        try:
            info = probe(path)
            face = face_summary(path, frames) if info.has_video and not no_faces else None
        except InputError as err:
            if errors:  # all but the last error are printed here; the last is raised (exit code 2)
                print(f"avatarv: {errors[-1]}", file=sys.stderr)
            errors.append(err)
            continue
        if as_json:
            records.append({**info.to_dict(), "face": face})
        else:
            print(format_report(info, face))
    if as_json:
        print(json.dumps(records, indent=2))
    if errors:
        raise errors[-1]

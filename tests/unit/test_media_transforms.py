"""Phone rotation metadata and variable frame rate: frames come out upright, on a 25 fps grid."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from avatarv.media import probe, read_video, write_mp4
from avatarv.media.testing import (
    FFMPEG,
    add_markers,
    ffmpeg,
    ffmpeg_decode_rgb,
    gray_level_index,
    indexed_frames,
    is_upright,
    tone,
)

needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg CLI not installed (make sysdeps)")


@needs_ffmpeg
@pytest.mark.parametrize("rotate", [90, 180, 270])
def test_phone_rotation_comes_out_upright(tmp_path, rotate):
    upright = indexed_frames(10, height=96, width=64)  # portrait, as the phone's user held it
    # The sensor stores the picture turned; ffmpeg's rotate tag (5.1: display matrix of +rotate° CCW)
    # tells players to turn it back.
    stored = np.ascontiguousarray(np.rot90(upright, -rotate // 90, axes=(1, 2)))
    plain = write_mp4(tmp_path / "sensor.mp4", stored, 25)
    phone = tmp_path / "phone.mp4"
    ffmpeg("-i", plain, "-c", "copy", "-metadata:s:v", f"rotate={rotate}", phone)

    video = read_video(phone)
    assert video.frames.shape == (10, 96, 64, 3)
    assert all(is_upright(f) for f in video.frames)
    # Same picture as FFmpeg's own autorotation (what players display).
    reference = ffmpeg_decode_rgb(phone, 64, 96, frames=1)[0]
    assert np.abs(video.frames[0].astype(int) - reference).mean() < 2
    info = probe(phone)
    assert info.rotation == rotate and (info.width, info.height) == (64, 96)
    # Resizing happens in display orientation too.
    assert read_video(phone, size=(32, 48), max_frames=2).frames.shape == (2, 48, 32, 3)


def _write_vfr(path, times_ms: list[int], size: int = 64) -> None:
    """An mp4 whose frame i is shown at ``times_ms[i]`` (ms time base), content = index i."""
    frames = indexed_frames(len(times_ms), size, size)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"bf": "0"}
        for i, t in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def test_vfr_sample_and_hold_on_pts(tmp_path):
    # 10 fps for 1 s, then 50 fps for 0.5 s, then a 0.3 s freeze (dropped frames), then 20 fps.
    times = (
        [100 * i for i in range(10)] + [1000 + 20 * i for i in range(25)] + [1800 + 50 * i for i in range(4)]
    )
    path = tmp_path / "vfr.mp4"
    _write_vfr(path, times)
    info = probe(path)
    assert info.vfr and info.num_frames == len(times)
    end_ms = times[-1] + 50  # the last frame lasts one 20 fps interval
    video = read_video(path, fps=25)
    assert video.num_frames == round(end_ms / 40)  # 2.0 s → 50 frames
    picked = [gray_level_index(f) for f in video.frames]
    expected = [max(i for i, t in enumerate(times) if t <= 40 * k) for k in range(video.num_frames)]
    assert picked == expected


@needs_ffmpeg
def test_vfr_from_ffmpeg_concat(tmp_path):
    # ffmpeg-made VFR: 1 s at 10 fps then 1 s at 50 fps, timestamps passed through.
    for name, rate in (("a", 10), ("b", 50)):
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=64x64:rate={rate}:duration=1", "-pix_fmt", "yuv420p",
               tmp_path / f"{name}.mp4")  # fmt: skip
    vfr = tmp_path / "vfr.mp4"
    ffmpeg("-i", tmp_path / "a.mp4", "-i", tmp_path / "b.mp4", "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]",
           "-map", "[v]", "-fps_mode", "passthrough", "-pix_fmt", "yuv420p", vfr)  # fmt: skip
    info = probe(vfr)
    assert info.vfr and info.num_frames == 60
    assert info.video_duration == pytest.approx(2.0, abs=0.05)
    video = read_video(vfr)
    assert video.fps == 25.0 and video.num_frames == 50


def test_audio_starting_late_is_padded_to_stay_in_sync(tmp_path):
    # Audio that starts 0.2 s after the first frame: the reader pads silence so sample 0 = frame 0.
    frames = add_markers(np.full((25, 64, 64, 3), 128, np.uint8))
    clip = write_mp4(tmp_path / "clip.mp4", frames, 25, tone(1.0, 16000))
    delayed = tmp_path / "delayed.mp4"
    if FFMPEG is None:
        pytest.skip("ffmpeg CLI not installed")
    ffmpeg("-i", clip, "-itsoffset", "0.2", "-i", clip, "-map", "0:v", "-map", "1:a", "-c", "copy", delayed)
    video = read_video(delayed)
    assert np.abs(video.audio[: int(0.18 * 16000)]).max() < 0.01  # silence before the audio starts
    assert np.abs(video.audio[int(0.25 * 16000) : int(0.5 * 16000)]).max() > 0.2

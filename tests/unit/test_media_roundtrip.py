"""write_mp4 → read_video/read_audio/probe round trips, frame-rate conversion and atomic writing."""

from __future__ import annotations

import numpy as np
import pytest

from avatarv.media import encoder as encoder_module
from avatarv.media import read_audio, read_video, write_mp4
from avatarv.media.probe import probe
from avatarv.media.testing import dominant_frequency, gray_level_index, indexed_frames, is_upright, tone

SR = 16000


def test_round_trip_frames_fps_audio(tmp_path):
    frames = indexed_frames(50, 64, 96)  # 2 s at 25 fps, 96x64
    audio = tone(2.0, SR, 440.0)
    path = write_mp4(tmp_path / "clip.mp4", frames, 25, audio)
    video = read_video(path)
    assert video.frames.shape == (50, 64, 96, 3) and video.frames.dtype == np.uint8
    assert video.fps == 25.0 and video.sample_rate == SR
    assert abs(video.audio.size - audio.size) <= SR // 25  # ± 1 frame
    assert [gray_level_index(f) for f in video.frames] == list(range(50))
    assert np.abs(video.frames.astype(int) - frames).mean() < 3  # crf 18: near lossless on flat colour
    assert is_upright(video.frames[0])
    # Audio is sample-aligned with the original (AAC priming removed by the mp4 edit list).
    n = min(video.audio.size, audio.size) - 200
    assert np.corrcoef(video.audio[100:n], audio[100:n])[0, 1] > 0.99
    assert dominant_frequency(read_audio(path), SR) == pytest.approx(440, abs=2)
    assert abs(read_audio(path).size - audio.size) <= SR // 25
    info = probe(path)
    assert (info.width, info.height, info.fps, info.num_frames, info.vfr) == (96, 64, 25.0, 50, False)
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert (info.audio_sample_rate, info.audio_channels) == (SR, 1)


def test_write_is_deterministic_and_leaves_no_temporaries(tmp_path):
    frames, audio = indexed_frames(10), tone(0.4, SR)
    a = write_mp4(tmp_path / "a.mp4", frames, 25, audio).read_bytes()
    b = write_mp4(tmp_path / "b.mp4", frames, 25, audio).read_bytes()
    assert a == b  # the world's "same seed → same bytes" relies on this
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4"]


def test_video_without_audio(tmp_path):
    path = write_mp4(tmp_path / "silent.mp4", indexed_frames(5), 25)
    video = read_video(path)
    assert video.audio is None and video.num_frames == 5
    assert not probe(path).has_audio


@pytest.mark.parametrize("src_fps, expected", [(50, 25), (30, 25), (10, 25), (25, 25), (12, 25)])
def test_fps_conversion_by_sample_and_hold(tmp_path, src_fps, expected):
    path = write_mp4(tmp_path / f"{src_fps}.mp4", indexed_frames(src_fps), src_fps)  # 1 s
    video = read_video(path, fps=25)
    assert video.num_frames == expected
    picked = [gray_level_index(f) for f in video.frames]
    # Output frame k shows the latest source frame with time ≤ k / 25.
    assert picked == [int(np.floor(k / 25 * src_fps + 1e-9)) for k in range(video.num_frames)]


def test_max_frames_and_resize(tmp_path):
    frames = indexed_frames(50, 64, 128)
    path = write_mp4(tmp_path / "c.mp4", frames, 25, tone(2.0, SR))
    video = read_video(path, max_frames=10, size=32)  # shorter side 32, aspect kept
    assert video.frames.shape == (10, 32, 64, 3)
    assert video.audio.size == 10 * SR // 25
    assert is_upright(video.frames[-1])
    assert read_video(path, max_frames=3, size=(48, 40)).frames.shape == (3, 40, 48, 3)


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "out.mp4"

    def explode(self, frames, audio=None, keyframe=False):
        raise RuntimeError("disk full")

    monkeypatch.setattr(encoder_module.Mp4Encoder, "append", explode)
    with pytest.raises(RuntimeError):
        write_mp4(target, indexed_frames(5), 25)
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_bad_arrays(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(tmp_path / "x.mp4", np.zeros((2, 16, 16, 3), np.float32), 25)
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "x.mp4", np.zeros((2, 15, 16, 3), np.uint8), 25)
    with pytest.raises(ValueError, match="mono"):
        write_mp4(tmp_path / "x.mp4", np.zeros((2, 16, 16, 3), np.uint8), 25, np.zeros((100, 2), np.float32))
    assert list(tmp_path.iterdir()) == []

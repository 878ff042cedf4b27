"""StreamingMp4Writer: after every append the file on disk opens and has exactly the appended duration."""

from __future__ import annotations

import numpy as np
import pytest

from avatarv.media import StreamingMp4Writer, probe, read_video
from avatarv.media.testing import FFMPEG, gray_level_index, indexed_frames, is_upright, tone

SR = 16000


def test_file_plays_after_each_append(tmp_path):
    path = tmp_path / "live.mp4"
    frames = indexed_frames(45)  # appends of 20, 7 and 18 frames (uneven on purpose)
    audio = tone(45 / 25, SR, 330.0)
    spans = [(0, 20), (20, 27), (27, 45)]
    with StreamingMp4Writer(path, fps=25, width=64, height=64, sample_rate=SR) as writer:
        for start, stop in spans:
            writer.append(frames[start:stop], audio[start * 640 : stop * 640])
            video = read_video(path)
            assert video.num_frames == stop  # exact: every appended frame is in the file
            assert probe(path).video_duration == pytest.approx(stop / 25, abs=1e-3)
            # The AAC encoder holds ≤ 3 codec frames (192 ms) back until the next append or close.
            assert stop / 25 - 0.2 <= video.audio.size / SR <= stop / 25
    video = read_video(path)
    assert video.num_frames == 45 and video.audio.size == audio.size
    assert [gray_level_index(f) for f in video.frames] == list(range(45))
    assert all(is_upright(f) for f in video.frames[::10])
    # Sample-aligned across fragment boundaries.
    n = audio.size - 200
    assert np.corrcoef(video.audio[100:n], audio[100:n])[0, 1] > 0.99


def test_missing_audio_chunks_become_silence(tmp_path):
    path = tmp_path / "gap.mp4"
    with StreamingMp4Writer(path, 25, 64, 64) as writer:
        writer.append(indexed_frames(10), tone(0.4, SR))
        writer.append(indexed_frames(10))  # no audio: 0.4 s of silence keeps the tracks in step
        writer.append(indexed_frames(10), tone(0.4, SR))
    video = read_video(path)
    assert video.num_frames == 30 and video.audio.size == 30 * 640
    assert np.abs(video.audio[int(0.5 * SR) : int(0.75 * SR)]).max() < 0.02
    assert np.abs(video.audio[int(0.9 * SR) : int(1.1 * SR)]).max() > 0.2


def test_video_only_stream(tmp_path):
    path = tmp_path / "silent.mp4"
    with StreamingMp4Writer(path, 25, 64, 64, sample_rate=None) as writer:
        writer.append(indexed_frames(5))
        assert read_video(path).num_frames == 5
        writer.append(indexed_frames(5))
    assert read_video(path).num_frames == 10 and read_video(path).audio is None


def test_exception_leaves_partial_file_and_nothing_at_the_final_name(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="model crashed"):
        with StreamingMp4Writer(path, 25, 64, 64) as writer:
            writer.append(indexed_frames(25), tone(1.0, SR))
            writer.append(indexed_frames(25), tone(1.0, SR))
            raise RuntimeError("model crashed")
    assert not path.exists()
    partial = tmp_path / "out.partial.mp4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.partial.mp4"]
    assert read_video(partial).num_frames == 50  # still playable up to the last append


def test_append_rejects_wrong_size(tmp_path):
    with StreamingMp4Writer(tmp_path / "x.mp4", 25, 64, 64) as writer:
        with pytest.raises(ValueError, match="opened for 64x64"):
            writer.append(np.zeros((2, 32, 32, 3), np.uint8))
        writer.append(indexed_frames(2))


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg CLI not installed")
def test_ffmpeg_decodes_the_stream_without_errors(tmp_path):
    import subprocess

    path = tmp_path / "live.mp4"
    with StreamingMp4Writer(path, 25, 64, 64) as writer:
        for _ in range(3):
            writer.append(indexed_frames(12), tone(12 / 25, SR))
    result = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stderr == ""

"""``avatarv inspect`` and the media readers on real footage (../shared/real) and on our own clips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avatarv.cli import main
from avatarv.media import detect_faces, read_video, write_mp4
from avatarv.media.testing import indexed_frames, tone


def test_read_every_real_clip(real_clips):
    assert real_clips, "no clips in ../shared/real/clips"
    for path in real_clips:
        video = read_video(path)
        assert video.fps == 25.0 and video.sample_rate == 16000, path.name
        assert video.frames.dtype == np.uint8 and video.frames.shape[-1] == 3
        assert 4 <= video.duration <= 13 and min(video.size) >= 256
        # Audio covers the video (clips are cut with their sound) and is not silent.
        assert video.audio.size == pytest.approx(video.duration * 16000, abs=640), path.name
        assert np.abs(video.audio).max() > 0.05


def test_inspect_json_sees_a_face_in_every_real_clip(real_clips, capsys):
    code = main(["inspect", "--json", "--frames", "3", *map(str, real_clips)])
    records = json.loads(capsys.readouterr().out)
    assert code == 0 and len(records) == len(real_clips)
    for rec in records:
        assert rec["face"]["visible"], rec["path"]
        assert rec["face"]["frames_with_face"] == rec["face"]["frames_checked"] == 3
        assert rec["fps"] == pytest.approx(25.0) and not rec["vfr"] and rec["rotation"] == 0
        assert rec["audio_sample_rate"] == 44100 and rec["audio_channels"] == 2
        left, top, right, bottom = rec["face"]["largest_box"]
        assert 0 <= left < right <= rec["width"] and 0 <= top < bottom <= rec["height"]


def test_inspect_text_report(real_clips, capsys):
    code = main(["inspect", "--frames", "2", str(real_clips[0])])
    out = capsys.readouterr().out
    assert code == 0
    for needle in (
        "h264",
        "aac",
        "25 fps",
        "constant frame rate",
        "rotation 0°",
        "44100 Hz",
        "face       visible",
    ):
        assert needle in out, needle


def test_inspect_reports_no_face_on_a_faceless_clip(tmp_path, capsys):
    path = write_mp4(tmp_path / "pattern.mp4", indexed_frames(25, 128, 128), 25, tone(1.0, 16000))
    assert main(["inspect", "--json", str(path)]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["face"] == {**rec["face"], "visible": False, "frames_with_face": 0}
    assert (rec["width"], rec["height"], rec["num_frames"]) == (128, 128, 25)


def test_detect_faces_on_a_real_frame(real_clips):
    frame = read_video(real_clips[0], max_frames=1).frames[0]
    faces = detect_faces(frame)
    assert len(faces) >= 1 and faces[0].score > 0
    assert faces[0].width > 60  # a talking head fills a good part of the frame
    assert detect_faces(np.zeros((64, 64, 3), np.uint8)) == []

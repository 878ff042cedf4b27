"""Every class of bad input gives one ``InputError`` line naming the file, and the CLI exits 2 with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatarv.cli import main
from avatarv.errors import InputError
from avatarv.media import probe, read_audio, read_video, write_mp4
from avatarv.media.testing import FFMPEG, ffmpeg, indexed_frames, tone

SR = 16000


@pytest.fixture(scope="module")
def good_clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    return write_mp4(folder / "good.mp4", indexed_frames(50), 25, tone(2.0, SR))


def _missing(tmp: Path, good: Path) -> Path:
    return tmp / "nope.mp4"


def _empty(tmp: Path, good: Path) -> Path:
    (tmp / "empty.mp4").write_bytes(b"")
    return tmp / "empty.mp4"


def _directory(tmp: Path, good: Path) -> Path:
    (tmp / "folder.mp4").mkdir()
    return tmp / "folder.mp4"


def _text(tmp: Path, good: Path) -> Path:
    (tmp / "notes.mp4").write_text("this is not a video\n" * 50)
    return tmp / "notes.mp4"


def _garbage_header(tmp: Path, good: Path) -> Path:
    data = bytearray(good.read_bytes())
    data[:64] = np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8).tobytes()
    (tmp / "garbled.mp4").write_bytes(bytes(data))
    return tmp / "garbled.mp4"


def _truncated(tmp: Path, good: Path) -> Path:  # moov at the end: the index is gone
    data = good.read_bytes()
    (tmp / "cut.mp4").write_bytes(data[: len(data) // 2])
    return tmp / "cut.mp4"


def _truncated_faststart(tmp: Path, good: Path) -> Path:  # index intact, media data cut off
    if FFMPEG is None:
        pytest.skip("ffmpeg not installed")
    ffmpeg("-i", good, "-c", "copy", "-movflags", "+faststart", tmp / "fs.mp4")
    data = (tmp / "fs.mp4").read_bytes()
    (tmp / "cut_fs.mp4").write_bytes(data[: int(len(data) * 0.6)])
    return tmp / "cut_fs.mp4"


def _audio_only(tmp: Path, good: Path) -> Path:
    import soundfile

    soundfile.write(tmp / "speech.wav", tone(0.5, SR), SR)
    return tmp / "speech.wav"


def _tiny(tmp: Path, good: Path) -> Path:
    return write_mp4(tmp / "tiny.mp4", np.zeros((3, 6, 6, 3), np.uint8), 25)


def _huge(tmp: Path, good: Path) -> Path:
    return write_mp4(tmp / "wide.mp4", np.zeros((1, 16, 8200, 3), np.uint8), 25)


CASES = [
    (_missing, "no such file"),
    (_empty, "empty file"),
    (_directory, "is a directory"),
    (_text, "not a media file"),
    (_garbage_header, "not a media file"),
    (_truncated, "truncated"),
    (_truncated_faststart, "truncated"),
    (_audio_only, "no video stream"),
    (_tiny, "too small"),
    (_huge, "too large"),
]


@pytest.mark.parametrize("make, message", CASES, ids=[c[0].__name__.strip("_") for c in CASES])
def test_read_video_bad_input(tmp_path, good_clip, make, message):
    path = make(tmp_path, good_clip)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(InputError) as err:
        read_video(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text
    assert err.value.path == str(path)
    assert sorted(tmp_path.iterdir()) == before  # nothing written on failure


def test_require_audio(tmp_path):
    path = write_mp4(tmp_path / "silent.mp4", indexed_frames(5), 25)
    assert read_video(path).audio is None
    with pytest.raises(InputError, match="no audio stream"):
        read_video(path, require_audio=True)
    with pytest.raises(InputError, match="no audio stream"):
        read_audio(path)


@pytest.mark.parametrize("make, message", [c for c in CASES if c[0] in (_missing, _empty, _text, _truncated)])
def test_probe_and_read_audio_bad_input(tmp_path, good_clip, make, message):
    path = make(tmp_path, good_clip)
    for reader in (probe, read_audio):
        with pytest.raises(InputError, match=message):
            reader(path)


@pytest.mark.parametrize("make, message", [(_missing, "no such file"), (_text, "not a media file")])
def test_cli_prints_one_line_and_exits_2(tmp_path, good_clip, capsys, make, message):
    path = make(tmp_path, good_clip)
    code = main(["inspect", "--no-faces", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith(f"avatarv: {path}: ") and message in err


def test_cli_reports_every_bad_file_and_still_inspects_good_ones(tmp_path, good_clip, capsys):
    bad1, bad2 = _missing(tmp_path, good_clip), _text(tmp_path, good_clip)
    code = main(["inspect", "--no-faces", str(bad1), str(good_clip), str(bad2)])
    out, err = capsys.readouterr()
    assert code == 2
    assert str(good_clip) in out and "25 fps" in out
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"avatarv: {bad1}: ") and lines[1].startswith(f"avatarv: {bad2}: ")

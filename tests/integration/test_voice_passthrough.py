"""Pass-through of user speech: any format in, 16 kHz mono at -23 LUFS out, same duration (± 1 frame)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from avatarv.cli import main
from avatarv.voice import TARGET_LUFS, loudness, prepare
from avatarv.voice.synth import EspeakSynthesiser, to_16k

FRAME_S = 1 / 25

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed (make sysdeps)")


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    """≈ 4 s of espeak-ng speech, quiet (-35 LUFS-ish), 22.05 kHz mono wav."""
    wave = EspeakSynthesiser().synthesise("This recording is passed through to the avatar without any change.")
    path = tmp_path_factory.mktemp("pass") / "speech.wav"
    sf.write(path, 0.1 * wave, 16000)
    return path


def _ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def _variants(src, folder):
    wave, rate = sf.read(src, dtype="float32")
    wav8k = folder / "mono8k.wav"
    sf.write(wav8k, to_16k(wave, rate)[::2], 8000)  # 16 kHz → 8 kHz (speech is band-limited below 4 kHz here)
    mp3 = folder / "stereo48k.mp3"
    _ffmpeg("-i", str(src), "-ar", "48000", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k", str(mp3))
    m4a = folder / "speech.m4a"
    _ffmpeg("-i", str(src), "-ar", "44100", "-c:a", "aac", "-b:a", "96k", str(m4a))
    mp4 = folder / "video.mp4"
    _ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x64:r=25", "-i", str(src), "-shortest",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(mp4))
    return {"8 kHz mono wav": wav8k, "48 kHz stereo mp3": mp3, "m4a": m4a, "video's audio": mp4}


def test_every_format_comes_out_16k_mono_at_target_loudness_same_duration(speech_wav, tmp_path):
    duration = sf.info(speech_wav).duration
    for label, path in _variants(speech_wav, tmp_path).items():
        out = prepare(path)
        assert out.ndim == 1 and out.dtype == np.float32, label
        assert loudness(out) == pytest.approx(TARGET_LUFS, abs=0.5), label
        assert abs(out.size / 16000 - duration) <= FRAME_S, (label, out.size / 16000, duration)


def test_real_speech_passes_through(real_speech):
    for path in real_speech:
        out = prepare(path)
        assert abs(out.size / 16000 - sf.info(path).duration) <= FRAME_S
        assert loudness(out) == pytest.approx(TARGET_LUFS, abs=0.5)


def test_cli_prepare_and_bad_inputs_leave_no_file(speech_wav, tmp_path, capsys):
    out = tmp_path / "out.wav"
    assert main(["voice", "prepare", str(speech_wav), "--out", str(out)]) == 0
    info = sf.info(out)
    assert info.samplerate == 16000 and info.channels == 1

    not_audio = tmp_path / "notes.txt"
    not_audio.write_text("this is not audio")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000 * 8, np.float32), 16000)
    short = tmp_path / "short.wav"
    sf.write(short, sf.read(speech_wav, dtype="float32")[0][: 16000 * 2], 16000)
    cases = [
        (["voice", "prepare", str(not_audio)], "notes.txt"),
        (["voice", "prepare", str(silent)], "silent"),
        (["voice", "profile", str(short)], "too short"),
        (["voice", "profile", str(silent)], "silent"),
        (["voice", "profile", str(not_audio)], "notes.txt"),
        (["voice", "say", "--text", "  "], "empty text"),
        (["voice", "say", "--text", "hello", "--voice", str(tmp_path / "missing.wav")], "missing.wav"),
    ]
    for args, expected in cases:
        target = tmp_path / "never.out"
        capsys.readouterr()
        assert main([*args, "--out", str(target)]) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("avatarv: ") and expected in err and "\n" not in err, (args, err)
        assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind

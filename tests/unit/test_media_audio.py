"""read_audio: every common container/codec comes out 16 kHz mono with the same duration and pitch."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from avatarv.media import read_audio, read_video
from avatarv.media.audio import resample
from avatarv.media.testing import FFMPEG, dominant_frequency, ffmpeg, tone

SR = 16000
SECONDS = 1.5
# mp3 and aac decoders can keep up to a codec frame of padding when the file does not say where it ends.
TOLERANCE = 1152 / 44100 + 0.01

needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg CLI not installed (make sysdeps)")


def _wav(tmp, rate, channels):
    path = tmp / f"tone_{rate}_{channels}.wav"
    soundfile.write(path, tone(SECONDS, rate, 440.0, channels), rate)
    return path


def _ffmpeg_encode(tmp, rate, channels, ext, *codec):
    src = _wav(tmp, rate, channels)
    out = tmp / f"tone_{rate}_{channels}.{ext}"
    ffmpeg("-i", src, *codec, out)
    return out


CASES = {
    "wav_8k_mono": lambda tmp: _wav(tmp, 8000, 1),
    "wav_44k_stereo": lambda tmp: _wav(tmp, 44100, 2),
    "mp3_48k_stereo": lambda tmp: _ffmpeg_encode(tmp, 48000, 2, "mp3", "-c:a", "libmp3lame", "-b:a", "128k"),
    "m4a_44k_stereo": lambda tmp: _ffmpeg_encode(tmp, 44100, 2, "m4a", "-c:a", "aac"),
    "flac_22k_mono": lambda tmp: _ffmpeg_encode(tmp, 22050, 1, "flac", "-c:a", "flac"),
    "ogg_48k_stereo": lambda tmp: _ffmpeg_encode(tmp, 48000, 2, "ogg", "-c:a", "libvorbis"),
    "video_44k_stereo": lambda tmp: _video_with_audio(tmp),
}


def _video_with_audio(tmp):
    out = tmp / "talk.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=64x64:rate=30:duration={SECONDS}", "-i", _wav(tmp, 44100, 2),
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", out)  # fmt: skip
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_read_audio_16k_mono_same_duration(tmp_path, case):
    if case not in ("wav_8k_mono", "wav_44k_stereo") and FFMPEG is None:
        pytest.skip("ffmpeg CLI not installed")
    path = CASES[case](tmp_path)
    wave = read_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert wave.size / SR == pytest.approx(SECONDS, abs=TOLERANCE)
    assert dominant_frequency(wave, SR) == pytest.approx(440.0, abs=2.0)
    # Downmixing averages channels: a 0.3 tone in both channels stays 0.3 (lossy codecs add ≈ 5 %).
    mid = wave[wave.size // 4 : 3 * wave.size // 4]
    assert np.abs(mid).max() == pytest.approx(0.3, rel=0.08)
    if case == "video_44k_stereo":
        video = read_video(path)
        assert video.sample_rate == SR and video.audio.size / SR == pytest.approx(SECONDS, abs=0.05)
        assert video.num_frames == round(SECONDS * 25)


def test_resample_keeps_band_limited_content():
    wave = tone(1.0, 48000, 1000.0)
    out = resample(wave, 48000, 16000)
    assert out.size == 16000
    assert dominant_frequency(out, 16000) == pytest.approx(1000.0, abs=1.0)
    # A tone above the new Nyquist (8 kHz) is filtered out, not aliased.
    assert np.abs(resample(tone(1.0, 48000, 11000.0), 48000, 16000)[1000:-1000]).max() < 0.01


def test_real_speech_recordings(real_speech):
    for path in real_speech:
        info = soundfile.info(path)
        wave = read_audio(path)
        assert wave.size / SR == pytest.approx(info.duration, abs=1e-3), path.name
        assert 0.01 < np.abs(wave).max() <= 1.0


@needs_ffmpeg
def test_mp3_with_cover_art_is_audio_only(tmp_path):
    from PIL import Image

    from avatarv.errors import InputError
    from avatarv.media import probe

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "cover.jpg")
    out = tmp_path / "song.mp3"
    ffmpeg("-i", _wav(tmp_path, 44100, 1), "-i", tmp_path / "cover.jpg", "-map", "0", "-map", "1",
           "-c:a", "libmp3lame", "-c:v", "mjpeg", "-disposition:v", "attached_pic", out)  # fmt: skip
    info = probe(out)
    assert not info.has_video and info.audio_codec == "mp3"
    assert any(s.attached_picture for s in info.streams)
    assert read_audio(out).size / SR == pytest.approx(SECONDS, abs=TOLERANCE)
    with pytest.raises(InputError, match="no video stream"):
        read_video(out)

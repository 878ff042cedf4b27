"""Small synthetic media for tests (ours and other parts'): patterned frames, tones, ffmpeg conversions.

Frames carry their own index (a gray level per frame) and an asymmetric marker (red top-left, blue
bottom-right), so tests can tell which source frame a reader picked and whether it is upright.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

FFMPEG = shutil.which("ffmpeg")


def indexed_frames(count: int, height: int = 64, width: int = 64, step: int = 4) -> np.ndarray:
    """``[count, H, W, 3]`` uint8: frame i is gray level ``16 + step·i`` (mod 224) with corner markers."""
    frames = np.empty((count, height, width, 3), np.uint8)
    for i in range(count):
        frames[i] = 16 + (step * i) % 224
    add_markers(frames)
    return frames


def add_markers(frames: np.ndarray) -> np.ndarray:
    """Paint a red block top-left and a blue block bottom-right (in place; frames ``[..., H, W, 3]``)."""
    h, w = frames.shape[-3:-1]
    frames[..., : h // 4, : w // 4, :] = (255, 0, 0)
    frames[..., -(h // 6) :, -(w // 3) :, :] = (0, 0, 255)
    return frames


def gray_level_index(frame: np.ndarray, step: int = 4) -> int:
    """Inverse of ``indexed_frames`` for one frame: read the index back from the centre's gray level."""
    h, w = frame.shape[:2]
    level = float(frame[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].mean())
    return int(round((level - 16) / step))


def is_upright(frame: np.ndarray) -> bool:
    """True if the red marker is top-left and the blue one bottom-right."""
    h, w = frame.shape[:2]
    top_left = frame[: h // 8, : w // 8].reshape(-1, 3).mean(0)
    bottom_right = frame[-(h // 12) :, -(w // 6) :].reshape(-1, 3).mean(0)
    return bool(top_left[0] > 150 > top_left[2] and bottom_right[2] > 150 > bottom_right[0])


def tone(
    seconds: float, rate: int, freq: float = 440.0, channels: int = 1, amplitude: float = 0.3
) -> np.ndarray:
    """A sine tone, ``[N]`` (mono) or ``[N, C]`` float32."""
    t = np.arange(int(round(seconds * rate))) / rate
    wave = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return wave if channels == 1 else np.repeat(wave[:, None], channels, axis=1)


def dominant_frequency(wave: np.ndarray, rate: int) -> float:
    """Hz of the strongest FFT bin (Hann window)."""
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return float(np.fft.rfftfreq(wave.size, 1.0 / rate)[int(np.argmax(spectrum))])


def ffmpeg(*args: str | Path) -> None:
    """Run the ffmpeg CLI quietly (``-y``), raising ``CalledProcessError`` with its stderr on failure."""
    if FFMPEG is None:
        raise RuntimeError("ffmpeg is not installed (make sysdeps)")
    subprocess.run([FFMPEG, "-v", "error", "-y", *map(str, args)], check=True, capture_output=True)


def ffmpeg_decode_rgb(path: str | Path, width: int, height: int, frames: int = 1) -> np.ndarray:
    """The first ``frames`` frames as FFmpeg's CLI shows them (autorotated): the reference for 'displayed'."""
    out = subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-i",
            str(path),
            "-frames:v",
            str(frames),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)

"""Speech audio in and out: read any file, measure and normalise loudness, write wav atomically.

Loudness is ITU-R BS.1770 integrated loudness (``pyloudnorm``), the measure behind EBU R128. Pass-through
speech is brought to ``TARGET_LUFS`` = -23 LUFS (EBU R128 programme level): one level for every input,
well clear of clipping for speech (peaks stay below -1 dBFS, enforced by ``PEAK_CEILING``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from avatarv.errors import InputError

SAMPLE_RATE = 16000
TARGET_LUFS = -23.0
PEAK_CEILING = 10 ** (-1.0 / 20)  # -1 dBFS
SILENCE_LUFS = -60.0  # below this a recording counts as silent


def load_audio(path: str | Path) -> np.ndarray:
    """Any audio or video file → ``[N]`` float32 mono at 16 kHz (decoding by ``avatarv.media``)."""
    from avatarv.media import read_audio

    return read_audio(path, sample_rate=SAMPLE_RATE)


def loudness(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Integrated loudness in LUFS (BS.1770, gated); ``-inf`` for silence or audio under 0.4 s."""
    import pyloudnorm

    if wave.size < int(0.4 * sample_rate) or not np.any(wave):
        return float("-inf")
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(wave.astype(np.float64)))


def normalise_loudness(wave: np.ndarray, target_lufs: float = TARGET_LUFS) -> np.ndarray:
    """Scale ``[N]`` to ``target_lufs``; a quieter result if the gain would push peaks past -1 dBFS."""
    level = loudness(wave)
    if not np.isfinite(level):
        return wave.astype(np.float32)
    gain = 10 ** ((target_lufs - level) / 20)
    peak = float(np.max(np.abs(wave))) * gain
    if peak > PEAK_CEILING:
        gain *= PEAK_CEILING / peak
    return (wave * gain).astype(np.float32)


def prepare(audio: str | Path | np.ndarray, target_lufs: float = TARGET_LUFS) -> np.ndarray:
    """Pass-through of user speech: any file (or a 16 kHz mono array) → 16 kHz mono at ``target_lufs``.

    The duration is kept exactly (no trimming, no padding): the video is timed against it.
    """
    path = None
    if isinstance(audio, (str, Path)):
        path = Path(audio)
        wave = load_audio(path)
    else:
        wave = np.asarray(audio, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(f"prepare expects [N] mono samples, got shape {wave.shape}")
    if loudness(wave) < SILENCE_LUFS:
        raise InputError(f"silent audio (below {SILENCE_LUFS:.0f} LUFS): expected speech", path)
    return normalise_loudness(wave, target_lufs)


def write_wav(path: str | Path, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write 16-bit PCM wav atomically: a temp file in the same folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".wav", dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

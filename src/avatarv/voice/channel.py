"""Simulated recording channels: what a microphone, a room, a codec or a phone line does to a voice.

Used twice: to measure what the speaker embedding responds to (``benchmarks/voice.py --probe``: the
same voice through a channel vs the same channel on another voice) and to give the tuning speakers of
``protocol.TUNING_SPEAKERS`` recording conditions like real samples have, so that matching is designed
on voices heard through channels without ever touching a scored (real) recording.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

SAMPLE_RATE = 16000


def _spectral_gain(wave: np.ndarray, gain_of_hz) -> np.ndarray:
    spectrum = np.fft.rfft(wave.astype(np.float64))
    freqs = np.fft.rfftfreq(wave.size, 1 / SAMPLE_RATE)
    return np.fft.irfft(spectrum * gain_of_hz(freqs), wave.size).astype(np.float32)


def band_pass(wave: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    """4th-order Butterworth band (300–3400 Hz is a telephone line)."""
    sos = butter(4, [low_hz, high_hz], btype="band", fs=SAMPLE_RATE, output="sos")
    return sosfilt(sos, wave).astype(np.float32)


def tilt(wave: np.ndarray, db_per_octave: float) -> np.ndarray:
    """Spectral tilt around 1 kHz (a dull or bright microphone)."""
    return _spectral_gain(wave, lambda f: 10 ** (db_per_octave * np.log2(np.maximum(f, 100) / 1000) / 20))


def resonance(wave: np.ndarray, centre_hz: float, gain_db: float, octaves: float = 0.5) -> np.ndarray:
    """A Gaussian bump in log frequency (a resonant mic capsule or a small-room mode)."""
    return _spectral_gain(
        wave, lambda f: 10 ** (gain_db * np.exp(-0.5 * (np.log2(np.maximum(f, 1) / centre_hz) / octaves) ** 2) / 20)
    )


def add_noise(wave: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """White noise at ``snr_db`` below the signal's mean power."""
    power = float(np.mean(wave.astype(np.float64) ** 2))
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), wave.size)
    return (wave + noise).astype(np.float32)


def reverb(wave: np.ndarray, rt60_s: float, seed: int = 0) -> np.ndarray:
    """Exponentially decaying noise impulse response with a direct path (direct-to-reverb ≈ 0 dB)."""
    n = int(rt60_s * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    response = np.random.default_rng(seed).normal(size=n) * np.exp(-6.9 * t / rt60_s)  # -60 dB at rt60
    response *= 1.0 / np.sqrt(np.sum(response**2))
    response[0] += 1.0
    wet = fftconvolve(wave.astype(np.float64), response)[: wave.size]
    return (wet * (np.abs(wave).max() / (np.abs(wet).max() + 1e-9))).astype(np.float32)


# Named channels (name -> function of the wave), for the probe and the tuning speakers.
CHANNELS = {
    "clean": lambda w: w.astype(np.float32),
    "phone 300-3400 Hz": lambda w: band_pass(w, 300, 3400),
    "tilt -6 dB/oct": lambda w: tilt(w, -6.0),
    "tilt +6 dB/oct": lambda w: tilt(w, 6.0),
    "resonance +10 dB at 2 kHz": lambda w: resonance(w, 2000, 10.0),
    "noise 20 dB SNR": lambda w: add_noise(w, 20.0),
    "reverb RT60 0.3 s": lambda w: reverb(w, 0.3),
    "reverb RT60 0.6 s": lambda w: reverb(w, 0.6),
    "dull room: tilt -3, reverb 0.2 s, noise 30 dB": lambda w: add_noise(reverb(tilt(w, -3.0), 0.2), 30.0),
    "bright lavalier: tilt +3, band 80-7000 Hz": lambda w: band_pass(tilt(w, 3.0), 80, 7000),
}

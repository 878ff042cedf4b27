"""Per-video-frame audio features that drive the mouth: loudness envelope, brightness, stressed syllables.

One video frame at 25 fps spans 640 samples at 16 kHz. The envelope is the RMS of the voice band
(100–4000 Hz) in each frame's span, normalised by the clip's 95th percentile; brightness is the spectral
centroid (high for /i/ /s/, low for /u/ /o/), which sets lip rounding. These are the signals the mouth
follows, so correlating mouth openness with ``envelope`` recovers the identity's lag exactly.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt

SAMPLE_RATE = 16_000
FPS = 25


def _frames(audio: np.ndarray, n_frames: int, hop: int) -> np.ndarray:
    need = n_frames * hop
    a = np.zeros(need, np.float32)
    m = min(need, len(audio))
    a[:m] = audio[:m]
    return a.reshape(n_frames, hop)


def envelope(audio: np.ndarray, n_frames: int | None = None, sr: int = SAMPLE_RATE, fps: int = FPS) -> np.ndarray:
    """Voice-band RMS per video frame, / 95th percentile, clipped to [0, 1.5]. [n_frames] float32."""
    hop = sr // fps
    if n_frames is None:
        n_frames = len(audio) // hop
    sos = butter(4, [100, 4000], btype="band", fs=sr, output="sos")
    band = sosfilt(sos, np.asarray(audio, np.float64)).astype(np.float32)
    rms = np.sqrt(np.mean(_frames(band, n_frames, hop) ** 2, axis=1))
    ref = np.percentile(rms, 95) if n_frames else 0.0
    if ref <= 1e-6:
        return np.zeros(n_frames, np.float32)
    return np.clip(rms / ref, 0.0, 1.5).astype(np.float32)


def brightness(audio: np.ndarray, n_frames: int, sr: int = SAMPLE_RATE, fps: int = FPS) -> np.ndarray:
    """Spectral centroid per frame mapped to [0, 1] (0 ≈ 300 Hz or below, 1 ≈ 3000 Hz or above)."""
    hop = sr // fps
    fr = _frames(np.asarray(audio, np.float32), n_frames, hop) * np.hanning(hop).astype(np.float32)
    spec = np.abs(np.fft.rfft(fr, axis=1))
    freqs = np.fft.rfftfreq(hop, 1.0 / sr)
    centroid = (spec * freqs).sum(1) / np.maximum(spec.sum(1), 1e-9)
    return np.clip((centroid - 300.0) / 2700.0, 0.0, 1.0).astype(np.float32)


def stress_events(env: np.ndarray, threshold: float = 0.75, min_gap: int = 6) -> np.ndarray:
    """Frame indices of stressed syllables: local envelope maxima above ``threshold``, ≥ ``min_gap`` apart."""
    if len(env) < 3:
        return np.zeros(0, np.int64)
    peak = (env[1:-1] > env[:-2]) & (env[1:-1] >= env[2:]) & (env[1:-1] > threshold)
    idx = np.nonzero(peak)[0] + 1
    kept: list[int] = []
    for i in idx[np.argsort(-env[idx], kind="stable")]:
        if all(abs(i - j) >= min_gap for j in kept):
            kept.append(int(i))
    return np.array(sorted(kept), np.int64)


def lagged_correlation(a: np.ndarray, b: np.ndarray, max_lag: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of a[t] with b[t - lag] for lag in [-max_lag, max_lag]: (lags, corr).

    A peak at lag L means ``a`` follows ``b`` L frames later."""
    lags = np.arange(-max_lag, max_lag + 1)
    out = np.zeros(len(lags))
    n = len(a)
    for k, lag in enumerate(lags):
        if lag >= 0:
            x, y = a[lag:], b[: n - lag]
        else:
            x, y = a[: n + lag], b[-lag:]
        if len(x) < 3 or x.std() == 0 or y.std() == 0:
            out[k] = 0.0
        else:
            out[k] = np.corrcoef(x, y)[0, 1]
    return lags, out

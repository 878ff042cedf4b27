"""Audio helpers shared by the readers: decoded frames → float32 mono → a target sample rate.

We downmix by averaging channels (what a listener of a mono speaker hears; keeps speech level for
dual-mono recordings, halves nothing) and resample with a polyphase FIR (``scipy.signal.resample_poly``,
Kaiser window): band-limited and phase-linear, so lip-sync features computed at 16 kHz do not shift.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

# The rate every avatarv audio path uses: Wav2Vec2, SyncNet MFCCs and VAD all expect 16 kHz mono.
SAMPLE_RATE = 16000


class MonoAccumulator:
    """Collects decoded ``av.AudioFrame``s of one stream as float32 mono at the stream's own rate.

    Frames are converted with an ``AudioResampler`` that only changes the sample format (to planar
    float, keeping channels and rate), so no resampling happens before we choose how to do it.
    """

    def __init__(self) -> None:
        self._to_float = av.AudioResampler(format="fltp")
        self._chunks: list[np.ndarray] = []  # each [n] float32
        self.rate: int | None = None
        self.channels: int | None = None
        self.start_time: float | None = None  # seconds, presentation time of the first sample
        self.n_samples = 0

    def add(self, frame: av.AudioFrame) -> None:
        if self.rate is None:
            self.rate = int(frame.sample_rate)
            self.channels = len(frame.layout.channels)
            self.start_time = float(frame.time) if frame.time is not None else 0.0
        for converted in self._to_float.resample(frame):
            planes = converted.to_ndarray()  # [C, n] float32 (planar)
            self._chunks.append(planes.mean(axis=0, dtype=np.float32) if planes.shape[0] > 1 else planes[0])
            self.n_samples += planes.shape[1]

    @property
    def end_time(self) -> float:
        """Seconds: presentation time just after the last collected sample."""
        if self.rate is None:
            return 0.0
        return (self.start_time or 0.0) + self.n_samples / self.rate

    def mono(self) -> np.ndarray:
        """All samples so far, ``[N]`` float32 at ``self.rate``."""
        for converted in self._to_float.resample(None):  # flush
            planes = converted.to_ndarray()
            self._chunks.append(planes.mean(axis=0, dtype=np.float32))
            self.n_samples += planes.shape[1]
        if not self._chunks:
            return np.zeros(0, np.float32)
        return np.ascontiguousarray(np.concatenate(self._chunks), dtype=np.float32)


def resample(wave: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """``[N]`` at ``src_rate`` → ``[round(N·dst/src)]`` float32 at ``dst_rate`` (polyphase FIR)."""
    if src_rate == dst_rate or wave.size == 0:
        return wave.astype(np.float32, copy=False)
    ratio = Fraction(dst_rate, src_rate)
    from scipy.signal import resample_poly  # here, not at import: scipy.signal alone costs ~0.7 s to import

    out = resample_poly(wave.astype(np.float64), ratio.numerator, ratio.denominator)
    # A clipped recording rings past ±1 after band-limiting (Gibbs); keep the [-1, 1] contract.
    return np.clip(out, -1.0, 1.0).astype(np.float32)



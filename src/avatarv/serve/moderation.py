"""Moderation of every text (prompt, text to speak) and every upload, behind one interface.

``Moderator`` is the protocol the server calls; ``PolicyModerator`` is the configurable default:

- a blocklist (``--blocklist FILE``: one term or phrase per line, ``#`` comments; ``review: term`` holds the
  job for an admin instead of refusing it), matched on whole words, case- and punctuation-insensitive;
- a pluggable ``classifier(text) -> Decision | None`` (a local model, a vendor call): its verdict is combined;
- a pluggable ``media_classifier(path, kind) -> Decision | None`` for uploads, and optionally speech
  moderation: the upload's transcript (Whisper, ``avatarv.voice.asr``) goes through the text checks, so an
  audio file cannot say what the text box may not;
- ``review_all``: every job waits for an admin's approval (the human review queue).

The strictest action wins (refuse > review > allow); every decision, with its reasons, is stored by the
server (``moderation`` table) and a refusal is returned as one line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

ACTIONS = ("allow", "review", "refuse")  # in order of severity


@dataclass
class Decision:
    action: str = "allow"
    reasons: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError(f"moderation action must be one of {ACTIONS}, got {self.action!r}")

    def combine(self, other: Decision | None) -> Decision:
        if other is None:
            return self
        action = max(self.action, other.action, key=ACTIONS.index)
        return Decision(action, self.reasons + other.reasons)

    def line(self) -> str:
        return "; ".join(self.reasons) or self.action


class Moderator(Protocol):
    def check_text(self, text: str, kind: str) -> Decision:
        """``kind``: prompt | speech_text."""

    def check_upload(self, path: Path, kind: str) -> Decision:
        """``kind``: reference | consent | audio | voice."""


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def load_blocklist(path: str | Path) -> tuple[list[str], list[str]]:
    """A blocklist file → (refused terms, terms held for review)."""
    refuse, review = [], []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.lower().startswith("review:"):
            review.append(line[7:].strip())
        else:
            refuse.append(line)
    return refuse, review


@dataclass
class PolicyModerator:
    refuse_terms: list[str] = field(default_factory=list)
    review_terms: list[str] = field(default_factory=list)
    classifier: Callable[[str], Decision | None] | None = None
    media_classifier: Callable[[Path, str], Decision | None] | None = None
    transcriber: Callable[[Path], str] | None = None  # speech upload -> text, checked like typed text
    review_all: bool = False

    @classmethod
    def from_file(cls, blocklist: str | Path | None, **kwargs) -> PolicyModerator:
        refuse, review = load_blocklist(blocklist) if blocklist else ([], [])
        return cls(refuse, review, **kwargs)

    def _match(self, words: list[str], terms: list[str]) -> list[str]:
        joined = f" {' '.join(words)} "
        return [t for t in terms if (w := _words(t)) and f" {' '.join(w)} " in joined]

    def check_text(self, text: str, kind: str) -> Decision:
        words = _words(text)
        decision = Decision()
        if hit := self._match(words, self.refuse_terms):
            decision = decision.combine(Decision("refuse", [f"{kind}: contains blocked term {hit[0]!r}"]))
        if hit := self._match(words, self.review_terms):
            decision = decision.combine(Decision("review", [f"{kind}: contains {hit[0]!r}, held for review"]))
        if self.classifier is not None and text.strip():
            decision = decision.combine(self.classifier(text))
        if self.review_all and kind in ("prompt", "speech_text"):
            decision = decision.combine(Decision("review", ["every job is reviewed on this server"]))
        return decision

    def check_upload(self, path: Path, kind: str) -> Decision:
        decision = Decision()
        if self.media_classifier is not None:
            decision = decision.combine(self.media_classifier(path, kind))
        if self.transcriber is not None and kind in ("audio",):
            said = self.transcriber(path)
            text_decision = self.check_text(said, f"{kind} (transcript)")
            text_decision.reasons = [r for r in text_decision.reasons if "every job" not in r]
            decision = decision.combine(text_decision)
        return decision


def whisper_transcriber(path: Path) -> str:
    """The speech moderation transcriber (``--moderate-speech``): Whisper tiny.en on the upload's audio."""
    from avatarv.media import read_audio
    from avatarv.voice.asr import transcribe

    return transcribe(read_audio(path)).text

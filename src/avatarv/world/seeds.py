"""Seed streams: every random choice in the world comes from ``rng(seed, stream, *ids)``.

Streams are named so that adding a trait to one part of the world never shifts the random numbers of
another (an identity's face does not change because a scene gained a lamp). ``np.random.SeedSequence``
mixes the integers; no global RNG is touched.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream_key(name: str) -> int:
    """A stable 32-bit integer for a stream name (crc32: identical across runs and machines)."""
    return zlib.crc32(name.encode("utf-8"))


def rng(seed: int, stream: str, *ids: int) -> np.random.Generator:
    """A generator for ``stream`` (e.g. ``"identity"``) under ``seed`` and the given integer ids."""
    entropy = [int(seed) & 0xFFFFFFFF, stream_key(stream), *[int(i) & 0xFFFFFFFF for i in ids]]
    return np.random.default_rng(np.random.SeedSequence(entropy))

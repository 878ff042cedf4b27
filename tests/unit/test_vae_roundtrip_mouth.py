"""benchmarks/vae_roundtrip.py's mouth test: readability of the mouth after a round trip."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import load_benchmark


class Identity:
    def encode(self, frames):
        return frames

    def decode(self, z):
        return z


class Blur(Identity):
    """Replaces every frame by the clip's mean frame: the mouth stops moving."""

    def decode(self, z):
        return np.broadcast_to(z.mean(0, keepdims=True), z.shape).round().astype(np.uint8)


def test_mouth_readability_of_a_perfect_and_of_a_frozen_round_trip():
    from avatarv.world import make_clip
    from avatarv.world.analyzer import WorldAnalyzer

    bench = load_benchmark("vae_roundtrip")
    clip = make_clip(10_000, 100, seconds=1.4, size=128, seed=1)
    clips = [(clip.frames, clip.labels.mouth_open, clip.labels.landmarks)]
    analyzer = WorldAnalyzer.load()
    perfect = bench.mouth_readability(Identity(), analyzer, clips)
    assert perfect["r_orig"] == pytest.approx(perfect["r_recon"]) and perfect["r_orig"] > 0.8
    assert perfect["std_ratio"] == pytest.approx(1.0) and perfect["mouth_psnr"] > 100
    frozen = bench.mouth_readability(Blur(), analyzer, clips)
    assert frozen["std_ratio"] < 0.2 and frozen["mouth_psnr"] < 40
    assert np.isnan(frozen["r_recon"]) or frozen["r_recon"] < perfect["r_recon"] - 0.3
    assert frozen["r_orig"] == pytest.approx(perfect["r_orig"])

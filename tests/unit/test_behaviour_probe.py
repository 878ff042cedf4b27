"""benchmarks/behaviour_probe.py: clip statistics, the bootstrap correlations and their pairing, and the
sampled rows on a tiny pipeline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def bp():
    return load_benchmark("behaviour_probe")


def _motion(frames: int, dim: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(frames, dim, generator=torch.Generator().manual_seed(seed))


def test_clip_stats_read_the_named_columns(bp):
    from avatarv.data.shards import MOTION_SIGNALS

    m = _motion(12)
    s = bp.clip_stats(m)
    col = {n: i for i, n in enumerate(MOTION_SIGNALS)}
    assert s["smile_mean"] == pytest.approx(float(m[:, col["smile"]].mean()))
    assert s["pitch_std"] == pytest.approx(float(m[:, col["pitch"]].double().std(unbiased=False)))
    # the mouth is the 4 per-frame slots after the signal means, not the latent-frame mean column
    assert s["mouth_mean"] == pytest.approx(float(m[:, len(MOTION_SIGNALS):len(MOTION_SIGNALS) + 4].mean()))
    one = bp.clip_stats(m[:1])  # one frame (an image reference): a spread is undefined
    assert math.isnan(one["yaw_std"]) and one["smile_mean"] == pytest.approx(float(m[0, col["smile"]]))


def test_correlations_and_pairs(bp):
    rng = np.random.default_rng(0)
    n = 40
    truth = {s: rng.normal(size=n) for s in bp.STATS}
    rows = {
        "copy": {s: 2 * v + 1 for s, v in truth.items()},  # r is blind to scale and offset
        "noisy": {s: v + rng.normal(size=n) for s, v in truth.items()},
        "flat": {s: np.full(n, np.nan) for s in bp.STATS},  # undefined everywhere (an image's spread)
    }
    corr = bp.correlations(rows, truth, boots=200, seed=0)
    for s in bp.STATS:
        assert corr["copy"][s]["r"] == pytest.approx(1.0)
        assert 0.3 < corr["noisy"][s]["r"] < 0.95
        assert corr["noisy"][s]["lo"] <= corr["noisy"][s]["r"] <= corr["noisy"][s]["hi"]
        assert math.isnan(corr["flat"][s]["r"])
    d = bp.paired(corr, "copy", "noisy")
    for s in bp.STATS:  # the copy beats the noisy row on every resample
        assert d[s]["diff"] > 0 and d[s]["lo"] > 0
    assert "| copy |" in bp.markdown(corr, {"copy − noisy": d}, n)


def test_sampled_rows_on_a_tiny_pipeline(bp):
    from dataclasses import replace

    from avatarv.models.dit import VideoRefDiT
    from avatarv.pipelines.generate import AvatarPipeline, _live

    pipe = AvatarPipeline.random("tiny", seed=0)
    pipe.cfg = replace(pipe.cfg, dit=replace(pipe.cfg.dit, motion_dim=16))  # room for the 4 mouth slots
    torch.manual_seed(0)
    pipe.dit = _live(VideoRefDiT(pipe.cfg.dit)).eval()
    items = bp.make_items(pipe, 3, seed=0)
    a = bp.sample_motion(pipe, items, steps=2, seed=0)
    b = bp.sample_motion(pipe, items, steps=2, seed=0)
    assert len(a["own"]) == len(a["other"]) == 3
    assert a["own"][0].shape == (pipe.cfg.chunk_latent_frames - 1, 16)
    assert all(torch.equal(x, y) for x, y in zip(a["own"], b["own"], strict=True))  # seeded: the same bytes
    # the other person's reference is another input, with the same noise
    assert not all(torch.equal(x, y) for x, y in zip(a["own"], a["other"], strict=True))
    stats = bp.stat_arrays(a["own"])
    assert set(stats) == set(bp.STATS) and all(v.shape == (3,) for v in stats.values())


def test_reference_motion_read_from_pixels(bp):
    """--ref-motion-from analyzer: the labels give way to the analyzer's reading of the same frames, with the
    signals a reference cannot give (``REFERENCE_SIGNALS``' complement) zero as in training."""
    from dataclasses import replace

    from avatarv.data.shards import MOTION_SIGNALS, REFERENCE_SIGNALS
    from avatarv.pipelines.generate import AvatarPipeline

    pipe = AvatarPipeline.random("tiny", seed=0)
    pipe.cfg = replace(pipe.cfg, dit=replace(pipe.cfg.dit, motion_dim=16))
    items = bp.make_items(pipe, 2, seed=0)
    labels = [it["ref_motion"].clone() for it in items]
    bp.read_reference_motion(pipe, items)
    for it, lab in zip(items, labels, strict=True):
        assert it["ref_motion"].shape == lab.shape and torch.isfinite(it["ref_motion"]).all()
        assert not torch.equal(it["ref_motion"], lab)
        unread = [i for i, n in enumerate(MOTION_SIGNALS) if n not in REFERENCE_SIGNALS]
        assert (it["ref_motion"][:, unread] == 0).all() and (lab[:, unread] == 0).all()

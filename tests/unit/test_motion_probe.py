"""benchmarks/motion_probe.py: the scores it reports, and its two measurements on a tiny pipeline."""

from __future__ import annotations

import math

import pytest
import torch

from tests.conftest import load_benchmark


def _same(a: dict, b: dict) -> bool:
    """Equal scores, NaN (a signal that never varies) equal to NaN."""
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


@pytest.fixture(scope="module")
def probe():
    return load_benchmark("motion_probe")


def test_score_of_the_truth_and_of_a_scaled_truth(probe):
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(40, 16, generator=g)
    perfect = probe.score(gt, gt)
    assert all(perfect[s] == pytest.approx(1.0) for s in probe.SIGNALS)
    assert perfect["mouth_std_ratio"] == pytest.approx(1.0) and perfect["blink_max"] == pytest.approx(float(gt[:, 3].max()))
    half = probe.score(0.5 * gt + 0.1, gt)  # r is blind to scale and offset, the std ratio is not
    assert half["mouth_open"] == pytest.approx(1.0) and half["mouth_std_ratio"] == pytest.approx(0.5)
    flipped = probe.score(-gt, gt)
    assert flipped["blink"] == pytest.approx(-1.0)
    frozen = probe.score(torch.full_like(gt, 0.5), gt)  # a signal that never varies has no r (NaN, not 0)
    assert all(math.isnan(frozen[s]) for s in probe.SIGNALS)


def test_probe_and_sampled_rows_on_a_tiny_pipeline(probe):
    from dataclasses import replace

    from avatarv.pipelines.generate import AvatarPipeline

    pipe = AvatarPipeline.random("tiny", seed=0)
    # the probe reads the 4 per-frame mouth slots (11 … 14) of a 16-wide stream: widen tiny's
    pipe.cfg = replace(pipe.cfg, dit=replace(pipe.cfg.dit, motion_dim=16))
    from avatarv.models.dit import VideoRefDiT
    from avatarv.pipelines.generate import _live

    torch.manual_seed(0)
    pipe.dit = _live(VideoRefDiT(pipe.cfg.dit)).eval()
    items = probe.make_items(pipe, 2, seed=0)
    assert items[0]["motion"].shape == (pipe.cfg.chunk_latent_frames, 16)
    result = probe.probe(pipe, items, [1.0], seed=0)
    table = result["1"]
    assert set(table) == {"input", *probe.CONDITIONS}
    # the nested dropout: without the reference the audio is dropped too, so no_ref and none are one input
    assert _same(table["no_ref"], table["none"])
    assert not _same(table["full"], table["no_audio"])
    # another identity's reference is another input (the next item's), not a dropped one
    assert not _same(table["full"], table["other_ref"]) and not _same(table["other_ref"], table["no_ref"])
    rows = probe.sampled(pipe, items, {"euler 2": {"steps": 2, "sampler": "euler"},
                                       "euler 2 audio=3": {"steps": 2, "sampler": "euler", "guidance": "audio=3"}}, 0)
    assert set(rows) == {"euler 2", "euler 2 audio=3"} and not _same(rows["euler 2"], rows["euler 2 audio=3"])
    assert "sampled motion" in probe.markdown({"sampled": rows})

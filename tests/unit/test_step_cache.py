"""Step caching: threshold 0 is bit-identical to no caching; a threshold skips a bounded, reported number of
block-stack evaluations; the wrapper leaves the model as it found it."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from avatarv.config import get_preset
from avatarv.diffusion import GuidanceScales
from avatarv.models.dit import RefInputs, VideoRefDiT
from avatarv.models.dit.conditions import Conditions, i2v_condition, leading_mask
from avatarv.pipelines.sampling import SamplingOptions, sample_chunk
from avatarv.pipelines.step_cache import StepCache, StepCacheStats


def live_dit(layers: int = 4, seed: int = 0) -> VideoRefDiT:
    torch.manual_seed(seed)
    model = VideoRefDiT(replace(get_preset("tiny").dit, num_layers=layers)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def conditions(dit: VideoRefDiT, frames: int = 3, seed: int = 1) -> Conditions:
    g = torch.Generator().manual_seed(seed)
    cfg = dit.cfg
    known = torch.randn(1, cfg.latent_channels, 1, 8, 8, generator=g)
    cond = i2v_condition(torch.cat([known, torch.zeros(1, cfg.latent_channels, frames - 1, 8, 8)], 2),
                         leading_mask(1, frames))
    ref = [RefInputs(torch.randn(1, cfg.latent_channels, 2, 8, 8, generator=g),
                     torch.randn(1, 2, cfg.motion_dim, generator=g))]
    return Conditions(cond=cond, audio=torch.randn(1, frames, 4, cfg.audio_dim, generator=g),
                      text=torch.randn(1, 5, cfg.text_dim, generator=g), ref=ref)


def run(dit, opts, cache=None, stats=None):
    conds = conditions(dit)
    if cache is None:
        return sample_chunk(dit, conds, 3, (8, 8), opts, torch.Generator().manual_seed(0), cache_stats=stats)
    with cache:
        return sample_chunk(dit, conds, 3, (8, 8), opts, torch.Generator().manual_seed(0))


def test_threshold_zero_is_bit_identical_and_detach_restores_the_model():
    dit = live_dit()
    opts = SamplingOptions(steps=6, guidance=GuidanceScales.parse("audio=2"))
    plain = run(dit, opts)
    # the wrapper attached with threshold 0: every evaluation computed, the same bytes
    stats = StepCacheStats()
    cache = StepCache(dit, threshold=0.0, stats=stats)
    cached = run(dit, opts, cache=cache)
    assert torch.equal(plain[0], cached[0]) and torch.equal(plain[1], cached[1])
    assert stats.skipped == 0 and stats.computed == 6 * len(opts.guidance.passes())
    assert all("forward" not in vars(b) for b in dit.blocks)  # detached: the class's forward again
    assert torch.equal(run(dit, opts)[0], plain[0])


def test_threshold_skips_are_counted_and_bounded():
    dit = live_dit()
    steps, max_skips = 12, 2
    stats = StepCacheStats()
    opts = SamplingOptions(steps=steps, sampler="euler", step_cache=10.0, step_cache_max_skips=max_skips)
    out = run(dit, opts, stats=stats)
    assert stats.computed + stats.skipped == steps  # one pass per step at unit guidance
    assert stats.skipped > 0
    # first evaluation always computed; never more than max_skips in a row
    assert stats.skipped <= (steps - 1) * max_skips // (max_skips + 1) + 1
    assert stats.computed >= 1 + (steps - 1) // (max_skips + 1)
    assert torch.isfinite(out[0]).all()
    assert len(stats.deltas) == steps - 1


def test_small_threshold_changes_output_less_than_large():
    dit = live_dit()
    base = run(dit, SamplingOptions(steps=12, sampler="euler"))[0]
    errs = {}
    for thr in (0.05, 10.0):
        stats = StepCacheStats()
        out = run(dit, SamplingOptions(steps=12, sampler="euler", step_cache=thr, step_cache_max_skips=3), stats=stats)[0]
        errs[thr] = (float((out - base).abs().mean()), stats.skipped)
    assert errs[0.05][1] <= errs[10.0][1]
    assert errs[0.05][0] <= errs[10.0][0] + 1e-9
    assert errs[10.0][0] > 0  # skipping does change the output


def test_each_guidance_pass_keeps_its_own_state():
    dit = live_dit()
    opts = SamplingOptions(steps=8, sampler="euler", guidance=GuidanceScales.parse("audio=2"), step_cache=10.0,
                           step_cache_max_skips=1)
    stats = StepCacheStats()
    run(dit, opts, stats=stats)
    passes = len(opts.guidance.passes())
    assert stats.computed + stats.skipped == 8 * passes
    # every pass alternates compute/skip from its second evaluation on (max_skips 1): per pass 1 + 7 → 4 + 4
    assert stats.computed == passes * 4 and stats.skipped == passes * 4


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="threshold"):
        StepCache(live_dit(), threshold=-1.0)

"""The SR refiner: 2× latents in one step from σ = 0.6, conditioned on the reference."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from avatarv.config import get_preset
from avatarv.models.dit import RefInputs, RefKVCache, VideoRefDiT
from avatarv.pipelines.refiner import SRRefiner, upsample_latents


def test_upsample_latents():
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(1, 2, 3, 2, 2)
    up = upsample_latents(x)
    assert up.shape == (1, 2, 3, 4, 4)
    torch.testing.assert_close(up.mean(dim=(3, 4)), x.mean(dim=(3, 4)))  # bilinear keeps each frame's mean


def test_refiner_needs_local_attention():
    with pytest.raises(ValueError, match="local"):
        SRRefiner(VideoRefDiT(get_preset("tiny").dit))


def test_refiner_one_step_shapes_and_reference():
    torch.manual_seed(0)
    dit = VideoRefDiT(replace(get_preset("tiny").dit, local_window=1))
    for p in dit.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    sr = SRRefiner(dit)
    lat = torch.randn(1, 4, 3, 4, 4)
    ref = RefInputs(torch.randn(1, 4, 2, 8, 8))
    cache = RefKVCache()
    calls = []
    original = dit.forward

    def counting(*a, **k):
        calls.append(float(a[1]))
        return original(*a, **k)

    dit.forward = counting
    audio = torch.randn(1, 3, 4, 12)
    out = sr(lat, ref=ref, ref_cache=cache, audio=audio, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 4, 3, 8, 8)
    assert calls == [pytest.approx(0.6)]  # exactly one evaluation, at σ = 0.6
    other = sr(lat, ref=RefInputs(ref.latents + 1), audio=audio, generator=torch.Generator().manual_seed(0))
    again = sr(lat, ref=ref, ref_cache=cache, audio=audio, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, out) and not torch.equal(other, out)  # deterministic; the reference matters

"""RefKVCache: built once, bit-identical to the uncached path, refuses a different reference."""

from __future__ import annotations

import pytest
import torch

from avatarv.models.dit import RefCacheMismatch, RefInputs, RefKVCache
from tests.unit.test_sparse_ref_attention import tiny_inputs, tiny_model


def make_ref(seed=0, frames=3):
    g = torch.Generator().manual_seed(seed)
    return RefInputs(
        latents=torch.randn(1, 4, frames, 8, 8, generator=g),
        motion=torch.randn(1, frames, 6, generator=g),
        frame_mask=torch.tensor([[True] * (frames - 1) + [False]]),
    )


@torch.no_grad()
def test_cached_equals_uncached_bitwise_over_steps():
    model = tiny_model(3)
    ref = make_ref()
    cache = RefKVCache()
    x = tiny_inputs(4)["x"]
    kw = tiny_inputs(4)
    for step, t in enumerate((0.9, 0.6, 0.3, 0.1)):
        kw["t"] = torch.full((2,), t)
        kw["x"] = x * (step + 1)
        cached = model(**kw, ref=ref, ref_cache=cache)
        plain = model(**kw, ref=ref)
        assert torch.equal(cached.video, plain.video) and torch.equal(cached.motion, plain.motion)
    assert cache.builds == 1 and cache.hits == 3


@torch.no_grad()
def test_cache_is_independent_of_generation_inputs():
    model = tiny_model(4)
    ref = make_ref(1)
    kv1, _ = model.compute_ref_kv(ref)
    model(**tiny_inputs(7), ref=ref)  # a generation call in between changes nothing
    kv2, _ = model.compute_ref_kv(ref)
    for (k1, v1), (k2, v2) in zip(kv1, kv2, strict=True):
        assert torch.equal(k1, k2) and torch.equal(v1, v2)


@torch.no_grad()
def test_cache_detects_a_different_reference():
    model = tiny_model(5)
    cache = RefKVCache()
    kw = tiny_inputs(5)
    model(**kw, ref=make_ref(0), ref_cache=cache)
    with pytest.raises(RefCacheMismatch):
        model(**kw, ref=make_ref(1), ref_cache=cache)
    changed_mask = make_ref(0)
    changed_mask.frame_mask[0, 0] = False
    with pytest.raises(RefCacheMismatch):
        model(**kw, ref=changed_mask, ref_cache=cache)
    rebuilding = RefKVCache(on_mismatch="rebuild")
    a = model(**kw, ref=make_ref(0), ref_cache=rebuilding).video
    b = model(**kw, ref=make_ref(1), ref_cache=rebuilding).video
    assert rebuilding.builds == 2
    assert torch.equal(b, model(**kw, ref=make_ref(1)).video) and not torch.equal(a, b)


@torch.no_grad()
def test_cache_refuses_another_model():
    cache = RefKVCache()
    ref = make_ref()
    tiny_model(6)(**tiny_inputs(), ref=ref, ref_cache=cache)
    with pytest.raises(RefCacheMismatch):
        tiny_model(7)(**tiny_inputs(), ref=ref, ref_cache=cache)


def test_gradients_flow_through_reference_stream():
    model = tiny_model(8).train()
    ref = make_ref(2)
    ref.latents.requires_grad_(True)
    out = model(**tiny_inputs(8), ref=ref)
    (out.video.square().mean() + out.motion.square().mean()).backward()
    assert ref.latents.grad is not None and ref.latents.grad.abs().sum() > 0
    assert model.ref_embedding.grad is not None and model.blocks[0].audio_attn.o.weight.grad.abs().sum() > 0


@torch.no_grad()
def test_several_reference_streams_each_cached_once():
    """Reference + appearance anchor: two streams, K/V concatenated; caching changes nothing, builds once each."""
    model = tiny_model(9)
    ref = make_ref(3)
    anchor = RefInputs(torch.randn(1, 4, 2, 8, 8), time_offset=model.cfg.ref_time_offset + 2048)
    caches = [RefKVCache(), RefKVCache()]
    kw = tiny_inputs(9)
    plain = model(**kw, ref=[ref, anchor]).video
    for _ in range(3):
        assert torch.equal(model(**kw, ref=[ref, anchor], ref_cache=caches).video, plain)
    assert [c.builds for c in caches] == [1, 1] and [c.hits for c in caches] == [2, 2]
    assert not torch.equal(plain, model(**kw, ref=ref).video)  # the anchor is attended to
    assert torch.equal(model(**kw, ref=[ref]).video, model(**kw, ref=ref).video)
    # the anchor's time offset is part of its identity: a cache refuses the same latents elsewhere in time
    moved = RefInputs(anchor.latents, time_offset=anchor.time_offset + 1)
    with pytest.raises(RefCacheMismatch):
        model(**kw, ref=[ref, moved], ref_cache=caches)

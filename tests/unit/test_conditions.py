"""Conditions: the one definition of a dropped condition (training's per-sample dropout and inference's
guidance passes feed the DiT the same thing), the I2V condition, and the reference cache keyed by identity."""

from __future__ import annotations

import pytest
import torch

from avatarv.models.dit import RefCacheMismatch, RefInputs, RefKVCache
from avatarv.models.dit.conditions import Conditions, i2v_condition, leading_mask
from tests.unit.test_ref_cache import make_ref
from tests.unit.test_sparse_ref_attention import tiny_inputs, tiny_model


def test_i2v_condition_formula():
    known = torch.randn(2, 3, 2, 4, 4)
    mask = leading_mask(torch.tensor([1, 2]), 5, batch=2)
    assert mask.tolist() == [[True, False, False, False, False], [True, True, False, False, False]]
    cond = i2v_condition(known, mask)  # [B, 4 + C, F, H, W]
    assert cond.shape == (2, 7, 5, 4, 4)
    assert torch.equal(cond[:, :4], mask[:, None, :, None, None].float().expand(2, 4, 5, 4, 4))
    assert torch.equal(cond[0, 4:, :1], known[0, :, :1]) and not cond[0, 4:, 1:].any()
    assert torch.equal(cond[1, 4:, :2], known[1]) and not cond[1, 4:, 2:].any()


def test_dropped_conditions_by_name_and_per_sample():
    kw = tiny_inputs(3, batch=2)
    ref = make_ref(1)
    c = Conditions(audio=kw["audio"], text=kw["text"], ref=[ref])
    none = c.select(frozenset())
    assert none.ref is None and none.ref_cache is None and not none.audio.any() and not none.text.any()
    assert none.audio.shape == kw["audio"].shape  # zero tokens, not None: the audio attention still runs
    full = c.select(frozenset({"ref", "audio", "text"}))
    assert full.ref == [ref] and torch.equal(full.audio, kw["audio"]) and torch.equal(full.text, kw["text"])
    keep = torch.tensor([True, False])
    per = c.kept({"ref": keep, "audio": keep, "text": keep})
    assert torch.equal(per.audio[0], kw["audio"][0]) and not per.audio[1].any()
    assert torch.equal(per.text[0], kw["text"][0]) and not per.text[1].any()
    assert torch.equal(per.ref[0].frame_mask, ref.frame_mask & keep[:, None])  # a dropped sample: every key masked
    assert per.ref[0].latents is ref.latents


@torch.no_grad()
def test_training_dropout_and_guidance_feed_the_dit_the_same():
    """A sample whose conditions training drops gets the DiT output of the guidance pass without them."""
    model = tiny_model(4)
    kw = tiny_inputs(4, batch=1)
    ref = RefInputs(make_ref(2).latents)
    c = Conditions(audio=kw["audio"], text=kw["text"], ref=[ref])
    args = (kw["x"], kw["t"])
    for dropped in ({"ref", "audio", "text"}, {"audio", "text"}, {"text"}):
        kept = frozenset({"ref", "audio", "text"} - dropped)
        per_sample = c.kept({n: torch.tensor([n in kept]) for n in ("ref", "audio", "text")})
        guided = c.select(kept)
        a = model(*args, motion=kw["motion"], **per_sample.dit_kwargs())
        b = model(*args, motion=kw["motion"], **guided.dit_kwargs())
        torch.testing.assert_close(a.video, b.video, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a.motion, b.motion, rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_ref_cache_is_keyed_by_identity_and_sees_in_place_edits():
    model = tiny_model(5)
    kw = tiny_inputs(5)
    ref = make_ref(0)
    cache = RefKVCache()
    model(**kw, ref=ref, ref_cache=cache)
    model(**kw, ref=ref, ref_cache=cache)
    assert cache.builds == 1 and cache.hits == 1
    with pytest.raises(RefCacheMismatch):  # equal content, another object: a cache belongs to one prepared reference
        model(**kw, ref=make_ref(0), ref_cache=cache)
    ref.frame_mask[0, 0] = False  # the same object edited in place
    with pytest.raises(RefCacheMismatch):
        model(**kw, ref=ref, ref_cache=cache)

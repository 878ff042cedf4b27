"""Every attention backend equals the SDPA reference: sparse reference pattern, faceless mask, local window."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from avatarv.config import DiTConfig
from avatarv.errors import ConfigError
from avatarv.models.dit.attention import (
    LocalWindow,
    attention,
    available_backends,
    dense_mask,
    sparse_ref_attention_flex,
)

CPU_BACKENDS = [b for b in available_backends("cpu")]


def qkv(b=2, h=2, nq=70, nk=90, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, h, n, d, generator=g) for n in (nq, nk, nk))


def reference(q, k, v, key_mask=None, window=None):
    """Plain softmax attention written out (no fused kernel)."""
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    mask = dense_mask(key_mask, window, q.shape[2], k.shape[2])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, -1) @ v


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backend_unmasked(backend):
    q, k, v = qkv()
    torch.testing.assert_close(attention(q, k, v, backend=backend), reference(q, k, v), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backend_faceless_key_mask(backend):
    q, k, v = qkv(seed=1)
    key_mask = torch.ones(2, 90, dtype=torch.bool)
    key_mask[0, 10:40] = False  # a faceless stretch of reference frames
    key_mask[1, ::3] = False
    got = attention(q, k, v, key_mask=key_mask, backend=backend)
    torch.testing.assert_close(got, reference(q, k, v, key_mask), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backend_local_window(backend):
    q, k, v = qkv(nq=96, nk=96, seed=2)
    frames = torch.arange(96) // 8  # 12 latent frames × 8 tokens
    window = LocalWindow(frames, frames, radius=1)
    key_mask = torch.ones(2, 96, dtype=torch.bool)
    key_mask[:, 40:48] = False
    for km in (None, key_mask):
        got = attention(q, k, v, key_mask=km, window=window, backend=backend)
        torch.testing.assert_close(got, reference(q, k, v, km, window), atol=1e-5, rtol=1e-4)


def test_chunked_small_blocks_and_window_skipping():
    from avatarv.models.dit.attention import chunked_attention

    q, k, v = qkv(nq=96, nk=96, seed=3)
    frames = torch.arange(96) // 8
    window = LocalWindow(frames, frames, radius=2)
    got = chunked_attention(q, k, v, window=window, block=16)
    torch.testing.assert_close(got, reference(q, k, v, window=window), atol=1e-5, rtol=1e-4)


def test_flex_sparse_reference_pattern_in_one_call():
    g = torch.Generator().manual_seed(4)
    q_ref, k_ref, v_ref = (torch.randn(2, 2, 40, 16, generator=g) for _ in range(3))
    q_gen, k_gen, v_gen = (torch.randn(2, 2, 30, 16, generator=g) for _ in range(3))
    valid = torch.ones(2, 40, dtype=torch.bool)
    valid[:, 8:16] = False
    ref_out, gen_out = sparse_ref_attention_flex(q_ref, k_ref, v_ref, q_gen, k_gen, v_gen, valid)
    exp_ref = F.scaled_dot_product_attention(q_ref, k_ref, v_ref, attn_mask=valid[:, None, None])
    gen_mask = torch.cat([valid, torch.ones(2, 30, dtype=torch.bool)], 1)[:, None, None]
    exp_gen = F.scaled_dot_product_attention(q_gen, torch.cat([k_ref, k_gen], 2), torch.cat([v_ref, v_gen], 2),
                                             attn_mask=gen_mask)
    torch.testing.assert_close(ref_out, exp_ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(gen_out, exp_gen, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", ["chunked", "tiled", "flex"])
def test_model_with_backend_equals_sdpa(backend):
    from avatarv.config import get_preset
    from avatarv.models.dit import RefInputs, VideoRefDiT

    torch.manual_seed(0)
    model = VideoRefDiT(get_preset("tiny").dit).eval()
    g = torch.Generator().manual_seed(1)
    ref = RefInputs(torch.randn(1, 4, 3, 8, 8, generator=g), torch.randn(1, 3, 6, generator=g),
                    torch.tensor([[True, False, True]]))
    kw = dict(x=torch.randn(2, 4, 3, 8, 8, generator=g), t=torch.rand(2, generator=g),
              audio=torch.randn(2, 3, 4, 12, generator=g), motion=torch.randn(2, 3, 6, generator=g), ref=ref)
    with torch.no_grad():
        model.set_attention_backend("sdpa")
        expected = model(**kw).video
        model.set_attention_backend(backend)
        got = model(**kw).video
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="attn_backend"):
        DiTConfig(attn_backend="magic")
    q, k, v = qkv()
    with pytest.raises(ConfigError, match="unknown attention backend"):
        attention(q, k, v, backend="magic")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA backends need a GPU (run on a lent device)")
def test_cuda_backends_match_sdpa():
    q, k, v = (t.cuda().to(torch.bfloat16) for t in qkv(nq=256, nk=256))
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    for backend in available_backends("cuda"):
        if backend in ("flash", "sage", "sdpa", "chunked"):
            got = attention(q, k, v, backend=backend).float()
            torch.testing.assert_close(got, expected, atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backend_window_with_always_visible_reference_keys(backend):
    q, k, v = qkv(nq=64, nk=80, seed=6)
    gen_frames = torch.arange(64) // 8
    k_frames = torch.cat([torch.full((16,), -1), gen_frames])  # 16 reference keys, then generated keys
    window = LocalWindow(gen_frames, k_frames, radius=1)
    got = attention(q, k, v, window=window, backend=backend)
    torch.testing.assert_close(got, reference(q, k, v, window=window), atol=1e-5, rtol=1e-4)
    mask = dense_mask(None, window, 64, 80)[0, 0]
    assert mask[:, :16].all() and not mask[0, 16 + 8 * 3]  # refs always; frame 3 hidden from frame 0


@torch.no_grad()
def test_local_window_limits_the_receptive_field():
    from dataclasses import replace

    from avatarv.config import get_preset
    from avatarv.models.dit import RefInputs, VideoRefDiT

    torch.manual_seed(0)
    model = VideoRefDiT(replace(get_preset("tiny").dit, local_window=1)).eval()  # 2 blocks: reach 2 frames
    for p in model.parameters():
        p.add_(torch.randn_like(p) * 0.05)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 4, 6, 8, 8, generator=g)
    ref = RefInputs(torch.randn(1, 4, 2, 8, 8, generator=g))
    kw = dict(t=torch.tensor([0.6]), audio=torch.randn(1, 6, 4, 12, generator=g), ref=ref)
    base = model(x, **kw).video
    x2 = x.clone()
    x2[:, :, 0] += 3.0
    moved = model(x2, **kw).video
    diff = (moved - base).abs().amax(dim=(0, 1, 3, 4))  # per latent frame
    assert diff[1] > 1e-4 and diff[2] > 1e-4 and torch.all(diff[3:] == 0)
    ref2 = RefInputs(ref.latents + 1)
    assert (model(x, **{**kw, "ref": ref2}).video - base)[:, :, 5].abs().max() > 1e-4  # the reference reaches all


def test_tiled_small_tiles_equal_reference_and_bf16_error_is_bounded():
    from avatarv.models.dit.attention import tiled_attention

    q, k, v = qkv(nq=70, nk=90, seed=7)
    key_mask = torch.rand(2, 90, generator=torch.Generator().manual_seed(1)) > 0.3
    torch.testing.assert_close(tiled_attention(q, k, v, key_mask=key_mask, block=16),
                               reference(q, k, v, key_mask=key_mask), atol=1e-5, rtol=1e-4)
    # bf16: scores are rounded to bf16 before the softmax; the error stays within a small multiple of SDPA's
    for logit_std in (1.0, 3.0):
        q, k, v = qkv(b=1, h=2, nq=512, nk=512, d=64, seed=8)
        q = q * logit_std**0.5
        k = k * logit_std**0.5
        exact = reference(q, k, v)
        qb, kb, vb = (t.bfloat16() for t in (q, k, v))
        err_tiled = (tiled_attention(qb, kb, vb).float() - exact).abs().max().item()
        err_sdpa = (F.scaled_dot_product_attention(qb, kb, vb).float() - exact).abs().max().item()
        assert err_tiled <= 4 * err_sdpa + 2e-3, (logit_std, err_tiled, err_sdpa)


def test_auto_picks_tiled_only_for_half_precision_inference_on_cpu(monkeypatch):
    from avatarv.models.dit import attention as attn
    from avatarv.models.dit.attention import select_backend

    monkeypatch.setattr(attn, "cpu_bf16_native", lambda: True)  # an AMX machine
    q = torch.zeros(1, 2, 1024, 64, dtype=torch.bfloat16)
    with torch.no_grad():
        assert select_backend(q, masked=False) == "tiled"
        assert select_backend(q.float(), masked=False) == "sdpa"
        assert select_backend(q[:, :, :64], masked=False) == "sdpa"
        assert select_backend(q, masked=False, nk=16) == "sdpa"  # text cross-attention: SDPA wins
    assert select_backend(q, masked=False) == "sdpa"  # autograd on: training keeps the fused kernel
    monkeypatch.setattr(attn, "cpu_bf16_native", lambda: False)  # AVX2 only: tiled's bf16 GEMM is emulated
    with torch.no_grad():
        assert select_backend(q, masked=False) == "sdpa"


def test_tiled_backward_equals_reference():
    from avatarv.models.dit.attention import tiled_attention

    q, k, v = (t.requires_grad_() for t in qkv(nq=40, nk=50, seed=9))
    key_mask = torch.rand(2, 50, generator=torch.Generator().manual_seed(3)) > 0.2
    grads = torch.autograd.grad(tiled_attention(q, k, v, key_mask=key_mask, block=16).square().sum(), (q, k, v))
    ref = torch.autograd.grad(reference(q, k, v, key_mask=key_mask).square().sum(), (q, k, v))
    for g, r in zip(grads, ref, strict=True):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4)

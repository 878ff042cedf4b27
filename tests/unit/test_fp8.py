"""FP8 (e4m3, per-row scales) weights for the DiT's linear layers: the quantisation bound, the swap, memory, and a
DiT forward that stays close to the full-precision one (the weight-only path every device has)."""

from __future__ import annotations

import torch
from torch import nn

from avatarv.config import DiTConfig
from avatarv.models.dit import VideoRefDiT
from avatarv.models.fp8 import Fp8Linear, quantize_fp8, quantize_rows


def test_row_quantisation_bound():
    w = torch.randn(64, 48) * torch.logspace(-3, 1, 64)[:, None]  # rows of very different sizes
    q, scale = quantize_rows(w)
    assert q.dtype == torch.float8_e4m3fn and scale.shape == (64, 1)
    deq = q.float() * scale
    # e4m3: 3 mantissa bits → rounding ≤ 2^-4 relative for normal numbers; subnormals: ≤ scale · 2^-10
    assert ((w - deq).abs() <= w.abs() * 2**-4 + scale * 2**-9).all()
    assert torch.allclose(deq.abs().amax(1), w.abs().amax(1), rtol=1e-6)  # each row's max is exact


def test_linear_swap_and_memory():
    torch.manual_seed(0)
    lin = nn.Linear(32, 16)
    fp8 = Fp8Linear(lin)
    x = torch.randn(5, 32)
    assert torch.allclose(fp8(x), x @ fp8.dequantized(torch.float32).T + lin.bias, atol=1e-6)
    assert (fp8(x) - lin(x)).abs().max() < 0.05 * lin(x).abs().max()
    assert fp8.weight.element_size() == 1


def test_dit_forward_close_and_blocks_only():
    cfg = DiTConfig(dim=64, num_heads=4, num_layers=2, ffn_dim=128, latent_channels=4, cond_channels=8, text_dim=8,
                    freq_dim=16, image_dim=6, audio_adapter="infinitetalk", audio_dim=6, audio_layers=2,
                    audio_hidden_dim=8, audio_context_tokens=3, audio_token_dim=10)
    torch.manual_seed(0)
    model = VideoRefDiT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    g = torch.Generator().manual_seed(1)
    kw = dict(x=torch.randn(1, 4, 2, 4, 6, generator=g), t=torch.tensor([0.4]), text=torch.randn(1, 5, 8, generator=g),
              cond=torch.randn(1, 8, 2, 4, 6, generator=g), image=torch.randn(1, 3, 6, generator=g),
              audio=torch.randn(1, 1, 5, 5, 2, 6, generator=g))
    with torch.no_grad():
        want = model(**kw).video
        linears = sum(isinstance(m, nn.Linear) for n, m in model.named_modules() if n.startswith("blocks."))
        before = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if n.startswith("blocks."))
        assert quantize_fp8(model) == linears
        after = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if n.startswith("blocks."))
        got = model(**kw).video
    assert not any(isinstance(m, nn.Linear) for n, m in model.named_modules() if n.startswith("blocks."))
    assert isinstance(model.head.proj, nn.Linear)  # outside the blocks: untouched
    assert after < 0.3 * before  # fp32 → 1 byte per weight (+ per-row scales, biases)
    rel = (got - want).norm() / want.norm()
    assert 0 < rel < 0.05, rel.item()

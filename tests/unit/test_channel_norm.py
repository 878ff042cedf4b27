"""FastChannelNorm: F.normalize over channels as a sum of squares at fp32 CPU inference (the formula written out
here); everything else untouched; the VAE's encode/decode run under it with the same results."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from avatarv.models.vae.channel_norm import FastChannelNorm, channel_l2_normalize


def test_formula_and_routing(monkeypatch):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 24, 3, 10, 10, generator=g)
    x[0, :, 1, 2, 3] = 0.0  # a zero channel vector: divided by eps, stays 0 (as F.normalize)
    want = x / torch.sqrt((x * x).sum(1, keepdim=True)).clamp_min(1e-12)
    calls = []
    real = channel_l2_normalize
    monkeypatch.setattr("avatarv.models.vae.channel_norm.channel_l2_normalize",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad(), FastChannelNorm():
        got = F.normalize(x, dim=1)
        got4 = F.normalize(x[:, :, 0], p=2, dim=1)
    assert len(calls) == 2
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got, F.normalize(x, dim=1), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got4, F.normalize(x[:, :, 0], dim=1), rtol=1e-6, atol=1e-7)
    assert torch.all(got[0, :, 1, 2, 3] == 0)


def test_other_calls_pass_through(monkeypatch):
    calls = []
    monkeypatch.setattr("avatarv.models.vae.channel_norm.channel_l2_normalize", lambda *a, **k: calls.append(1))
    x = torch.randn(1, 8, 2, 4, 4, requires_grad=True)
    with FastChannelNorm():
        y = F.normalize(x, dim=1)  # autograd: ATen's own, with its backward
        y.sum().backward()
        with torch.no_grad():
            F.normalize(x.detach(), dim=-1)  # another dim
            F.normalize(x.detach(), p=1, dim=1)  # another p
            F.normalize(x.detach().double(), dim=1)  # fp64
            F.normalize(torch.randn(4, 8), dim=1)  # 2-D (token features): not ours
    assert x.grad is not None and not calls


def test_vae_uses_it_with_the_same_results(monkeypatch):
    from avatarv.config import get_preset
    from avatarv.models.vae import VideoVAE

    torch.manual_seed(0)
    vae = VideoVAE(get_preset("tiny").vae)
    frames = (np.random.default_rng(0).random((5, 32, 32, 3)) * 255).astype(np.uint8)
    calls = []
    real = channel_l2_normalize
    monkeypatch.setattr("avatarv.models.vae.channel_norm.channel_l2_normalize",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    lat = vae.encode(frames)
    assert len(calls) > 10  # every norm of the encoder
    with torch.no_grad():
        x = torch.as_tensor(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
        plain = (vae.model.encode(x).latent_dist.mode() - vae.mean) / vae.std  # no mode at all
        rgb_plain = vae.model.decode(plain * vae.std + vae.mean).sample.clamp(-1, 1)
    torch.testing.assert_close(lat, plain, rtol=1e-4, atol=1e-4)
    rgb_plain = ((rgb_plain[0].permute(1, 2, 3, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    assert np.abs(vae.decode(plain).astype(int) - rgb_plain).max() <= 1

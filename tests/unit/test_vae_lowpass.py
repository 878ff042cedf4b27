"""The VAE trainer's colour term (training/vae.lowpass_l1): an L1 between k² block means, per frame and channel.
A uniform colour cast is all it sees; detail that averages out within blocks is invisible to it."""

from __future__ import annotations

import torch

from avatarv.training.vae import lowpass_l1


def test_formula_written_out():
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 2, 16, 16), torch.rand(2, 3, 2, 16, 16)
    means = lambda x: x.reshape(2, 3, 2, 2, 8, 2, 8).mean((4, 6))  # noqa: E731  [B, C, T, 2, 2]
    assert torch.allclose(lowpass_l1(a, b, 8), (means(a) - means(b)).abs().mean())


def test_sees_a_cast_not_block_internal_detail():
    base = torch.zeros(1, 3, 1, 16, 16)
    checker = base.clone()
    checker[..., ::2, ::2] = 0.5
    checker[..., 1::2, 1::2] = -0.5  # zero mean in every 8×8 block
    assert float(lowpass_l1(checker, base, 8)) == 0.0
    cast = base.clone()
    cast[:, 0] += 0.2  # red up everywhere
    assert abs(float(lowpass_l1(cast, base, 8)) - 0.2 / 3) < 1e-6

"""OneDnnConv3d: fp32 no-grad conv3d on the CPU through oneDNN, same results as ATen's kernel; everything
else untouched; the VAE's encode/decode use it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avatarv.models.vae.onednn_conv import OneDnnConv3d, onednn_available

pytestmark = pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN")


def _calls(monkeypatch) -> list:
    seen = []
    real = torch.ops.aten.mkldnn_convolution

    class Spy:
        def __call__(self, *args):
            seen.append(args[0].shape)
            return real(*args)

    monkeypatch.setattr(torch.ops.aten, "mkldnn_convolution", Spy())
    return seen


@pytest.mark.parametrize("stride,padding,groups", [(1, 0, 1), (2, 1, 1), ((1, 2, 2), (0, 1, 1), 2)])
def test_same_result_as_aten_and_routed_to_onednn(monkeypatch, stride, padding, groups):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 8, 3, 12, 12, generator=g)  # N·C·T·H = 288: ATen would pick slow_conv3d
    w = torch.randn(16, 8 // groups, 3, 3, 3, generator=g)
    b = torch.randn(16, generator=g)
    want = F.conv3d(x, w, b, stride, padding, 1, groups)
    seen = _calls(monkeypatch)
    with torch.no_grad(), OneDnnConv3d():
        got = F.conv3d(x, w, b, stride, padding, 1, groups)
        no_bias = torch.nn.functional.conv3d(x, w, None, stride, padding, 1, groups)
    assert len(seen) == 2
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(no_bias, F.conv3d(x, w, None, stride, padding, 1, groups), rtol=1e-4, atol=1e-4)


def test_other_calls_pass_through(monkeypatch):
    x = torch.randn(1, 4, 3, 8, 8, requires_grad=True)
    conv = torch.nn.Conv3d(4, 4, 3, padding=1)
    seen = _calls(monkeypatch)
    with OneDnnConv3d():
        y = conv(x)  # autograd on: training keeps ATen's kernel and its backward
        y.sum().backward()
        with torch.no_grad():
            conv(x.detach().double().float().bfloat16().float())  # fp32 again: routed
            torch.nn.Conv3d(4, 4, 3).double()(x.detach().double())  # fp64: not routed
            torch.nn.Conv3d(4, 4, 3, padding="same")(x.detach())  # string padding: not routed
            F.conv2d(torch.randn(1, 4, 8, 8), torch.randn(4, 4, 3, 3))  # 2-D: not ours
    assert x.grad is not None and len(seen) == 1


def test_vae_uses_it_and_matches_aten(monkeypatch):
    from avatarv.config import get_preset
    from avatarv.models.vae import VideoVAE

    torch.manual_seed(0)
    vae = VideoVAE(get_preset("tiny").vae)
    frames = (np.random.default_rng(0).random((5, 32, 32, 3)) * 255).astype(np.uint8)
    vae.onednn_conv = False
    lat_aten, rgb_aten = vae.encode(frames), vae.decode(vae.encode(frames))
    vae.onednn_conv = True
    seen = _calls(monkeypatch)
    lat, rgb = vae.encode(frames), vae.decode(lat_aten)
    assert len(seen) > 10  # every causal conv of encoder and decoder
    torch.testing.assert_close(lat, lat_aten, rtol=1e-4, atol=1e-4)
    assert np.abs(rgb.astype(int) - rgb_aten).max() <= 1
    vae.compute_dtype = torch.bfloat16  # bf16: autocast, oneDNN takes bf16 by itself
    seen.clear()
    with torch.no_grad():
        assert vae._compute_context().__class__ is not OneDnnConv3d

"""The VAE's layout follows its strides (models/vae/wan_vae.wan_layout): 8× space is Wan2.1's AutoencoderKLWan,
4× space (world model v2, issue #30) one level fewer; a saved VAE reads its strides back; the ``small-s4``
preset keeps the small preset's token count with 4×4 patches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarv.config import VAEConfig
from avatarv.config.presets import get_preset
from avatarv.errors import ConfigError
from avatarv.models.vae import VideoVAE
from avatarv.models.vae.wan_vae import wan_layout


@pytest.mark.parametrize("stride", [8, 4])
def test_latent_shape_follows_the_spatial_stride(stride):
    torch.manual_seed(0)
    vae = VideoVAE(VAEConfig(base_dim=8, z_dim=4, spatial_stride=stride))
    frames = np.random.default_rng(0).integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    z = vae.encode(frames)
    assert tuple(z.shape) == (1, 4, 2, 32 // stride, 48 // stride)
    assert vae.decode(z).shape == frames.shape


def test_wan21_layout_is_the_8x_one():
    assert wan_layout(8) == {"dim_mult": [1, 2, 4, 4], "temperal_downsample": [False, True, True]}
    with pytest.raises(ConfigError, match="16× space"):
        wan_layout(16)


def test_saved_4x_vae_reads_its_strides_back(tmp_path):
    torch.manual_seed(0)
    vae = VideoVAE(VAEConfig(base_dim=8, z_dim=4, spatial_stride=4))
    vae.save_pretrained(tmp_path / "vae")
    back = VideoVAE.from_pretrained(tmp_path / "vae")
    assert back.cfg == vae.cfg
    frames = np.random.default_rng(1).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    assert torch.equal(back.encode(frames), vae.encode(frames))


def test_small_s4_keeps_the_small_token_count():
    small, s4 = get_preset("small"), get_preset("small-s4")
    tokens = [(c.resolution // c.vae.spatial_stride // c.dit.patch_size[1]) ** 2 for c in (small, s4)]
    assert tokens == [64, 64]
    assert s4.vae.spatial_stride == 4 and s4.dit.patch_size == (1, 4, 4)

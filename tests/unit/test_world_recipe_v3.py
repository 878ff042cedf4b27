"""World model v2 on a 4×-spatial VAE (WorldRecipe.v3, issue #30): the recipe adopts a finished VAE only when
its strides and channels are the preset's, and stage 3 switches the lip-sync loss on beside the identity loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avatarv.config import VAEConfig
from avatarv.errors import ConfigError
from avatarv.models.vae import VideoVAE
from avatarv.training.world_recipe import WorldRecipe, adopt_vae, stage_configs


def save_vae(path: Path, stride: int, z_dim: int = 16) -> str:
    torch.manual_seed(0)
    VideoVAE(VAEConfig(base_dim=8, z_dim=z_dim, spatial_stride=stride)).save_pretrained(path)
    return str(path)


def test_adopts_a_vae_with_the_preset_s_strides(tmp_path):
    r = WorldRecipe.v3(vae=save_vae(tmp_path / "s4", 4), out=str(tmp_path / "run"))
    assert r.preset == "small-s4" and adopt_vae(r) == tmp_path / "s4"


@pytest.mark.parametrize("stride,z_dim,why", [(8, 16, "8×/4×"), (4, 8, "z_dim 8")])
def test_refuses_a_vae_the_preset_cannot_read(tmp_path, stride, z_dim, why):
    r = WorldRecipe.v3(vae=save_vae(tmp_path / "vae", stride, z_dim), out=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match=why):
        adopt_vae(r)


def test_stage3_schedules_identity_and_lip_sync(tmp_path):
    r = WorldRecipe.v3(vae="unused", out=str(tmp_path / "run"))
    s3 = stage_configs(r, tmp_path / "shards", "video", tmp_path / "ref-shards")[-1]
    half, quarter = r.stage_steps[2] // 2, r.stage_steps[2] // 4
    assert s3.method.aux == (("identity", 0.1, half, quarter), ("lip_sync", 0.1, half, quarter))
    assert s3.preset == "small-s4"
    assert WorldRecipe().lip_sync_aux_weight == 0.0  # the bundled pair's recipe is unchanged
    off = stage_configs(WorldRecipe(out=str(tmp_path / "o")), tmp_path / "s", "video", tmp_path / "r")[-1]
    assert [a[0] for a in off.method.aux] == ["identity"]

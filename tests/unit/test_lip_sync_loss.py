"""The lip-sync auxiliary loss (training/methods/aux_losses.LipSyncLoss, #30 item 2): its differentiable crop is
the SyncNet crop the Sync-C metric reads (face_tracks.crop_face → lip_input → the world SyncNet's 4×4 pooling);
its contract with the identity loss (zero at the target, gradients into the decoded frames) is in test_aux_losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarv.errors import ConfigError
from avatarv.eval.face_tracks import crop_face
from avatarv.eval.syncnet import lip_input
from avatarv.eval.world_syncnet import WorldSyncNet
from avatarv.training.methods.aux_losses import LipSyncLoss, make_aux_losses, syncnet_crops


def smooth_frame() -> np.ndarray:
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32)
    return np.stack([127 + 120 * np.sin(xx / 7), 127 + 120 * np.cos(yy / 5), 127 + 120 * np.sin((xx + yy) / 9)],
                    -1).astype(np.uint8)  # smooth texture: sampling kernels agree, geometry errors show


def test_crop_is_the_metric_s_syncnet_crop():
    frame = smooth_frame()
    box = (44.0, 30.0, 84.0, 76.0)  # w 40, h 46: s = 23
    s, cx, cy = 23.0, 64.0, 53.0
    ref = WorldSyncNet.small_lips(lip_input(crop_face(frame, s, cx, cy)[None]))[0, :, 0]  # [3, 56, 56] BGR
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 127.5 - 1
    ours = syncnet_crops(x, torch.tensor([box]))[0]
    assert ours.shape == ref.shape
    err = (ours - ref).abs().mean()
    assert err < 0.005  # measured 0.0008 (0.2 grey levels): bilinear at 56² vs 224² then 4×4 means
    off = syncnet_crops(x, torch.tensor([(44.0, 40.0, 84.0, 86.0)]))[0]  # the box 10 px lower
    assert err < 0.5 * (off - ref).abs().mean()


def test_needs_a_whole_lip_window():
    with pytest.raises(ValueError, match="5-frame"):
        LipSyncLoss(lambda z: z, WorldSyncNet(), latent_frames=1)


def test_make_aux_losses_knows_lip_sync(tmp_path):
    from avatarv.config import VAEConfig
    from avatarv.models.vae import VideoVAE

    torch.manual_seed(0)
    VideoVAE(VAEConfig(base_dim=8, z_dim=4)).save_pretrained(tmp_path / "vae")
    losses = make_aux_losses({"lip_sync", "identity"}, tmp_path / "vae")
    assert isinstance(losses["lip_sync"], LipSyncLoss) and set(losses) == {"lip_sync", "identity"}
    assert not any(p.requires_grad for p in losses["lip_sync"].net.parameters())
    with pytest.raises(ConfigError, match="lip_sync"):
        make_aux_losses({"sharpness"}, tmp_path / "vae")

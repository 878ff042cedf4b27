"""Auxiliary-loss pieces: the differentiable face crop equals the identity embedder's crop; the identity and
lip-sync losses are zero on a perfect estimate, positive otherwise, and send gradients to the estimate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarv.eval.world_identity import IdentityNet, face_crop
from avatarv.eval.world_syncnet import WorldSyncNet
from avatarv.training.batch import Batch
from avatarv.training.methods.aux_losses import IdentityLoss, LipSyncLoss, crop_faces


def test_crop_faces_matches_the_embedders_crop():
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float32)
    frame = np.stack([127 + 120 * np.sin(xx / 7), 127 + 120 * np.cos(yy / 5), 127 + 120 * np.sin((xx + yy) / 9)],
                     -1).astype(np.uint8)  # smooth texture: sampling kernels agree, geometry errors show
    box = (40.0, 20.0, 80.0, 70.0)
    ref = face_crop(frame, box).astype(np.float32) / 255  # OpenCV warpAffine, INTER_AREA when shrinking
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 127.5 - 1
    ours = crop_faces(x, torch.tensor([box]))[0].permute(1, 2, 0).numpy()
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).mean() < 0.02
    shifted = crop_faces(x, torch.tensor([(50.0, 20.0, 90.0, 70.0)]))[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - ref).mean() < 0.5 * np.abs(shifted - ref).mean()


def decode_stub(z: torch.Tensor) -> torch.Tensor:
    """A differentiable stand-in decoder: F latent frames → 4(F − 1) + 1 frames, 8× space, 3 channels."""
    return torch.tanh(z.repeat_interleave(8, -1).repeat_interleave(8, -2)[:, :3]).repeat_interleave(4, 2)[:, :, 3:]


@pytest.mark.parametrize("make", [lambda: IdentityLoss(decode_stub, IdentityNet().eval(), max_frames=2),
                                  lambda: LipSyncLoss(decode_stub, WorldSyncNet().eval(), latent_frames=2)],
                         ids=["identity", "lip_sync"])
def test_loss_zero_at_target_and_differentiable(make):
    """Both feature-space losses: zero on a perfect estimate, positive otherwise, gradients only into the last
    two latent frames (the ones they decode)."""
    torch.manual_seed(0)
    loss = make()
    x0 = torch.randn(2, 4, 3, 8, 8)
    batch = Batch(latents=x0, face_box=torch.tensor([[[10.0, 8.0, 40.0, 44.0]] * 3] * 2))
    assert float(loss(x0, x0, batch)) < 1e-5
    est = (x0 + torch.randn_like(x0)).requires_grad_(True)
    value = loss(est, x0, batch)
    value.backward()
    assert float(value) > 1e-4 and est.grad.abs().sum() > 0
    assert est.grad[:, :, 0].abs().sum() == 0  # only the last two latent frames are decoded

"""Focused pixel crops of whole-autoencoder VAE training (VAETrainer._focused_pixels): each sample's window is
the configured size, lies inside the frame, holds that sample's most-weighted pixels (the mouth), and is drawn
from the trainer's generator (the same seed gives the same windows)."""

from __future__ import annotations

import torch

from avatarv.training.vae import VAETrainConfig, VAETrainer


def trainer(seed: int = 0) -> VAETrainer:
    return VAETrainer(VAETrainConfig(preset="tiny", crop_latents=2, crop_focus=True, mouth_weight=4.0, seed=seed))


def batch_and_weights():
    batch = torch.rand(2, 3, 5, 64, 64)
    weights = torch.ones(2, 1, 5, 64, 64)
    weights[0, :, :, 40:44, 20:24] = 5.0  # sample 0's mouth
    weights[1, :, :, 4:8, 50:54] = 5.0  # sample 1's, elsewhere
    return batch, weights


def test_each_window_holds_its_sample_s_mouth():
    batch, weights = batch_and_weights()
    t = trainer()
    for _ in range(5):  # several draws from one generator
        crops, w = t._focused_pixels(batch, weights, stride=8)
        assert crops.shape == (2, 3, 5, 16, 16) and w.shape == (2, 1, 5, 16, 16)
        for b in range(2):
            assert float(w[b].max()) == 5.0  # the mouth's weight is inside the window
            # the crop is a window of the sample's own frames
            hits = [(y, x) for y in range(0, 49) for x in range(0, 49)
                    if torch.equal(batch[b, :, :, y : y + 16, x : x + 16], crops[b])]
            assert hits


def test_same_seed_same_windows():
    batch, weights = batch_and_weights()
    a = trainer(3)._focused_pixels(batch, weights, stride=8)[0]
    b = trainer(3)._focused_pixels(batch, weights, stride=8)[0]
    assert torch.equal(a, b)

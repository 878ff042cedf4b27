"""Human-aware auxiliary losses in learned feature spaces (seed, Stage 3).

Pixel/latent MSE treats a lip corner like a wall pixel. These losses compare the model's clean estimate
x̂0 = x_t − t·v̂ with the target in the feature space of a network that knows faces: an identity embedder,
a lip-sync network, motion-signal predictors, perceptual features. Each is decoder → extractor → distance;
the decoder (the VAE decoder) is differentiable, so gradients reach the DiT through it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


class FeatureMatchingLoss:
    """1 − cos(features(decode(x̂0)), features(decode(x0))), averaged over the batch.

    ``decode``: latents ``[B, z, F, h, w]`` → frames ``[B, 3, T, H, W]`` in [−1, 1] (differentiable);
    ``extract``: frames → features ``[B, ...]``. The target branch runs without gradients.
    """

    def __init__(self, decode: Callable, extract: Callable, max_frames: int | None = 2):
        self.decode = decode
        self.extract = extract
        self.max_frames = max_frames  # decoding every frame is costly: a few latent frames carry the signal

    def __call__(self, x0_hat: torch.Tensor, x0: torch.Tensor, batch) -> torch.Tensor:
        if self.max_frames is not None:
            x0_hat, x0 = x0_hat[:, :, -self.max_frames :], x0[:, :, -self.max_frames :]
        pred = self.extract(self.decode(x0_hat)).flatten(1)
        with torch.no_grad():
            target = self.extract(self.decode(x0)).flatten(1)
        return (1 - F.cosine_similarity(pred.float(), target.float(), dim=-1)).mean()

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


def crop_faces(frames: torch.Tensor, boxes: torch.Tensor, size: int = 64, scale: float = 1.3) -> torch.Tensor:
    """Differentiable square face crops. frames ``[N, 3, H, W]`` in [−1, 1], boxes ``[N, 4]`` (x0, y0, x1, y1 px)
    → ``[N, 3, size, size]`` in [0, 1]: side ``scale · max(w, h)`` around the box centre (as the identity
    embedder's ``face_crop``), sampled bilinearly so gradients reach the frames."""
    n, _, h, w = frames.shape
    x0, y0, x1, y1 = boxes.float().unbind(-1)
    side = torch.maximum(x1 - x0, y1 - y0) * scale
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    theta = torch.zeros(n, 2, 3, device=frames.device)
    # affine_grid maps output [−1, 1] to input [−1, 1] (align_corners=False: pixel edges at ±1, so pixel index p
    # is at (2p + 1)/w − 1); output pixel o samples index side·(o + ½)/size − side/2 + cx, as face_crop's warp does
    theta[:, 0, 0] = side / w
    theta[:, 1, 1] = side / h
    theta[:, 0, 2] = (2 * cx + 1) / w - 1
    theta[:, 1, 2] = (2 * cy + 1) / h - 1
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    crops = F.grid_sample(frames.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (crops + 1) / 2


class IdentityLoss:
    """1 − cos between identity embeddings of the decoded estimate and the decoded target, on face crops
    (the batch's ``face_box`` of each latent frame) of the last ``max_frames`` latent frames."""

    def __init__(self, decode: Callable, embed: torch.nn.Module, max_frames: int = 2):
        self.decode, self.embed, self.max_frames = decode, embed, max_frames

    def __call__(self, x0_hat: torch.Tensor, x0: torch.Tensor, batch) -> torch.Tensor:
        k = self.max_frames
        box = batch.face_box[:, -1]  # [B, 4] the last latent frame's box

        def faces(latents):
            video = self.decode(latents[:, :, -k:])  # [B, 3, T, H, W]
            b, _, t, h, w = video.shape
            frames = video.permute(0, 2, 1, 3, 4).reshape(b * t, 3, h, w)
            return crop_faces(frames, box.repeat_interleave(t, dim=0))

        pred = self.embed(faces(x0_hat))
        with torch.no_grad():
            target = self.embed(faces(x0))
        return (1 - F.cosine_similarity(pred.float(), target.float(), dim=-1)).mean()


def make_aux_losses(names, vae_dir) -> dict:
    """The auxiliary losses by name, built on a frozen VAE decoder (``vae_dir``) and frozen feature nets.

    ``identity``: the world identity embedder (``src/avatarv/assets/eval/world_identity.safetensors``)."""
    from avatarv.errors import ConfigError
    from avatarv.models.vae import VideoVAE

    unknown = set(names) - {"identity"}
    if unknown:
        raise ConfigError(f"unknown auxiliary losses {sorted(unknown)} (known: identity)")
    vae = VideoVAE.from_pretrained(vae_dir)
    for p in vae.parameters():
        p.requires_grad_(False)

    def decode(latents: torch.Tensor) -> torch.Tensor:  # normalised latents → frames in [−1, 1]
        return vae.model.decode(latents * vae.std + vae.mean).sample

    out = {}
    if "identity" in names:
        from avatarv.eval.world_identity import load_identity_net

        net = load_identity_net().eval()
        for p in net.parameters():
            p.requires_grad_(False)
        out["identity"] = IdentityLoss(decode, net)
    return out

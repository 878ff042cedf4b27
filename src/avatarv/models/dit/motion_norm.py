"""Per-channel normalisation of the motion stream.

The flow (``diffusion/flow.py``) mixes its variable with unit Gaussian noise, x_t = (1 − t)·x0 + t·ε. VAE
latents are normalised to unit variance for that reason (SD3 §5.1; Wan's latents_mean/std). Raw motion
features (``data/shards.motion_features``: mouth opening, blink, smile, angles / 30) have std 0.02–0.35 on
the world shards, so at a typical t ≈ 0.5 their signal is a fifth of the noise or less: the model learns
little beyond the mean, and a sampler fixes the motion only in its last step or two — blinks and mouth
motion average away. Normalising each channel with statistics of the training data gives motion the SNR
schedule the video has. (Measured: 250 continued stage-3 steps with it did not make the bundled models blink;
``benchmarks/results/thesis-world-small-motion-norm.md``.)

The DiT holds the statistics in its config (``DiTConfig.motion_mean/std``; empty = identity, checkpoints
trained before this), so every caller that feeds or reads motion converts at the boundary: training targets
and reference motion in, generated motion out.
"""

from __future__ import annotations

import torch

from avatarv.config import DiTConfig

MIN_STD = 1e-3  # a channel that never varies (the zero-padded slots) keeps scale 1


def normalize_motion(features: torch.Tensor, cfg: DiTConfig) -> torch.Tensor:
    """Raw features ``[..., motion_dim]`` → the stream's space ``(x − mean) / std``."""
    if not cfg.motion_std:
        return features
    mean = features.new_tensor(cfg.motion_mean)
    std = features.new_tensor(cfg.motion_std)
    return (features - mean) / std


def denormalize_motion(x: torch.Tensor, cfg: DiTConfig) -> torch.Tensor:
    """The stream's space ``[..., motion_dim]`` → raw features (inverse of ``normalize_motion``)."""
    if not cfg.motion_std:
        return x
    return x * x.new_tensor(cfg.motion_std) + x.new_tensor(cfg.motion_mean)


def motion_statistics(rows: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) of motion rows ``[N, motion_dim]``; a constant channel gets std 1."""
    rows = rows.double()
    mean = rows.mean(0)
    std = rows.std(0, unbiased=False)
    std = torch.where(std < MIN_STD, torch.ones_like(std), std)
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


def dataset_motion_statistics(dataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``motion_statistics`` over every target row of a dataset of training items (``motion`` ``[F, dim]``)."""
    from avatarv.data.shards import read_fields

    rows = [read_fields(dataset, i, ("motion",)).get("motion") for i in range(len(dataset))]
    rows = [r for r in rows if r is not None]
    if not rows:
        raise ValueError("the dataset has no motion features to normalise with")
    return motion_statistics(torch.cat(rows))

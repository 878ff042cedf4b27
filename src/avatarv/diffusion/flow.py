"""Rectified flow (Liu et al. 2022; SD3, Esser et al. 2024, §2–3): x_t = (1 − t)·x0 + t·ε, velocity ε − x0.

t = 1 is pure noise, t = 0 the data; a sampler integrates dx/dt = v from t = 1 down to 0. Also here: the
logit-normal timestep density used in training (SD3 §3.1) and the timestep shift that moves sampling
toward high noise for larger images (SD3 §5.3.2; Wan uses shift 5 at 480p).
"""

from __future__ import annotations

import math

import torch


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 − t)·x0 + t·ε, with t ``[B]`` broadcast over the remaining dims of x0."""
    t = t.reshape(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1 - t) * x0 + t * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """d x_t / d t = ε − x0: the regression target of flow matching."""
    return noise - x0


def sample_logit_normal(
    n: int, mean: float = 0.0, std: float = 1.0, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """t = sigmoid(u), u ~ N(mean, std²): puts the training signal on intermediate noise levels. ``[n]``."""
    u = torch.randn(n, generator=generator, device=device) * std + mean
    return torch.sigmoid(u)


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """t' = s·t / (1 + (s − 1)·t): for s > 1 more of the schedule sits at high noise."""
    return shift * t / (1 + (shift - 1) * t)


def resolution_shift(
    num_tokens: int, base_tokens: int = 256, max_tokens: int = 4096, base_shift: float = 0.5, max_shift: float = 1.15
) -> float:
    """Shift for a sequence length: log-shift linear in the token count between two anchors (as in SD3/Flux).

    More tokens carry more redundant signal at a given noise level, so larger videos need more noise.
    """
    slope = (max_shift - base_shift) / (max_tokens - base_tokens)
    mu = base_shift + slope * (num_tokens - base_tokens)
    return math.exp(mu)


def sigma_schedule(steps: int, shift: float = 1.0, device=None) -> torch.Tensor:
    """Noise levels from 1 down to 0 in ``steps`` intervals, shifted. ``[steps + 1]``, strictly decreasing."""
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64, device=device)
    return shift_time(t, shift).float()


def wan_sigma_schedule(steps: int, shift: float = 1.0, num_timesteps: int = 1000) -> torch.Tensor:
    """Wan2.1's / InfiniteTalk's schedule (``multitalk.py``: ``np.linspace(num_timesteps, 1, steps)`` in fp32,
    then 0, each shifted by ``timestep_transform``), as noise levels σ = t / num_timesteps ``[steps + 1]``.

    Unlike :func:`sigma_schedule` the last model step is at t = 1 (σ = 0.001 before the shift), not 1/steps."""
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    import numpy as np

    t = torch.from_numpy(np.linspace(num_timesteps, 1, steps, dtype=np.float32))
    t = torch.cat([t, torch.zeros(1)]) / num_timesteps
    return shift * t / (1 + (shift - 1) * t)


"""Samplers behind one interface: Euler (deterministic ODE), stochastic Euler with overshoot and renoise
(the seed's "Sampling"), and the single-step refine used by the SR refiner.

A sampler integrates a velocity function ``v(x, σ) -> velocity`` along decreasing noise levels ``sigmas``.
The state may be one tensor or a tuple of tensors (video latents, motion features) sampled jointly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

State = torch.Tensor | tuple[torch.Tensor, ...]
VelocityFn = Callable[[State, torch.Tensor], State]  # (x, sigma scalar tensor) -> velocity
StepCallback = Callable[[int, State], None]


def _map(fn, *states):
    if isinstance(states[0], tuple):
        return tuple(fn(*parts) for parts in zip(*states, strict=True))
    return fn(*states)


def _randn_like(x: State, generator: torch.Generator | None) -> State:
    return _map(lambda a: torch.randn(a.shape, generator=generator, dtype=a.dtype, device=a.device), x)


def renoise(x_low: State, sigma_low: float, sigma_next: float, noise: State) -> State:
    """Move a sample at noise level ``sigma_low`` up to ``sigma_next`` ≥ sigma_low with fresh noise.

    With x_low = (1 − σl)·x0 + σl·ε: scale by (1 − σn)/(1 − σl) to fix the data part, then add independent
    noise of variance σn² − (σl·(1 − σn)/(1 − σl))² so the total noise std is σn. Exact in distribution.
    """
    if sigma_next < sigma_low - 1e-12:
        raise ValueError(f"renoise goes up in noise: {sigma_low} → {sigma_next}")
    if sigma_low >= 1.0:
        return x_low
    a = (1 - sigma_next) / (1 - sigma_low)
    carried = sigma_low * a
    extra = max(sigma_next**2 - carried**2, 0.0) ** 0.5
    return _map(lambda x, n: a * x + extra * n, x_low, noise)


@dataclass
class OvershootEulerSampler:
    """Stochastic Euler: each step overshoots below the target noise level, then renoises up to it.

    Step i goes deterministically from σ_i to σ_o = max(σ_{i+1} − overshoot·(σ_i − σ_{i+1}), 0), then
    ``renoise`` brings it back to σ_{i+1} with fresh Gaussian noise. The injected noise corrects the
    accumulated error of coarse steps (high-frequency detail at low step counts). ``overshoot = 0`` is Euler.
    The last step lands on σ = 0 without noise.
    """

    overshoot: float = 1.0

    def __call__(
        self,
        velocity: VelocityFn,
        x: State,
        sigmas: torch.Tensor,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
    ) -> State:
        for i in range(len(sigmas) - 1):
            s, s_next = float(sigmas[i]), float(sigmas[i + 1])
            s_over = max(s_next - self.overshoot * (s - s_next), 0.0)
            v = velocity(x, sigmas[i])
            x = _map(lambda a, b, dt=s_over - s: a + dt * b, x, v)
            if s_next > 0 and s_over < s_next:
                x = renoise(x, s_over, s_next, _randn_like(x, generator))
            if callback:
                callback(i, x)
        return x


@dataclass
class EulerSampler(OvershootEulerSampler):
    """Deterministic Euler, x_{i+1} = x_i + (σ_{i+1} − σ_i)·v(x_i, σ_i): the overshoot sampler at overshoot 0
    (σ_o = σ_{i+1}, so no renoise ever happens)."""

    overshoot: float = 0.0


@dataclass
class X0RenoiseSampler(OvershootEulerSampler):
    """The few-step sampler of DMD2 / consistency models: each step jumps to the clean estimate
    x̂0 = x − σ·v(x, σ), then noises it afresh to the next level, x' = (1 − σ')·x̂0 + σ'·ε. It is the overshoot
    sampler with an unbounded overshoot (σ_o = 0 on every step; ``renoise`` from 0 is exactly that)."""

    overshoot: float = float("inf")


def refine_one_step(
    velocity: VelocityFn, x_clean: State, sigma: float = 0.6, generator: torch.Generator | None = None,
    noise: State | None = None,
) -> State:
    """The SR refiner's sampler: noise an upsampled clean latent to ``sigma``, then one jump to σ = 0.

    x_σ = (1 − σ)·x + σ·ε;  x̂0 = x_σ − σ·v(x_σ, σ)  (the model's estimate of the data).
    """
    noise = _randn_like(x_clean, generator) if noise is None else noise
    x_sigma = _map(lambda a, n: (1 - sigma) * a + sigma * n, x_clean, noise)
    first = x_sigma[0] if isinstance(x_sigma, tuple) else x_sigma
    v = velocity(x_sigma, torch.tensor(sigma, device=first.device))
    return _map(lambda a, b: a - sigma * b, x_sigma, v)


SAMPLERS: dict[str, Callable[..., object]] = {"euler": EulerSampler, "overshoot": OvershootEulerSampler,
                                               "x0": X0RenoiseSampler}


def make_sampler(name: str, **kwargs):
    try:
        return SAMPLERS[name](**kwargs)
    except KeyError:
        from avatarv.errors import ConfigError

        raise ConfigError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}") from None


__all__: Sequence[str] = ["EulerSampler", "OvershootEulerSampler", "X0RenoiseSampler", "refine_one_step", "renoise", "make_sampler"]

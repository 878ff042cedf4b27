"""Sampling one chunk: the public API every caller of the DiT samples through (the pipeline, the image engine,
the SR refiner, the probes and benchmarks; later distillation, RL and the server).

- :class:`SamplingOptions`: steps, sampler, its overshoot, the time shift, the guidance scales.
- :class:`DiTVelocity`: the DiT as the samplers' velocity function ``(state, σ) → velocity``. The state is
  ``(video,)`` or ``(video, motion)``; each step evaluates one DiT pass per guidance pass
  (``GuidanceScales.passes``), each with its conditions dropped as training drops them
  (``Conditions.select``), and combines them (``GuidanceScales.combine``). Known motion (the previous chunk's,
  continued across the seam) is fed noised to the step's level with the state's own initial noise, as training
  noises every frame's motion (``known_motion``).
- :func:`sample_chunk`: noise → one chunk's latents ``[1, z, F, h, w]`` (known frames put back) and motion
  stream ``[F, motion_dim]`` in the DiT's normalised space (known motion put back).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from avatarv.diffusion import (
    GuidanceScales,
    make_sampler,
    resolution_shift,
    sigma_schedule,
    wan_sigma_schedule,
)
from avatarv.models.dit import VideoRefDiT
from avatarv.models.dit.conditions import Conditions

State = tuple[torch.Tensor, ...]


@dataclass
class SamplingOptions:
    steps: int = 24  # the seed's distilled sampler runs 24 steps
    sampler: str = "overshoot"  # overshoot | euler
    overshoot: float = 1.0
    shift: float | None = None  # None: resolution-dependent (diffusion.resolution_shift of the token count)
    guidance: GuidanceScales = field(default_factory=GuidanceScales)
    # "avatarv": σ = shift(linspace(1, 0, steps + 1)); "wan": Wan2.1's / InfiniteTalk's timesteps
    # (diffusion.wan_sigma_schedule: linspace(1000, 1, steps) then 0, shifted)
    schedule_kind: str = "avatarv"
    # step caching (pipelines/step_cache.py): skip the block stack while its first block's residual changes by
    # less than this (accumulated relative L1); 0 = off, bit-identical to no caching
    step_cache: float = 0.0
    step_cache_max_skips: int = 2  # at most this many skipped evaluations in a row per guidance pass

    def make_sampler(self):
        return make_sampler(self.sampler, **({"overshoot": self.overshoot} if self.sampler == "overshoot" else {}))

    def schedule(self, tokens: int) -> torch.Tensor:
        """σ from 1 to 0 in ``steps`` intervals ``[steps + 1]``, shifted for ``tokens`` video tokens."""
        shift = self.shift if self.shift is not None else resolution_shift(tokens)
        if self.schedule_kind == "wan":
            return wan_sigma_schedule(self.steps, shift)
        if self.schedule_kind != "avatarv":
            raise ValueError(f"schedule_kind must be 'avatarv' or 'wan', got {self.schedule_kind!r}")
        return sigma_schedule(self.steps, shift)


class DiTVelocity:
    """The guided velocity of ``dit`` under ``conditions``, for the samplers.

    ``known_motion`` ``[1, k, motion_dim]`` (normalised): the first k frames' motion, given; ``motion_noise``
    ``[1, k, motion_dim]``: the initial noise of those frames, so the model sees (1 − σ)·m + σ·ε at each step.
    ``precision``: a context the DiT runs under (the pipeline's autocast; default none).
    ``step_cache``: a :class:`~avatarv.pipelines.step_cache.StepCache` attached to ``dit`` (each guidance pass
    gets its own cache state).

    A CFG-distilled student (``dit.cfg.num_guidance_scales`` > 0, ``training/methods/cfg_distill.py``) takes the
    scales as an input: one pass with every condition on and ``guidance = [s_ref, s_audio, s_text]``."""

    def __init__(self, dit: VideoRefDiT, conditions: Conditions, guidance: GuidanceScales | None = None,
                 known_motion: torch.Tensor | None = None, motion_noise: torch.Tensor | None = None,
                 precision: Callable[[], contextlib.AbstractContextManager] | None = None, step_cache=None):
        self.dit, self.conditions = dit, conditions
        self.guidance = guidance or GuidanceScales()
        self.known_motion, self.motion_noise = known_motion, motion_noise
        self.precision = precision or contextlib.nullcontext
        self.step_cache = step_cache
        self.distilled = bool(getattr(getattr(dit, "cfg", None), "num_guidance_scales", 0))

    def motion_input(self, motion: torch.Tensor | None, t: torch.Tensor) -> torch.Tensor | None:
        if motion is None or self.known_motion is None:
            return motion
        k = self.known_motion.shape[1]
        return torch.cat([(1 - t) * self.known_motion + t * self.motion_noise, motion[:, k:]], dim=1)

    def predict(self, video: torch.Tensor, t: torch.Tensor, motion: torch.Tensor | None,
                kept: frozenset[str]) -> torch.Tensor:
        """One DiT pass with the conditions in ``kept``: the flat velocity (video, then motion) in fp32."""
        extra = {}
        if self.distilled:
            g = [float(self.guidance.scales.get(name, 1.0)) for name in self.guidance.order]
            extra["guidance"] = torch.tensor([g], dtype=torch.float32, device=video.device)
        keyed = self.step_cache.pass_key(kept) if self.step_cache is not None else contextlib.nullcontext()
        with self.precision(), keyed:
            out = self.dit(video, t, motion=motion, **self.conditions.select(kept).dit_kwargs(), **extra)
        v = out.video.float()
        return torch.cat([v.flatten(), out.motion.float().flatten()]) if motion is not None else v

    def __call__(self, x: State, sigma: torch.Tensor) -> State:
        t = sigma.reshape(1).float()
        motion = self.motion_input(x[1] if len(x) > 1 else None, t)
        if self.distilled:  # the scales are the student's input: one pass, every condition on
            v = self.predict(x[0], t, motion, frozenset(self.guidance.order))
        else:
            v = self.guidance.combine({p: self.predict(x[0], t, motion, p) for p in self.guidance.passes()})
        if motion is None:
            return (v.view_as(x[0]),)
        n = x[0].numel()
        return v[:n].view_as(x[0]), v[n:].view_as(motion)


def initial_state(dit: VideoRefDiT, num_latents: int, latent_hw: tuple[int, int], generator: torch.Generator) -> State:
    """Gaussian noise ``(video [1, z, F, h, w],)`` and, with a motion stream, ``motion [1, F, motion_dim]``
    (drawn in that order from ``generator``)."""
    h, w = latent_hw
    video = torch.randn(1, dit.cfg.latent_channels, num_latents, h, w, generator=generator)
    if not dit.cfg.motion_dim:
        return (video,)
    return video, torch.randn(1, num_latents, dit.cfg.motion_dim, generator=generator)


@torch.no_grad()
def sample_chunk(
    dit: VideoRefDiT, conditions: Conditions, num_latents: int, latent_hw: tuple[int, int], options: SamplingOptions,
    generator: torch.Generator, known: torch.Tensor | None = None, known_motion: torch.Tensor | None = None,
    on_step: Callable[[int, State], None] | None = None,
    precision: Callable[[], contextlib.AbstractContextManager] | None = None,
    cache_stats=None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One chunk from noise: (latents ``[1, z, F, h, w]`` with the ``known`` leading latents ``[1, z, k, h, w]``
    put back, motion ``[F, motion_dim]`` in the DiT's normalised space with ``known_motion`` ``[1, k, dim]``
    put back, or None). ``conditions.cond`` should hold the same known latents (``i2v_condition``).
    ``cache_stats``: a :class:`~avatarv.pipelines.step_cache.StepCacheStats` the step cache counts into."""
    from avatarv.pipelines.step_cache import StepCache

    state = initial_state(dit, num_latents, latent_hw, generator)
    noise = state[1][:, : known_motion.shape[1]].clone() if known_motion is not None and len(state) > 1 else None
    cache = None
    if options.step_cache > 0:
        cache = StepCache(dit, options.step_cache, options.step_cache_max_skips, stats=cache_stats)
    velocity = DiTVelocity(dit, conditions, options.guidance, known_motion if noise is not None else None, noise,
                           precision, step_cache=cache)
    tokens = num_latents * (latent_hw[0] // 2) * (latent_hw[1] // 2)
    with cache if cache is not None else contextlib.nullcontext():
        out = options.make_sampler()(velocity, state, options.schedule(tokens), generator=generator, callback=on_step)
    latents = out[0]
    if known is not None:
        latents[:, :, : known.shape[2]] = known  # known frames are given, not generated
    motion = out[1][0] if len(out) > 1 else None
    if motion is not None and noise is not None:
        motion[: known_motion.shape[1]] = known_motion[0]
    return latents, motion


__all__ = ["DiTVelocity", "SamplingOptions", "initial_state", "sample_chunk"]

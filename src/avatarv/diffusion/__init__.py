"""Rectified flow, samplers and guidance."""

from avatarv.diffusion.flow import (
    add_noise,
    resolution_shift,
    sample_logit_normal,
    shift_time,
    sigma_schedule,
    velocity_target,
    wan_sigma_schedule,
)
from avatarv.diffusion.guidance import GuidanceScales, guided
from avatarv.diffusion.samplers import (
    EulerSampler,
    OvershootEulerSampler,
    make_sampler,
    refine_one_step,
    renoise,
)

__all__ = [
    "add_noise", "velocity_target", "sample_logit_normal", "shift_time", "resolution_shift", "sigma_schedule", "wan_sigma_schedule",
    "GuidanceScales", "guided", "EulerSampler", "OvershootEulerSampler", "make_sampler", "refine_one_step", "renoise",
]

"""SRRefiner: 2× latent super-resolution in one denoising step, conditioned like the base model (seed:
"Identity-Aware Super-Resolution Refiner"). A pipeline step around a DiT, not a model of its own: its DiT is a
``VideoRefDiT`` with local temporal attention, sampled through ``pipelines.sampling.DiTVelocity``.

The base video is generated at low resolution; its latents are upsampled 2× (bilinear in latent space),
noised to σ = 0.6 and denoised in ONE step by a DiT with the same conditioning machinery as the base model
— the reference video (at the high resolution, through the same sparse reference attention and K/V cache),
the audio, the motion stream — and local temporal attention (``DiTConfig.local_window``) so the cost stays
linear in the number of frames (seed: "upsamples in a single denoising step after the low-resolution latent
has been noised to σ = 0.6"). σ = 0.6 keeps the layout of the base video and leaves the detail —
mouth, teeth, skin — to the refiner, which sees the real person in the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from avatarv.diffusion import refine_one_step
from avatarv.models.dit import RefInputs, RefKVCache, VideoRefDiT
from avatarv.models.dit.conditions import Conditions
from avatarv.pipelines.sampling import DiTVelocity


def upsample_latents(latents: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """``[B, z, F, h, w]`` → ``[B, z, F, factor·h, factor·w]`` (bilinear per frame)."""
    b, z, f, h, w = latents.shape
    frames = latents.permute(0, 2, 1, 3, 4).reshape(b * f, z, h, w)
    up = F.interpolate(frames, scale_factor=factor, mode="bilinear", align_corners=False)
    return up.reshape(b, f, z, h * factor, w * factor).permute(0, 2, 1, 3, 4)


class SRRefiner:
    def __init__(self, dit: VideoRefDiT, sigma: float = 0.6, factor: int = 2):
        if not dit.cfg.local_window:
            raise ValueError("the SR refiner's DiT should use local temporal attention (local_window > 0)")
        self.dit = dit.eval()
        self.sigma = sigma
        self.factor = factor

    @torch.no_grad()
    def __call__(
        self, latents: torch.Tensor, ref: RefInputs | list[RefInputs] | None = None,
        ref_cache: RefKVCache | list[RefKVCache] | None = None, audio: torch.Tensor | None = None,
        motion: torch.Tensor | None = None, generator: torch.Generator | None = None, precision=None,
    ) -> torch.Tensor:
        """Low-resolution latents ``[1, z, F, h, w]`` (+ their motion) → high-resolution ``[1, z, F, 2h, 2w]``."""
        x_up = upsample_latents(latents, self.factor)
        state = (x_up,) if motion is None else (x_up, motion)

        refs = None if ref is None else ref if isinstance(ref, (list, tuple)) else [ref]
        caches = None if ref_cache is None else ref_cache if isinstance(ref_cache, (list, tuple)) else [ref_cache]
        velocity = DiTVelocity(self.dit, Conditions(audio=audio, ref=refs, ref_cache=caches), precision=precision)
        return refine_one_step(velocity, state, sigma=self.sigma, generator=generator)[0]

"""The identity-aware super-resolution refiner (seed: "Identity-Aware Super-Resolution Refiner")."""

from avatarv.models.refiner.sr import SRRefiner, upsample_latents

__all__ = ["SRRefiner", "upsample_latents"]

"""Per-channel normalisation of the motion stream, as functions of a DiT config.

The normalisation belongs to the motion codec (``avatarv.models.dit.motion_codec.MotionCodec``: why the
stream is normalised, where the statistics live); these are its ``normalize`` / ``denormalize`` for callers
that hold a config rather than a codec. Dataset-level statistics are computed on the training side
(``avatarv.training.motion_stats``).
"""

from __future__ import annotations

import torch

from avatarv.config import DiTConfig
from avatarv.models.dit.motion_codec import MIN_STD, MotionCodec, motion_statistics


def normalize_motion(features: torch.Tensor, cfg: DiTConfig) -> torch.Tensor:
    """Raw features ``[..., motion_dim]`` → the stream's space ``(x − mean) / std``."""
    return MotionCodec.from_config(cfg).normalize(features)


def denormalize_motion(x: torch.Tensor, cfg: DiTConfig) -> torch.Tensor:
    """The stream's space ``[..., motion_dim]`` → raw features (inverse of ``normalize_motion``)."""
    return MotionCodec.from_config(cfg).denormalize(x)


__all__ = ["MIN_STD", "normalize_motion", "denormalize_motion", "motion_statistics"]

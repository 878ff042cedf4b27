"""Inputs and outputs of the VideoRef DiT, grouped by concept."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RefInputs:
    """The reference video, encoded once per job.

    latents: ``[B, C, F_ref, H, W]`` clean VAE latents (B = 1 to share one reference across a batch).
    motion: ``[B, F_ref, motion_dim]`` clean motion features per latent frame, or None.
    frame_mask: ``[B, F_ref]`` bool, False for faceless frames (their tokens are excluded as keys), or None.
    """

    latents: torch.Tensor
    motion: torch.Tensor | None = None
    frame_mask: torch.Tensor | None = None
    # RoPE time position of the first frame; None = the config's ref_time_offset. A second reference
    # stream (the long-form global appearance anchor) sits at its own offset.
    time_offset: int | None = None

    @property
    def num_frames(self) -> int:
        return self.latents.shape[2]


@dataclass
class DiTOutput:
    video: torch.Tensor  # [B, C, F, H, W] velocity of the video latents
    motion: torch.Tensor | None = None  # [B, F, motion_dim] velocity of the motion features

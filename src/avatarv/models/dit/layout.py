"""Where each generated token sits: video tokens in (f, h, w) raster order, then one motion token per frame."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GenLayout:
    frames: int  # latent frames after temporal patching
    height: int  # token rows
    width: int  # token columns
    motion: bool  # one motion token per frame appended after the video tokens

    @property
    def per_frame(self) -> int:
        return self.height * self.width

    @property
    def video_tokens(self) -> int:
        return self.frames * self.per_frame

    @property
    def num_tokens(self) -> int:
        return self.video_tokens + (self.frames if self.motion else 0)

    def group_by_frame(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, N, D]`` → ``[B, F, S (+1), D]``: frame f's video tokens, then its motion token."""
        b, _, d = x.shape
        groups = x[:, : self.video_tokens].reshape(b, self.frames, self.per_frame, d)
        if self.motion:
            groups = torch.cat([groups, x[:, self.video_tokens :, None]], dim=2)
        return groups

    def ungroup(self, groups: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`group_by_frame`."""
        b, _, _, d = groups.shape
        video = groups[:, :, : self.per_frame].reshape(b, self.video_tokens, d)
        if not self.motion:
            return video
        return torch.cat([video, groups[:, :, self.per_frame]], dim=1)

"""Where each token sits: frame-major, each latent frame's video tokens (h, w raster) then its motion token.

Frame-major order makes every per-frame operation a reshape (windowed audio attention, splitting the
video from the motion stream) and lets sequence parallelism shard along whole frames. Without the motion
stream the order is exactly Wan's (f, h, w) raster.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from avatarv.models.dit.rope import grid_positions


@dataclass(frozen=True)
class GenLayout:
    frames: int  # latent frames after temporal patching
    height: int  # token rows
    width: int  # token columns
    motion: bool  # one motion token after each frame's video tokens

    @property
    def per_frame(self) -> int:
        """Tokens per frame: video tokens (+ 1 motion token)."""
        return self.height * self.width + (1 if self.motion else 0)

    @property
    def video_per_frame(self) -> int:
        return self.height * self.width

    @property
    def num_tokens(self) -> int:
        return self.frames * self.per_frame

    def positions(self, t_offset: int = 0, device=None) -> torch.Tensor:
        """RoPE positions ``[N, 3]``: video tokens at (t, h, w), motion tokens at (t, −1, −1)."""
        grid = grid_positions(self.frames, self.height, self.width, t_offset, device)
        grid = grid.reshape(self.frames, self.video_per_frame, 3)
        if self.motion:
            t = torch.arange(self.frames, device=device) + t_offset
            motion = torch.stack([t, torch.full_like(t, -1), torch.full_like(t, -1)], dim=-1)[:, None]
            grid = torch.cat([grid, motion], dim=1)
        return grid.reshape(-1, 3)

    def interleave(self, video: torch.Tensor, motion: torch.Tensor | None) -> torch.Tensor:
        """video ``[B, F·S, D]`` (+ motion ``[B, F, D]``) → tokens ``[B, N, D]`` in this layout."""
        if not self.motion:
            return video
        b, _, d = video.shape
        frames = video.reshape(b, self.frames, self.video_per_frame, d)
        return torch.cat([frames, motion[:, :, None]], dim=2).reshape(b, self.num_tokens, d)

    def split(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Inverse of :meth:`interleave`: (video ``[B, F·S, D']``, motion ``[B, F, D']`` or None)."""
        if not self.motion:
            return tokens, None
        b = tokens.shape[0]
        frames = tokens.reshape(b, self.frames, self.per_frame, -1)
        return frames[:, :, :-1].reshape(b, self.frames * self.video_per_frame, -1), frames[:, :, -1]

    def group_by_frame(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, N, D]`` → ``[B, F, per_frame, D]``."""
        return x.reshape(x.shape[0], self.frames, self.per_frame, x.shape[-1])

    def ungroup(self, groups: torch.Tensor) -> torch.Tensor:
        return groups.reshape(groups.shape[0], self.num_tokens, groups.shape[-1])

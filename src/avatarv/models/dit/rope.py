"""3D rotary position embedding in Wan's layout, computed from explicit positions.

Wan splits each head's channels into time / height / width parts: h = w = 2·(d // 6), t = d − h − w, and
rotates interleaved channel pairs (2i, 2i+1) by pos · θ^(−2i/d_axis) (Wan2.1 ``rope_apply``; diffusers
``WanRotaryPosEmbed``). We compute the angles from a position table instead of slicing a precomputed grid,
so reference frames can sit at a time offset and motion tokens outside the spatial grid.
"""

from __future__ import annotations

import torch


def rope_axis_dims(head_dim: int) -> tuple[int, int, int]:
    h = w = 2 * (head_dim // 6)
    return head_dim - h - w, h, w


def grid_positions(frames: int, height: int, width: int, t_offset: int = 0, device=None) -> torch.Tensor:
    """Positions of a token grid in (t, h, w) raster order. Returns ``[frames·height·width, 3]`` int64."""
    t = torch.arange(frames, device=device) + t_offset
    h = torch.arange(height, device=device)
    w = torch.arange(width, device=device)
    return torch.stack(torch.meshgrid(t, h, w, indexing="ij"), dim=-1).reshape(-1, 3)


def rope_cos_sin(
    positions: torch.Tensor, head_dim: int, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of the rotation angles for ``positions`` ``[N, 3]``. Returns two ``[N, head_dim // 2]`` fp32."""
    angles = []
    for axis, dim in enumerate(rope_axis_dims(head_dim)):
        # float64 like diffusers' table, then fp32: identical angles for integer positions.
        inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64, device=positions.device) / dim))
        angles.append(positions[:, axis].to(torch.float64)[:, None] * inv_freq[None, :])
    angle = torch.cat(angles, dim=-1)  # [N, head_dim/2]
    return angle.cos().float(), angle.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of ``x`` ``[B, H, N, d]`` by angles with ``cos``/``sin`` ``[N, d/2]``."""
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)  # [B, H, N, d/2] each
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)
    return out.type_as(x)

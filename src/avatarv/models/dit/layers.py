"""Small building blocks shared by the DiT: fp32 norms, AdaLN modulation, the GELU(tanh) FFN."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def layer_norm_fp32(x: torch.Tensor, eps: float, weight=None, bias=None) -> torch.Tensor:
    """LayerNorm computed in fp32 (Wan's ``WanLayerNorm`` / diffusers ``FP32LayerNorm``); returns fp32."""
    return F.layer_norm(
        x.float(), (x.shape[-1],), None if weight is None else weight.float(), None if bias is None else bias.float(), eps
    )


class FP32LayerNorm(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm_fp32(x, self.eps, self.weight, self.bias)


def modulate(x: torch.Tensor, eps: float, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """AdaLN: LN(x)·(1 + scale) + shift in fp32, cast back to x's dtype. x ``[B, N, D]``, shift/scale ``[B, 1, D]``."""
    return (layer_norm_fp32(x, eps) * (1 + scale) + shift).type_as(x)


def timestep_sinusoid(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[B] → [B, dim]`` as cat(cos, sin) (Wan ``sinusoidal_embedding_1d``)."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    angle = t.float()[:, None] * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class FeedForward(nn.Module):
    """Linear → GELU(tanh) → Linear (Wan ``ffn``: indices 0 and 2 of a Sequential)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))

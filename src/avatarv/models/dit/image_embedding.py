"""Wan2.1 I2V's CLIP image embedding: CLIP hidden states ``[B, 257, image_dim]`` → context tokens ``[B, 257, D]``.

Wan2.1 ``wan/modules/model.py:MLPProj`` (``img_emb.proj``: LayerNorm(1280), Linear(1280→1280), GELU, Linear(1280→dim),
LayerNorm(dim)); diffusers ``transformer_wan.py:WanImageEmbedding`` (``norm1``, ``ff.net.0.proj``, ``ff.net.2``,
``norm2``; FP32 LayerNorms, exact GELU). Both LayerNorms are affine with torch's default eps 1e-5. The indices of
``proj`` are Wan's, so the original keys map one to one (``models/dit/wan_weights.py``). The tokens go to each
block's cross-attention as a second context beside the text (``cross_attention.py``). Wan2.1 FLF2V's extra
position embedding (``img_emb.emb_pos``) is not supported: such a checkpoint fails to load naming the key.
"""

from __future__ import annotations

import torch
from torch import nn

from avatarv.models.dit.layers import FP32LayerNorm

CLIP_LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default, as Wan's MLPProj and diffusers' FP32LayerNorm use


class ImageEmbedding(nn.Module):
    def __init__(self, image_dim: int, dim: int):
        super().__init__()
        self.proj = nn.Sequential(
            FP32LayerNorm(image_dim, eps=CLIP_LAYER_NORM_EPS), nn.Linear(image_dim, image_dim), nn.GELU(),
            nn.Linear(image_dim, dim), FP32LayerNorm(dim, eps=CLIP_LAYER_NORM_EPS),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image ``[B, L, image_dim]`` → ``[B, L, D]`` in the linears' compute dtype (the norms run in fp32)."""
        norm1, fc1, act, fc2, norm2 = self.proj
        h = fc2(act(fc1(norm1(image).to(fc1.weight.dtype))))
        return norm2(h).type_as(h)

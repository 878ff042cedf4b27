"""VideoVAE: frames (uint8 RGB) ↔ normalised latents, around ``diffusers.AutoencoderKLWan``.

Causal in time: 4k + 1 frames encode to k + 1 latent frames (the first latent frame holds one frame, each
later one four). Latents are normalised per channel with the VAE's ``latents_mean``/``latents_std`` as in
diffusers' Wan pipelines, so the DiT sees roughly unit-variance inputs.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch
from torch import nn

from avatarv.config import VAEConfig
from avatarv.errors import CheckpointError, ConfigError
from avatarv.models.vae.channel_norm import FastChannelNorm
from avatarv.models.vae.onednn_conv import OneDnnConv3d, onednn_available
from avatarv.precision import autocast


def wan_layout(spatial_stride: int, temporal_stride: int = 4) -> dict[str, list]:
    """``AutoencoderKLWan``'s ``dim_mult`` / ``temperal_downsample`` for the strides: Wan2.1's layout
    (``[1, 2, 4, 4]``, time halved at the last two levels) for 8× space, one level fewer for 4× (the world
    model v2's VAE: a ~20-px mouth spans 5 latent pixels instead of 2.5). Inverse of ``from_pretrained``'s
    reading of a config."""
    layouts = {(8, 4): ([1, 2, 4, 4], [False, True, True]), (4, 4): ([1, 2, 4], [True, True])}
    if (spatial_stride, temporal_stride) not in layouts:
        raise ConfigError(f"VAE strides {spatial_stride}× space / {temporal_stride}× time: expected one of "
                          + ", ".join(f"{s}×/{t}×" for s, t in layouts))
    dim_mult, temporal = layouts[spatial_stride, temporal_stride]
    return {"dim_mult": dim_mult, "temperal_downsample": temporal}


class VideoVAE(nn.Module):
    def __init__(self, cfg: VAEConfig, model=None):
        super().__init__()
        from diffusers import AutoencoderKLWan

        self.cfg = cfg
        self.model = model or AutoencoderKLWan(
            base_dim=cfg.base_dim, z_dim=cfg.z_dim, latents_mean=[0.0] * cfg.z_dim, latents_std=[1.0] * cfg.z_dim,
            **wan_layout(cfg.spatial_stride, cfg.temporal_stride),
        )
        self.model.eval()
        mean = torch.tensor(self.model.config.latents_mean, dtype=torch.float32)
        std = torch.tensor(self.model.config.latents_std, dtype=torch.float32)
        self.register_buffer("mean", mean.view(1, -1, 1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1, 1), persistent=False)
        # the dtype encode/decode compute in (weights stay fp32). bf16 autocast is 4.6× faster on a CPU with
        # AMX (latents within 0.3 %) and ~300× slower on one without native bf16, so the pipeline sets it from
        # the precision policy (avatarv.precision.compute_dtype); training and parity tests keep fp32
        self.compute_dtype: torch.dtype = torch.float32
        # fp32 conv3d on oneDNN at inference on the CPU (onednn_conv.py: 2–5× ATen's slow_conv3d, which its
        # heuristic picks for the per-frame calls of the causal decoder); False: ATen's own choice
        self.onednn_conv = True

    def _compute_context(self):
        """The compute context of encode/decode: bf16 autocast, or fp32 with oneDNN's 3-D convolutions and the
        channel norm as a sum of squares (channel_norm.py: the VAE's encode 1.25-1.4× faster)."""
        if self.compute_dtype == torch.float32 and self.onednn_conv and self.device.type == "cpu" and onednn_available():
            stack = ExitStack()
            stack.enter_context(OneDnnConv3d())
            stack.enter_context(FastChannelNorm())
            return stack
        return autocast(self.device, self.compute_dtype)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> VideoVAE:
        """A local diffusers-format AutoencoderKLWan directory (config.json + safetensors). Never downloads."""
        from diffusers import AutoencoderKLWan

        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise CheckpointError("not a VAE directory (no config.json)", directory)
        # weights may be stored in bf16 (the bundled checkpoints); compute is fp32
        model = AutoencoderKLWan.from_pretrained(str(directory), local_files_only=True, torch_dtype=torch.float32)
        # strides from the layout: one 2× spatial step per level after the first, 2× in time where marked
        c = model.config
        cfg = VAEConfig(base_dim=c.base_dim, z_dim=c.z_dim, spatial_stride=2 ** (len(c.dim_mult) - 1),
                        temporal_stride=2 ** sum(bool(t) for t in c.temperal_downsample))
        return cls(cfg, model)

    def save_pretrained(self, directory: str | Path) -> None:
        self.model.save_pretrained(str(directory))

    def set_latent_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-channel statistics of the raw latents (``[z]`` each), used to normalise; saved in the config."""
        mean, std = mean.detach().float().cpu(), std.detach().float().cpu()
        self.model.register_to_config(latents_mean=mean.tolist(), latents_std=std.tolist())
        self.mean = mean.view(1, -1, 1, 1, 1).to(self.mean.device)
        self.std = std.view(1, -1, 1, 1, 1).to(self.std.device)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @torch.no_grad()
    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """frames uint8 ``[T, H, W, 3]`` (T = 4k+1) → normalised latents ``[1, z, k+1, H/8, W/8]``."""
        x = torch.as_tensor(np.ascontiguousarray(frames)).to(self.device)
        x = x.permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0  # [1, 3, T, H, W] in [-1, 1]
        with self._compute_context():
            latents = self.model.encode(x).latent_dist.mode().float()
        return (latents - self.mean) / self.std

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """normalised latents ``[1, z, F, h, w]`` → uint8 frames ``[4(F−1)+1, 8h, 8w, 3]``."""
        z = latents.float() * self.std + self.mean
        with self._compute_context():
            video = self.model.decode(z).sample.float().clamp(-1, 1)  # [1, 3, T, H, W]
        return ((video[0].permute(1, 2, 3, 0) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()

"""A tiny, fast video encoder for the world VAE's latents: what re-encodes a chunk's tail as the next prefix.

The chunk loop re-encodes the last ``4(k−1)+1`` decoded frames of every chunk (5 frames at 2 overlap latents) as
the known prefix of the next one; with the full causal 3-D encoder that is 0.2–0.3 s a chunk on 2 CPU cores,
~15 % of the bundled student's wall time. This encoder is distilled from the full one on exactly that job
(training/tiny_encoder.py) and is ~10× cheaper.

The layout follows TAEHV's encoder (madebyollin/taehv, ``taehv.py``; TAEW2.1 for Wan 2.1's latents): only 2-D
convolutions run over all frames at once; time enters through

* ``MemBlock`` (shared with the tiny decoder): a residual block whose first convolution also reads the previous
  frame's features;
* ``TimePool``: ``stride`` consecutive frames of ``C`` channels read as one frame of ``stride·C`` channels by a
  1×1 convolution (temporal downsampling).

Wan's causal VAE encodes frame 0 alone as latent 0 and each later group of four as one latent; TAEHV gets the
same grouping by repeating frame 0 three times in front, so ``4(F−1)+1`` frames become ``4F`` and pool to F.
Space: a pixel unshuffle (2×, no full-resolution convolution, the decoder's ``out_shuffle`` in reverse), then
stride-2 convolutions. It writes the *normalised* latents (what ``VideoVAE.encode`` returns; mean only, no
sampling), from RGB in [−1, 1]. Saved as ``config.json`` + ``model.safetensors`` in a folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avatarv.models.vae.tiny_decoder import MemBlock, conv3x3
from avatarv.models.vae.tiny_folder import load_folder, save_folder


@dataclass(frozen=True)
class TinyEncoderConfig:
    latent_channels: int = 16
    in_channels: int = 3
    # the input's pixel unshuffle: in_shuffle² sub-pixels become channels (the first 2× in space)
    in_shuffle: int = 2
    # width of the input convolution, then of each stage
    widths: tuple[int, ...] = (24, 24, 48, 64)
    # MemBlocks per stage (after the stage's pooling)
    blocks: tuple[int, ...] = (1, 2, 2)
    # temporal 2× pooling at the start of each stage: Wan's 4× in time (TAEW2.1: two of three)
    time_downscale: tuple[bool, ...] = (True, True, False)
    # stride-2 convolution at the start of each stage (TAEHV: all three; here the pixel unshuffle does one)
    space_downscale: tuple[bool, ...] = (False, True, True)

    def __post_init__(self):
        for name in ("widths", "blocks"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        for name in ("time_downscale", "space_downscale"):
            object.__setattr__(self, name, tuple(bool(v) for v in getattr(self, name)))
        n = len(self.blocks)
        if not (len(self.widths) == n + 1 and len(self.time_downscale) == len(self.space_downscale) == n):
            raise ValueError(f"tiny encoder: {n} stages need {n + 1} widths and {n} time / space downscale flags "
                             f"(got {len(self.widths)}, {len(self.time_downscale)}, {len(self.space_downscale)})")

    @property
    def time_stride(self) -> int:
        return 2 ** sum(self.time_downscale)

    @property
    def space_stride(self) -> int:
        return 2 ** sum(self.space_downscale) * self.in_shuffle


# named presets: "debug" for tests, "small" the world-small tail encoder, "taehv" TAEHV/TAEW2.1's own widths
TINY_ENCODER_PRESETS: dict[str, TinyEncoderConfig] = {
    "debug": TinyEncoderConfig(widths=(8, 8, 8, 8), blocks=(1, 1, 1)),
    "small": TinyEncoderConfig(),
    "taehv": TinyEncoderConfig(in_shuffle=1, widths=(64, 64, 64, 64), blocks=(3, 3, 3),
                               space_downscale=(True, True, True)),
}


def tiny_encoder_config(name: str) -> TinyEncoderConfig:
    if name not in TINY_ENCODER_PRESETS:
        from avatarv.errors import ConfigError

        raise ConfigError(f"unknown tiny encoder preset {name!r} (known: {', '.join(TINY_ENCODER_PRESETS)})")
    return TINY_ENCODER_PRESETS[name]


class TimePool(nn.Module):
    """``stride`` consecutive frames of C channels → one frame (a 1×1 conv from stride·C channels)."""

    def __init__(self, width: int, stride: int):
        super().__init__()
        self.stride = stride
        self.proj = nn.Conv2d(width * stride, width, 1, bias=False) if stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bt, c, h, w = x.shape  # [B·T, C, H, W] → [B·T/stride, C, H, W]
        return self.proj(x.reshape(bt // self.stride, c * self.stride, h, w))


class TinyVideoEncoder(nn.Module):
    def __init__(self, cfg: TinyEncoderConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        self.conv_in = conv3x3(cfg.in_channels * cfg.in_shuffle**2, w[0])
        self.stages = nn.ModuleList()
        for i, (n, pool, down) in enumerate(zip(cfg.blocks, cfg.time_downscale, cfg.space_downscale, strict=True)):
            self.stages.append(nn.ModuleDict({
                "pool": TimePool(w[i], 2 if pool else 1),
                "conv": nn.Conv2d(w[i], w[i + 1], 3, stride=2 if down else 1, padding=1, bias=False),
                "blocks": nn.ModuleList(MemBlock(w[i + 1]) for _ in range(n)),
            }))
        self.conv_out = conv3x3(w[-1], cfg.latent_channels)

    @property
    def frames_to_pad(self) -> int:
        return self.cfg.time_stride - 1

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """RGB ``[B, 3, 4(F−1)+1, H, W]`` in [−1, 1] → normalised latents ``[B, z, F, H/8, W/8]``."""
        b, c, t, h, w = video.shape
        stride = self.cfg.time_stride
        if (t - 1) % stride:
            raise ValueError(f"tiny encoder: {t} frames is not {stride}k + 1")
        x = video.permute(0, 2, 1, 3, 4)  # [B, T, 3, H, W]
        x = torch.cat([x[:, :1].expand(-1, self.frames_to_pad, -1, -1, -1), x], 1)  # frame 0 four times: [B, 4F, …]
        frames = x.shape[1]
        x = x.flatten(0, 1)  # [B·4F, 3, H, W]
        if self.cfg.in_shuffle > 1:
            x = F.pixel_unshuffle(x, self.cfg.in_shuffle)  # [B·4F, 3·p², H/p, W/p]
        x = F.relu(self.conv_in(x))
        for stage in self.stages:
            x = stage["pool"](x)
            frames //= stage["pool"].stride
            x = stage["conv"](x)
            for block in stage["blocks"]:
                x = block(x, frames)
        x = self.conv_out(x)  # [B·F, z, h, w]
        return x.view(b, frames, *x.shape[1:]).permute(0, 2, 1, 3, 4)

    # ------------------------------------------------------------------ folder I/O
    def save_pretrained(self, directory: str | Path) -> None:
        save_folder(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> TinyVideoEncoder:
        """A folder written by ``save_pretrained``; a missing or corrupt one is a ``CheckpointError``."""
        return load_folder(cls, TinyEncoderConfig, directory, "tiny encoder")

    @torch.no_grad()
    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``VideoVAE.encode``'s interface: uint8 ``[T, H, W, 3]`` (T = 4k+1) → normalised latents
        ``[1, z, k+1, H/8, W/8]`` (fp32 always: at this size bf16 gains little, and costs ~300× without native
        bf16)."""
        device = next(self.parameters()).device
        x = torch.as_tensor(np.ascontiguousarray(frames)).to(device)
        x = x.permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0  # [1, 3, T, H, W]
        return self(x).float()


__all__ = ["TINY_ENCODER_PRESETS", "TimePool", "TinyEncoderConfig", "TinyVideoEncoder", "tiny_encoder_config"]

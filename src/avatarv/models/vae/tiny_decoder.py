"""A tiny, fast video decoder for the world VAE's latents, and ``FastDecodeVAE`` (full encoder, tiny decoder).

The layout follows TAEHV's decoder (madebyollin/taehv, ``taehv.py``: "Tiny AutoEncoder for Hunyuan Video",
also TAEW2.1 for Wan 2.1's latents): only 2-D convolutions, run over all frames at once; time enters through

* ``MemBlock``: a residual block whose first convolution also sees the *previous* frame's input features
  (zeros at frame 0), so each frame knows where the last one was (causal, one frame back per block);
* ``TimeGrow``: a 1×1 convolution to ``stride × C`` channels, read as ``stride`` consecutive frames of ``C``
  channels (temporal upsampling, one latent frame → ``stride`` frames).

Per stage: MemBlocks at one resolution, nearest 2× spatial upsampling, TimeGrow, a 3×3 convolution to the next
width. Wan's causal VAE has 4× time: latent 0 is frame 0 alone, each later latent four frames. The decoder
grows every latent to four frames and trims the first three of them (TAEHV's ``frames_to_trim``), so F latents
give 4F − 3 = 4(F − 1) + 1 frames: latent 0 → frame 0, latent k → frames 4k − 3 … 4k, as the full decoder.

It reads the *normalised* latents (what ``VideoVAE.encode`` returns and the DiT generates; ~unit variance),
softly clamped to ±3 as TAEHV does, and writes RGB in [−1, 1]. Saved as ``config.json`` +
``model.safetensors`` in a folder. Trained by distillation from the full decoder (training/tiny_decoder.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avatarv.errors import CheckpointError
from avatarv.models.vae.tiny_folder import load_folder, save_folder


@dataclass(frozen=True)
class TinyDecoderConfig:
    latent_channels: int = 16
    # width of each stage, and of the last convolution before the output
    widths: tuple[int, ...] = (64, 48, 24, 24)
    # MemBlocks per stage (the high-resolution stages cost the most: keep them shallow)
    blocks: tuple[int, ...] = (2, 2, 1)
    # temporal 2× at the end of each stage: Wan's 4× in time (taew2_1: (False, True, True))
    time_upscale: tuple[bool, ...] = (False, True, True)
    # nearest spatial 2× at the end of each stage (TAEHV: all three)
    space_upscale: tuple[bool, ...] = (True, True, False)
    # the output convolution writes out_shuffle² sub-pixels per pixel (pixel shuffle): the last 2× in space
    # without any full-resolution convolution (4× fewer multiply-adds there; TAEHV: 1)
    out_shuffle: int = 2
    out_channels: int = 3
    # the first stage's MemBlocks also read latent 0's features (``AnchorMemBlock``): Wan's causal decoder carries
    # colour and identity from latent 0 (frame 0 alone) through its cache, while MemBlocks reach back one frame
    # each (~4 latents in all); without it the last frames of a 9-latent chunk lose colour (hair turns skin)
    anchor: bool = False

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        object.__setattr__(self, "time_upscale", tuple(bool(t) for t in self.time_upscale))
        object.__setattr__(self, "space_upscale", tuple(bool(t) for t in self.space_upscale))
        n = len(self.blocks)
        if not (len(self.widths) == n + 1 and len(self.time_upscale) == len(self.space_upscale) == n):
            raise ValueError(f"tiny decoder: {n} stages need {n + 1} widths and {n} time / space upscale flags "
                             f"(got {len(self.widths)}, {len(self.time_upscale)}, {len(self.space_upscale)})")

    @property
    def time_stride(self) -> int:
        return 2 ** sum(self.time_upscale)

    @property
    def space_stride(self) -> int:
        return 2 ** sum(self.space_upscale) * self.out_shuffle


# named presets: "debug" for tests, "small" the world-small decoder, "taehv" TAEHV/TAEW2.1's own widths
TINY_DECODER_PRESETS: dict[str, TinyDecoderConfig] = {
    "debug": TinyDecoderConfig(widths=(8, 8, 8, 8), blocks=(1, 1, 1)),
    "small": TinyDecoderConfig(),
    "small-anchor": TinyDecoderConfig(anchor=True),
    "taehv": TinyDecoderConfig(widths=(256, 128, 64, 64), blocks=(3, 3, 3), space_upscale=(True, True, True),
                               out_shuffle=1),
}


def tiny_decoder_config(name: str) -> TinyDecoderConfig:
    if name not in TINY_DECODER_PRESETS:
        from avatarv.errors import ConfigError

        raise ConfigError(f"unknown tiny decoder preset {name!r} (known: {', '.join(TINY_DECODER_PRESETS)})")
    return TINY_DECODER_PRESETS[name]


def conv3x3(c_in: int, c_out: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)


class SoftClamp(nn.Module):
    """3·tanh(x/3): identity near 0, bounded at ±3 (latents far out of distribution cannot blow up)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class MemBlock(nn.Module):
    """relu(convs([x_t, x_{t−1}]) + x_t): a residual block that also reads the previous frame's input."""

    def __init__(self, width: int):
        super().__init__()
        self.convs = nn.Sequential(conv3x3(2 * width, width), nn.ReLU(), conv3x3(width, width), nn.ReLU(),
                                   conv3x3(width, width))

    def inputs(self, x: torch.Tensor, frames: int) -> list[torch.Tensor]:
        """What the first convolution reads, each ``[B·T, C, H, W]``: x_t and x_{t−1} (zeros at t = 0)."""
        bt, c, h, w = x.shape
        seq = x.view(bt // frames, frames, c, h, w)  # [B, T, C, H, W]
        return [x, F.pad(seq, (0, 0, 0, 0, 0, 0, 1, 0))[:, :frames].reshape(bt, c, h, w)]

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """``x`` ``[B·T, C, H, W]`` (frames of each clip consecutive, ``frames`` = T)."""
        return F.relu(self.convs(torch.cat(self.inputs(x, frames), 1)) + x)


class AnchorMemBlock(MemBlock):
    """relu(convs([x_t, x_{t−1}, x_0]) + x_t): a MemBlock that also reads its clip's first frame (latent 0)."""

    def __init__(self, width: int):
        super().__init__(width)
        self.convs[0] = conv3x3(3 * width, width)

    def inputs(self, x: torch.Tensor, frames: int) -> list[torch.Tensor]:
        bt, c, h, w = x.shape
        first = x.view(bt // frames, frames, c, h, w)[:, :1].expand(-1, frames, -1, -1, -1)  # x_0 for every t
        return [*super().inputs(x, frames), first.reshape(bt, c, h, w)]


class TimeGrow(nn.Module):
    """One frame of C channels → ``stride`` consecutive frames (a 1×1 conv to stride·C channels, regrouped)."""

    def __init__(self, width: int, stride: int):
        super().__init__()
        self.stride = stride
        self.proj = nn.Conv2d(width, width * stride, 1, bias=False) if stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bt, c, h, w = x.shape  # [B·T, C, H, W] → [B·T·stride, C, H, W]
        return self.proj(x).reshape(bt * self.stride, c, h, w)


class TinyVideoDecoder(nn.Module):
    def __init__(self, cfg: TinyDecoderConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        self.clamp = SoftClamp()
        self.conv_in = conv3x3(cfg.latent_channels, w[0])
        self.stages = nn.ModuleList()
        self.upsample = list(cfg.space_upscale)
        for i, (n, grow) in enumerate(zip(cfg.blocks, cfg.time_upscale, strict=True)):
            self.stages.append(nn.ModuleDict({
                "blocks": nn.ModuleList((AnchorMemBlock if cfg.anchor and i == 0 else MemBlock)(w[i])
                                        for _ in range(n)),
                "grow": TimeGrow(w[i], 2 if grow else 1),
                "conv": conv3x3(w[i], w[i + 1], bias=False),
            }))
        self.conv_out = conv3x3(w[-1], cfg.out_channels * cfg.out_shuffle**2)

    @property
    def frames_to_trim(self) -> int:
        return self.cfg.time_stride - 1

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """normalised latents ``[B, z, F, h, w]`` → RGB ``[B, 3, 4(F−1)+1, 8h, 8w]`` in ~[−1, 1] (not clamped)."""
        b, _, f, _, _ = latents.shape
        x = latents.permute(0, 2, 1, 3, 4).flatten(0, 1)  # [B·F, z, h, w]
        x = F.relu(self.conv_in(self.clamp(x)))  # [B·F, w0, h, w]
        frames = f
        for stage, upsample in zip(self.stages, self.upsample, strict=True):
            for block in stage["blocks"]:
                x = block(x, frames)
            # grow in time before growing in space: a 1×1 conv commutes with nearest upsampling (TAEHV does it
            # after; same maths, 4× the work)
            x = stage["grow"](x)  # [B·T·s, C, H, W]
            frames *= stage["grow"].stride
            if upsample:
                x = F.interpolate(x, scale_factor=2, mode="nearest")  # [B·T, C, 2H, 2W]
            x = stage["conv"](x)
        x = self.conv_out(F.relu(x))  # [B·4F, 3·p², H/p, W/p]
        if self.cfg.out_shuffle > 1:
            x = F.pixel_shuffle(x, self.cfg.out_shuffle)  # [B·4F, 3, 8h, 8w]
        x = x.view(b, frames, *x.shape[1:])[:, self.frames_to_trim:]  # [B, 4F−3, 3, H, W]
        return x.permute(0, 2, 1, 3, 4)

    @torch.no_grad()
    def with_anchor(self) -> TinyVideoDecoder:
        """This decoder with the anchor path (``cfg.anchor``) added and computing exactly what it did: every
        weight copied, the first-stage MemBlocks' new latent-0 input channels zero (training then opens them)."""
        if self.cfg.anchor:
            return self
        out = TinyVideoDecoder(replace(self.cfg, anchor=True))
        own = out.state_dict()
        for name, value in self.state_dict().items():
            if own[name].shape == value.shape:
                own[name].copy_(value)
            else:  # stages.0.blocks.*.convs.0.weight: [w, 2w, 3, 3] → [w, 3w, 3, 3], the third w zero
                own[name].zero_()[:, : value.shape[1]].copy_(value)
        return out.train(self.training)

    # ------------------------------------------------------------------ folder I/O
    def save_pretrained(self, directory: str | Path) -> None:
        save_folder(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> TinyVideoDecoder:
        """A folder written by ``save_pretrained``; a missing or corrupt one is a ``CheckpointError``."""
        return load_folder(cls, TinyDecoderConfig, directory, "tiny decoder")


class FastDecodeVAE(nn.Module):
    """``VideoVAE``'s interface with the full encoder and the tiny decoder: ``encode`` is the VAE's own,
    ``decode`` takes the same normalised latents and returns the same uint8 frames, ~10× faster."""

    def __init__(self, vae, decoder: TinyVideoDecoder):
        super().__init__()
        self.vae = vae
        self.decoder = decoder.eval()

    @classmethod
    def from_folder(cls, vae, tiny_dir: str | Path) -> FastDecodeVAE:
        """``vae``: a ``VideoVAE`` (or its folder); ``tiny_dir``: a tiny decoder folder trained on its latents."""
        if isinstance(vae, (str, Path)):
            from avatarv.models.vae.wan_vae import VideoVAE

            vae = VideoVAE.from_pretrained(vae)
        decoder = TinyVideoDecoder.from_pretrained(tiny_dir)
        if decoder.cfg.latent_channels != vae.cfg.z_dim:
            raise CheckpointError(f"tiny decoder reads {decoder.cfg.latent_channels} latent channels, the VAE has "
                                  f"{vae.cfg.z_dim}", tiny_dir)
        return cls(vae, decoder.to(vae.device))

    # what the pipeline reads off a VideoVAE
    @property
    def cfg(self):
        return self.vae.cfg

    @property
    def device(self) -> torch.device:
        return self.vae.device

    @property
    def compute_dtype(self) -> torch.dtype:
        return self.vae.compute_dtype

    @compute_dtype.setter
    def compute_dtype(self, dtype: torch.dtype) -> None:
        # the tiny decoder always computes fp32: at its size bf16 gains little, and costs ~300× without native bf16
        self.vae.compute_dtype = dtype

    def save_pretrained(self, directory: str | Path) -> None:
        """The full VAE (a ``VideoVAE`` folder, as before); save ``self.decoder`` with its own save_pretrained."""
        self.vae.save_pretrained(directory)

    @torch.no_grad()
    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """frames uint8 ``[T, H, W, 3]`` (T = 4k+1) → normalised latents ``[1, z, k+1, H/8, W/8]`` (the VAE's)."""
        return self.vae.encode(frames)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """normalised latents ``[1, z, F, h, w]`` → uint8 frames ``[4(F−1)+1, 8h, 8w, 3]``."""
        z = latents.to(self.device, torch.float32)
        video = self.decoder(z).float().clamp(-1, 1)  # [1, 3, T, H, W]
        return ((video[0].permute(1, 2, 3, 0) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


__all__ = ["TINY_DECODER_PRESETS", "FastDecodeVAE", "TinyDecoderConfig", "TinyVideoDecoder", "tiny_decoder_config"]

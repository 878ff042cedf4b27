"""Wan2.1's original VAE checkpoint (``Wan2.1_VAE.pth``) → ``diffusers.AutoencoderKLWan``, by an explicit key table.

The table follows diffusers' ``scripts/convert_wan_to_diffusers.py`` (``convert_vae``): Wan's ``WanVAE_``
(``wan/modules/vae.py``: ``Encoder3d.downsamples`` a flat list of ``ResidualBlock`` / ``Resample``,
``Decoder3d.upsamples`` a flat list, ``middle`` = resblock, attention, resblock, ``head`` = RMS norm, SiLU,
conv; top-level ``conv1`` / ``conv2`` around the latent) renamed to diffusers' ``encoder.down_blocks.N`` (the
same flat list), ``decoder.up_blocks.i.resnets.j`` / ``.upsamplers.0``, ``mid_block.resnets`` / ``attentions``,
``norm_out`` / ``conv_out``, ``quant_conv`` / ``post_quant_conv``. diffusers writes the decoder grouping out for
Wan2.1's 4 levels × 3 resblocks (``upsamples`` 0-2 / 4-6 / 8-10 / 12-14, resamples 3 / 7 / 11); here it is
generated from ``dim_mult`` and ``num_res_blocks``, which gives the same table for the published config.

This file also holds the three small helpers the Wan ``.pth`` loaders share (``read_wan_pth``,
``rename_with_table``, ``load_exactly``; used by ``encoders/umt5.py`` and ``encoders/clip_vision.py``): every key
of the file is either renamed by the table or named as unexpected; every parameter of the model is either
filled or named as missing; errors name the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from avatarv.errors import CheckpointError

VAE_PTH_NAME = "Wan2.1_VAE.pth"

# ResidualBlock.residual = [RMS_norm, SiLU, CausalConv3d, RMS_norm, SiLU, Dropout, CausalConv3d] (+ shortcut)
_RESBLOCK = {"residual.0.gamma": "norm1.gamma", "residual.2.weight": "conv1.weight", "residual.2.bias": "conv1.bias",
             "residual.3.gamma": "norm2.gamma", "residual.6.weight": "conv2.weight", "residual.6.bias": "conv2.bias",
             "shortcut.weight": "conv_shortcut.weight", "shortcut.bias": "conv_shortcut.bias"}
# Resample: ``resample`` = [ZeroPad2d | Upsample, Conv2d]; 3-D modes add a temporal ``time_conv``
_RESAMPLE = {n: n for n in ("resample.1.weight", "resample.1.bias", "time_conv.weight", "time_conv.bias")}
_ATTENTION = {n: n for n in ("norm.gamma", "to_qkv.weight", "to_qkv.bias", "proj.weight", "proj.bias")}
_CONV = {"weight": "weight", "bias": "bias"}


# ---------------------------------------------------------------- shared by the Wan .pth loaders
def read_wan_pth(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state dict saved with ``torch.save`` (Wan's ``.pth`` files), on the CPU, without unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such checkpoint file", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a legacy (pre-zip) file cannot be memory-mapped; try once without
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # pickle / zip errors of a corrupt or foreign file
            raise CheckpointError(f"cannot read the checkpoint: {err}", path) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("not a state dict of tensors", path)
    return state


def rename_with_table(state: dict[str, torch.Tensor], table: dict[str, str], path: str | Path, what: str,
                      skip: Iterable[str] = ()) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``state`` renamed by ``table`` (source key → target key). Keys starting with a ``skip`` prefix are dropped
    and returned; any other key missing from the table is an error naming it and the file."""
    skip = tuple(skip)
    renamed, skipped, unexpected = {}, [], []
    for key, value in state.items():
        if skip and key.startswith(skip):
            skipped.append(key)
        elif key in table:
            renamed[table[key]] = value
        else:
            unexpected.append(key)
    if unexpected:
        raise CheckpointError(f"not a {what} checkpoint: unexpected {len(unexpected)} keys: "
                              f"{', '.join(unexpected[:8])}", path)
    return renamed, skipped


def load_exactly(model: nn.Module, renamed: dict[str, torch.Tensor], table: dict[str, str], path: str | Path,
                 what: str, assign: bool = False) -> None:
    """Load ``renamed`` into ``model``: every parameter filled, with its shape; else an error naming the source
    key (the inverse of ``table``) and the file. ``assign``: take the tensors themselves (a model built on the
    meta device: no random initialisation of billions of parameters, no second copy)."""
    own = model.state_dict()
    source = {v: k for k, v in table.items()}
    missing = [source.get(k, k) for k in own if k not in renamed]
    unexpected = [source.get(k, k) for k in renamed if k not in own]
    shapes = [f"{source.get(k, k)}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in renamed.items()
              if k in own and tuple(v.shape) != tuple(own[k].shape)]
    problems = [f"{label} {len(keys)} keys: {', '.join(keys[:8])}" for label, keys in
                (("missing", missing), ("unexpected", unexpected), ("misshaped", shapes)) if keys]
    if problems:
        raise CheckpointError(f"{what} checkpoint does not match the model: " + "; ".join(problems), path)
    model.load_state_dict(renamed, strict=True, assign=assign)


# ---------------------------------------------------------------- the VAE table
def _block(table: dict[str, str], wan: str, ours: str, params: dict[str, str]) -> None:
    for w, d in params.items():
        table[f"{wan}.{w}"] = f"{ours}.{d}"


def wan_vae_key_table(dim_mult: tuple[int, ...] = (1, 2, 4, 4), num_res_blocks: int = 2) -> dict[str, str]:
    """Every ``Wan2.1_VAE.pth`` key name → its ``AutoencoderKLWan`` name (``convert_vae``'s table, generated).

    Lists a shortcut for every residual block; only those whose in/out widths differ exist in either model."""
    levels = len(dim_mult)
    table: dict[str, str] = {}
    for side in ("encoder", "decoder"):
        _block(table, f"{side}.conv1", f"{side}.conv_in", _CONV)
        for j, resnet in ((0, 0), (2, 1)):
            _block(table, f"{side}.middle.{j}", f"{side}.mid_block.resnets.{resnet}", _RESBLOCK)
        _block(table, f"{side}.middle.1", f"{side}.mid_block.attentions.0", _ATTENTION)
        table[f"{side}.head.0.gamma"] = f"{side}.norm_out.gamma"
        _block(table, f"{side}.head.2", f"{side}.conv_out", _CONV)
    _block(table, "conv1", "quant_conv", _CONV)
    _block(table, "conv2", "post_quant_conv", _CONV)
    index = 0  # Encoder3d.downsamples: per level num_res_blocks resblocks, then a Resample except at the last
    for level in range(levels):
        for _ in range(num_res_blocks):
            _block(table, f"encoder.downsamples.{index}", f"encoder.down_blocks.{index}", _RESBLOCK)
            index += 1
        if level != levels - 1:
            _block(table, f"encoder.downsamples.{index}", f"encoder.down_blocks.{index}", _RESAMPLE)
            index += 1
    index = 0  # Decoder3d.upsamples: per level num_res_blocks + 1 resblocks, then a Resample except at the last
    for level in range(levels):
        for resnet in range(num_res_blocks + 1):
            _block(table, f"decoder.upsamples.{index}", f"decoder.up_blocks.{level}.resnets.{resnet}", _RESBLOCK)
            index += 1
        if level != levels - 1:
            _block(table, f"decoder.upsamples.{index}", f"decoder.up_blocks.{level}.upsamplers.0", _RESAMPLE)
            index += 1
    return table


def load_wan_vae_pth(path: str | Path, dim_mult: tuple[int, ...] = (1, 2, 4, 4),
                     num_res_blocks: int = 2) -> dict[str, torch.Tensor]:
    """``Wan2.1_VAE.pth`` (or a folder holding it) → a state dict in ``AutoencoderKLWan`` key names."""
    path = Path(path)
    if path.is_dir():
        path = path / VAE_PTH_NAME
    state = read_wan_pth(path)
    renamed, _ = rename_with_table(state, wan_vae_key_table(dim_mult, num_res_blocks), path, "Wan VAE")
    return renamed


def build_wan_vae(path: str | Path, dtype: torch.dtype = torch.float32):
    """``diffusers.AutoencoderKLWan`` with Wan2.1's config, loaded strictly from ``Wan2.1_VAE.pth``.

    ``base_dim`` / ``z_dim`` are read off the tensors (96 / 16 for the published file); every other setting is
    diffusers' default, which is Wan2.1's (``dim_mult`` 1,2,4,4, 2 resblocks, time down-sampling in levels 2-3,
    the published ``latents_mean`` / ``latents_std``; zeros / ones for a ``z_dim`` other than 16)."""
    from diffusers import AutoencoderKLWan

    path = Path(path)
    file = path / VAE_PTH_NAME if path.is_dir() else path
    table = wan_vae_key_table()
    state = load_wan_vae_pth(file)
    if "encoder.conv_in.weight" not in state or "post_quant_conv.weight" not in state:
        raise CheckpointError("not a Wan VAE checkpoint (no encoder.conv1 / conv2)", file)
    base_dim = int(state["encoder.conv_in.weight"].shape[0])  # [base_dim, 3, 3, 3, 3]
    z_dim = int(state["post_quant_conv.weight"].shape[0])  # [z, z, 1, 1, 1]
    stats = {} if z_dim == 16 else {"latents_mean": [0.0] * z_dim, "latents_std": [1.0] * z_dim}
    model = AutoencoderKLWan(base_dim=base_dim, z_dim=z_dim, **stats)
    load_exactly(model, state, table, file, "Wan VAE")
    return model.to(dtype).eval()


def video_vae_from_wan_pth(path: str | Path):
    """A :class:`~avatarv.models.vae.wan_vae.VideoVAE` around the VAE of ``Wan2.1_VAE.pth`` (fp32 weights, as
    ``VideoVAE.from_pretrained``; strides 8 in space, 4 in time)."""
    from avatarv.config import VAEConfig
    from avatarv.models.vae.wan_vae import VideoVAE

    model = build_wan_vae(path)
    cfg = VAEConfig(base_dim=model.config.base_dim, z_dim=model.config.z_dim, spatial_stride=8, temporal_stride=4)
    return VideoVAE(cfg, model)

"""A small SyncNet for the world, with the public SyncNet's interface (``syncnet.py``).

Why smaller: the public network embeds five 224 x 224 crops with a 96-channel 7 x 7 x 5 first layer (~1.5
GFLOP per window); trained contrastively on 2 shared CPU cores with one thread for <= 30 minutes it would see a
few hundred batches. This variant takes the *same inputs* (crops ``[B,3,T,224,224]`` BGR 0..255 exactly as
:func:`avatarv.eval.syncnet.lip_input` makes them, MFCC windows ``[B,1,13,20]``) and returns the same kind of
output (L2-comparable embeddings, ``embed_lip_sequence`` -> ``[T-4, D]``), so ``sync.evaluate_track`` and the
Sync-C / Sync-D maths run unchanged. Inside, crops are average-pooled 4 x 4 to 56 x 56 (world faces are ~55-110
px in 128-256 px frames: the crops hold no more detail than that) and both towers are ~20x narrower.

As in the original, only the lips' first layer mixes time (kernel 5), so the lip tower is fully convolutional
in time: ``embed_lip_sequence`` on T frames gives the T-4 window embeddings at once.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from avatarv.eval.small_weights import load_small_weights, save_small_weights
from avatarv.eval.syncnet import N_MFCC, WINDOW_FRAMES

POOL = 4  # 224 -> 56
SMALL = 56
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "eval" / "world_syncnet.safetensors"  # package data


def _conv(dims: int, c_in: int, c_out: int, kernel, stride=1, padding=0) -> nn.Sequential:
    conv, norm = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
    return nn.Sequential(conv(c_in, c_out, kernel, stride, padding, bias=False), norm(c_out), nn.ReLU())


class Head(nn.Module):
    """flattened features -> hidden (BN, ReLU) -> embedding, like the original ``netfc*``."""

    def __init__(self, dim_in: int, hidden: int, dim_out: int):
        super().__init__()
        self.hidden = nn.Linear(dim_in, hidden)
        self.norm = nn.BatchNorm1d(hidden)
        self.out = nn.Linear(hidden, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.norm(self.hidden(x))))


class WorldSyncNet(nn.Module):
    def __init__(self, width: int = 32, embed_dim: int = 128, audio_width: int = 16):
        super().__init__()
        w, aw = width, audio_width
        self.embed_dim = embed_dim
        # MFCC normalisation (per coefficient; set from the training data, saved with the weights)
        self.register_buffer("mfcc_mean", torch.zeros(N_MFCC))
        self.register_buffer("mfcc_std", torch.ones(N_MFCC))
        # narrower than the lips: training embeds 31 + run audio windows per clip for `run` lip windows
        self.audio_encoder = nn.Sequential(
            _conv(2, 1, aw, 3, padding=1),  # [B,aw,13,20]
            _conv(2, aw, 2 * aw, 3, stride=(1, 2), padding=1),  # [B,2aw,13,10]
            _conv(2, 2 * aw, 3 * aw, 3, stride=2, padding=1),  # [B,3aw,7,5]
            _conv(2, 3 * aw, 4 * aw, 3, stride=(2, 1), padding=1),  # [B,4aw,4,5]
        )
        self.audio_head = Head(4 * aw * 4 * 5, 256, embed_dim)
        self.lip_encoder = nn.Sequential(
            _conv(3, 3, w, (WINDOW_FRAMES, 5, 5), stride=(1, 2, 2), padding=(0, 2, 2)),  # [B,w,T-4,28,28]
            _conv(3, w, 2 * w, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),  # 14
            _conv(3, 2 * w, 3 * w, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),  # 7
            _conv(3, 3 * w, 4 * w, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),  # [B,4w,T-4,4,4]
        )
        self.lip_head = Head(4 * w * 16, 256, embed_dim)

    # --- inputs ---------------------------------------------------------------------------------------------

    @staticmethod
    def small_lips(frames: torch.Tensor) -> torch.Tensor:
        """``[B,3,T,224,224]`` BGR 0..255 (``lip_input``) -> ``[B,3,T,56,56]`` in -0.5..0.5 (4 x 4 mean)."""
        b, c, t, h, w = frames.shape
        x = F.avg_pool2d(frames.transpose(1, 2).reshape(b * t, c, h, w), POOL)
        return (x.reshape(b, t, c, h // POOL, w // POOL).transpose(1, 2) / 255.0) - 0.5

    # --- towers on prepared inputs (the trainer calls these) ------------------------------------------------

    def audio_embed(self, mfcc: torch.Tensor) -> torch.Tensor:  # [B,1,13,20] raw MFCC -> [B,D]
        x = (mfcc - self.mfcc_mean[None, None, :, None]) / self.mfcc_std[None, None, :, None]
        return self.audio_head(self.audio_encoder(x).flatten(1))

    def lip_embed_small(self, small: torch.Tensor) -> torch.Tensor:  # [B,3,T,56,56] -> [B*(T-4), D]
        f = self.lip_encoder(small)  # [B,C,T-4,4,4]
        b, c, n = f.shape[:3]
        return self.lip_head(f.transpose(1, 2).reshape(b * n, c * 16))

    # --- the SyncNet interface -------------------------------------------------------------------------------

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        return self.audio_embed(mfcc)

    def embed_lips(self, frames: torch.Tensor) -> torch.Tensor:  # [B,3,5,224,224] -> [B,D]
        return self.lip_embed_small(self.small_lips(frames))

    def embed_lip_sequence(self, frames: torch.Tensor, chunk: int = 16) -> torch.Tensor:
        """``[1,3,T,224,224]`` -> ``[T-4, D]``; window ``i`` covers frames ``i..i+4``."""
        n = frames.shape[2] - WINDOW_FRAMES + 1
        out = [
            self.lip_embed_small(self.small_lips(frames[:, :, s : min(n, s + chunk) + WINDOW_FRAMES - 1]))
            for s in range(0, max(n, 0), chunk)
        ]
        return torch.cat(out, 0) if out else frames.new_zeros((0, self.embed_dim))


def save_world_syncnet(model: WorldSyncNet, path: str | Path, meta: dict) -> Path:
    """fp16 safetensors (a few MB) with the config and training figures in the metadata."""
    return save_small_weights(model, path, meta)


def load_world_syncnet(path: str | Path | None = None) -> WorldSyncNet:
    """The shipped world SyncNet (``src/avatarv/assets/eval/world_syncnet.safetensors``) in eval mode."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    return load_small_weights(path, lambda meta: WorldSyncNet(int(meta.get("width", 32)), int(meta.get("embed_dim", 128)), int(meta.get("audio_width", 16))), "world SyncNet", "make train-syncnet")


def is_world_syncnet_file(path: str | Path) -> bool:
    """True for a safetensors file written by :func:`save_world_syncnet`."""
    from safetensors import safe_open

    path = Path(path)
    if path.suffix != ".safetensors":
        return False
    with safe_open(str(path), "pt") as fh:
        return "avatarv" in (fh.metadata() or {}) and "audio_head.hidden.weight" in fh.keys()


def load_sync_model(path: str | Path | None = None):
    """The SyncNet the evaluation uses: ``None`` -> the shipped world SyncNet; a world SyncNet file -> it; any
    other file -> the public architecture (``syncnet.load_syncnet``: ``syncnet_v2.model`` or our layout)."""
    from avatarv.eval.syncnet import load_syncnet

    if path is None:
        return load_world_syncnet()
    if is_world_syncnet_file(path):
        return load_world_syncnet(path)
    return load_syncnet(path)

"""Training data: datasets of pre-encoded items and a resumable, seeded sampling cursor."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from avatarv.config import DiTConfig
from avatarv.training.batch import Batch


@dataclass
class DataCursor:
    """Epoch-wise permutations from (seed, epoch); the position is all a checkpoint needs to resume exactly."""

    size: int
    seed: int = 0
    epoch: int = 0
    position: int = 0

    def _order(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.size, generator=g)

    def take(self, n: int) -> list[int]:
        out: list[int] = []
        order = self._order()
        while len(out) < n:
            if self.position >= self.size:
                self.epoch, self.position = self.epoch + 1, 0
                order = self._order()
            out.append(int(order[self.position]))
            self.position += 1
        return out

    def state_dict(self) -> dict:
        return {"size": self.size, "seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        if state["size"] != self.size:
            raise ValueError(f"dataset size changed since the checkpoint ({state['size']} → {self.size})")
        self.seed, self.epoch, self.position = state["seed"], state["epoch"], state["position"]


class SyntheticLatents:
    """Deterministic random items shaped like real ones (tests, smoke runs, benchmarks). Item i is fixed by i."""

    def __init__(self, cfg: DiTConfig, size: int = 16, frames: int = 3, latent_hw: int = 8, ref_frames: int = 2,
                 text_tokens: int = 4, seed: int = 0):
        self.cfg, self.size, self.frames, self.hw = cfg, size, frames, latent_hw
        self.ref_frames, self.text_tokens, self.seed = ref_frames, text_tokens, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 7919 + i)
        c = self.cfg
        item = {
            "latents": torch.randn(c.latent_channels, self.frames, self.hw, self.hw, generator=g),
            "text": torch.randn(self.text_tokens, c.text_dim, generator=g),
            "ref_latents": torch.randn(c.latent_channels, self.ref_frames, self.hw, self.hw, generator=g),
            "ref_mask": torch.ones(self.ref_frames, dtype=torch.bool),
        }
        if c.audio_dim:
            item["audio"] = torch.randn(self.frames, 4, c.audio_dim, generator=g)
        if c.motion_dim:
            item["motion"] = torch.randn(self.frames, c.motion_dim, generator=g)
            item["ref_motion"] = torch.randn(self.ref_frames, c.motion_dim, generator=g)
        return item


def load_batch(dataset, cursor: DataCursor, batch_size: int) -> Batch:
    return Batch.collate([dataset[i] for i in cursor.take(batch_size)])

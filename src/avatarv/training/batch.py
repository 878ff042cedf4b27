"""The training batch: pre-encoded latents and conditions (the data engine's shard format, decoded)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class Batch:
    latents: torch.Tensor  # [B, z, F, h, w] target clip latents (normalised)
    text: torch.Tensor | None = None  # [B, L, text_dim] text-encoder outputs
    audio: torch.Tensor | None = None  # [B, F, Ka, audio_dim] audio tokens per latent frame
    motion: torch.Tensor | None = None  # [B, F, motion_dim] motion features per latent frame
    ref_latents: torch.Tensor | None = None  # [B, z, F_ref, h, w] reference from another scene
    ref_motion: torch.Tensor | None = None  # [B, F_ref, motion_dim]
    ref_mask: torch.Tensor | None = None  # [B, F_ref] bool, False on faceless reference frames
    face_box: torch.Tensor | None = None  # [B, F, 4] face box (x0, y0, x1, y1 px) per latent frame (aux losses)

    @property
    def size(self) -> int:
        return self.latents.shape[0]

    def to(self, device) -> Batch:
        return Batch(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                        for f in fields(self)})

    @staticmethod
    def collate(items: list[dict[str, torch.Tensor]]) -> Batch:
        keys = {f.name for f in fields(Batch)}
        out = {}
        for k in keys:
            vals = [it.get(k) for it in items]
            out[k] = None if any(v is None for v in vals) else torch.stack(vals)
        return Batch(**out)

"""Reference behaviour: a global condition pooled over time from the reference's motion.

A person's way of moving is a set of statistics over time (how often they blink, how far they nod, how much
they smile), not any one frame. Reference motion tokens (``RefInputs.motion``) let generated tokens attend to
the reference's frames, but a rate or an amplitude is not something attention copies from one key; it has to
be computed over many, and 400 stage-3 steps with the tokens alone left the motion loss flat (0.1339 →
0.1338; ``benchmarks/results/ref-behaviour.md``). Here the statistics are computed outright:

    b = [mean_t m, std_t m]   (per channel of the reference motion m ``[F_ref, motion_dim]``, valid frames only)

standardised with statistics of the training references (``DiTConfig.behaviour_mean/std``, taken by
``training.motion_stats.dataset_behaviour_statistics``) and embedded by an MLP whose output layer starts at
zero, added to the time embedding: the adaLN condition of every block and of the head, as DiT adds its class
embedding to the timestep embedding (Peebles & Xie 2023, §3.2). An image
reference has one frame: its std is zero and its mean is one pose and one expression, so the image ablation
keeps the same architecture and loses exactly the rhythm. A dropped reference (every frame masked) adds
nothing, which is what classifier-free guidance's "no reference" branch needs.
"""

from __future__ import annotations

import torch
from torch import nn

from avatarv.config import DiTConfig
from avatarv.models.dit.inputs import RefInputs
from avatarv.models.dit.motion_codec import MIN_STD


def pool_behaviour(motion: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """motion ``[B, F, dim]``, mask ``[B, F]`` (True = valid frame) → (``[B, 2·dim]`` per-channel mean and
    population std over valid frames, ``[B]`` whether any frame was valid). Rows with no valid frame are 0."""
    x = motion.float()
    w = torch.ones(x.shape[:2], device=x.device) if mask is None else mask.to(x.device).float()  # [B, F]
    n = w.sum(1, keepdim=True)  # [B, 1]
    mean = (x * w[..., None]).sum(1) / n.clamp(min=1)  # [B, dim]
    var = (((x - mean[:, None]) ** 2) * w[..., None]).sum(1) / n.clamp(min=1)
    valid = n[:, 0] > 0
    feats = torch.cat([mean, var.clamp(min=0).sqrt()], dim=1) * valid[:, None]
    return feats, valid


def behaviour_statistics(rows: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature (mean, std) of pooled behaviour rows ``[N, 2·dim]``; a constant feature (the motion
    channels a reference cannot show, an image reference's std) gets mean 0 and std 1: it passes as it is."""
    rows = rows.double()
    mean, std = rows.mean(0), rows.std(0, unbiased=False)
    const = std < MIN_STD
    mean = torch.where(const, torch.zeros_like(mean), mean)
    std = torch.where(const, torch.ones_like(std), std)
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


class BehaviourEmbedding(nn.Module):
    """Pooled reference behaviour → ``[B, D]``, added to the time embedding (zero until trained)."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        self.mlp = nn.Sequential(nn.Linear(2 * cfg.motion_dim, cfg.dim), nn.SiLU(), nn.Linear(cfg.dim, cfg.dim))

    def features(self, ref: RefInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """The standardised behaviour vector ``[B_ref, 2·dim]`` of one reference and its validity ``[B_ref]``."""
        feats, valid = pool_behaviour(ref.motion, ref.frame_mask)
        if self.cfg.behaviour_std:
            mean = feats.new_tensor(self.cfg.behaviour_mean)
            std = feats.new_tensor(self.cfg.behaviour_std)
            feats = (feats - mean) / std * valid[:, None]
        return feats, valid

    def forward(self, ref: RefInputs | list[RefInputs] | None) -> torch.Tensor | None:
        """The embedding of the first reference that carries motion (``[B_ref, D]``), or None."""
        refs = ref if isinstance(ref, (list, tuple)) else [ref]
        ref = next((r for r in refs if r is not None and r.motion is not None), None)
        if ref is None:
            return None
        feats, valid = self.features(ref)
        w = self.mlp[0].weight
        return self.mlp(feats.to(w.dtype)) * valid[:, None].to(w.dtype)


__all__ = ["BehaviourEmbedding", "pool_behaviour", "behaviour_statistics"]

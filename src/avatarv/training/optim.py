"""Muon for the hidden ≥2-D weights, AdamW for everything else (seed, Stage 1: "a distributed Muon
optimizer is used for 2D+ tensors, while AdamW is used for embeddings and 1D parameters").

Hidden weights are the matrices inside the transformer blocks (attention and FFN projections). Input
embeddings (patch, text, time, audio, motion, guidance), output heads, norms, biases and the AdaLN
modulation tables go to AdamW, as in the Muon reference recipe (Jordan et al. 2024): Muon's orthogonalised
update suits matrices that map hidden states to hidden states, not embeddings or readouts.
We use ``torch.optim.Muon`` with ``adjust_lr_fn="match_rms_adamw"`` (Moonshot's scaling, Liu et al. 2025)
so one learning rate serves both groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def is_hidden_matrix(name: str, param: nn.Parameter) -> bool:
    return param.ndim == 2 and name.startswith("blocks.") and not name.endswith("modulation")


def split_parameters(model: nn.Module) -> tuple[list[str], list[str]]:
    """Names of the Muon and the AdamW parameters (every trainable parameter exactly once)."""
    muon, adamw = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (muon if is_hidden_matrix(name, p) else adamw).append(name)
    return muon, adamw


class ShardedMuon(torch.optim.Muon):
    """``torch.optim.Muon`` that also steps FSDP2-sharded (DTensor) matrices correctly.

    Newton–Schulz orthogonalises the *whole* matrix, so a shard cannot be processed alone (and running the
    iteration through DTensor ops was measured to diverge from one process by a full step). For DTensor
    parameters the momentum is kept sharded (an elementwise update), the momentum-blended update is
    all-gathered, orthogonalised redundantly on every rank and cut back to the local shard — the simple form
    of the "distributed Muon" the seed names (gather, orthogonalise, scatter). Plain tensors take torch's path.
    The state layout (``momentum_buffer``) is torch's, so checkpoints are interchangeable.
    """

    @torch.no_grad()
    def step(self, closure=None):
        from torch.distributed.tensor import DTensor

        if not any(isinstance(p, DTensor) for g in self.param_groups for p in g["params"]):
            return super().step(closure)
        from torch.distributed.tensor import distribute_tensor
        from torch.optim._muon import _adjust_lr, _zeropower_via_newtonschulz  # torch's own maths

        for group in self.param_groups:
            lr, wd, momentum = group["lr"], group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - momentum)
                update = p.grad.lerp(buf, momentum) if group["nesterov"] else buf
                full = update.full_tensor() if isinstance(update, DTensor) else update
                ortho = _zeropower_via_newtonschulz(full, group["ns_coefficients"], group["ns_steps"], group["eps"])
                if isinstance(p, DTensor):
                    ortho = distribute_tensor(ortho.to(p.dtype), p.device_mesh, p.placements)
                p.mul_(1 - lr * wd)
                p.add_(ortho, alpha=-_adjust_lr(lr, group["adjust_lr_fn"], p.shape))
        return None


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    muon_momentum: float = 0.95
    use_muon: bool = True


class MuonAdamW:
    """Two optimizers behind one step / zero_grad / state_dict."""

    def __init__(self, model: nn.Module, cfg: OptimConfig):
        named = dict(model.named_parameters())
        muon_names, adamw_names = split_parameters(model)
        if not cfg.use_muon:
            muon_names, adamw_names = [], muon_names + adamw_names
        self.assignment = {**{n: "muon" for n in muon_names}, **{n: "adamw" for n in adamw_names}}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        if muon_names:
            self.optimizers["muon"] = ShardedMuon(
                [named[n] for n in muon_names], lr=cfg.lr, weight_decay=cfg.weight_decay,
                momentum=cfg.muon_momentum, adjust_lr_fn="match_rms_adamw",
            )
        decay = [named[n] for n in adamw_names if named[n].ndim >= 2]
        no_decay = [named[n] for n in adamw_names if named[n].ndim < 2]
        self.optimizers["adamw"] = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr, betas=cfg.betas,
        )

    @property
    def param_groups(self):
        return [g for opt in self.optimizers.values() for g in opt.param_groups]

    def set_lr(self, lr: float) -> None:
        for g in self.param_groups:
            g["lr"] = lr

    def step(self) -> None:
        for opt in self.optimizers.values():
            opt.step()

    def zero_grad(self) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])

    def describe(self) -> str:
        muon = sum(1 for v in self.assignment.values() if v == "muon")
        return f"Muon: {muon} tensors, AdamW: {len(self.assignment) - muon} tensors"

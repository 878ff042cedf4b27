"""Training a LoRA of the DiT's blocks instead of all its weights (peft), and merging it back for export.

``add_lora`` injects peft LoRA layers (Hu et al. 2021; ``peft.inject_adapter_in_model``) into the attention
projections (q, k, v, o of self-, text- and audio attention) and the FFN of every block, and freezes every
other parameter, so a stage-4 run on a 14B DiT trains and stores only the adapters (the frozen base can be
sharded by FSDP2 as usual). ``merged_state`` folds the adapters into plain weights, W = W₀ + (α/r)·B·A, so the
exported ``model/`` loads as an ordinary DiT (``VideoRefDiT.from_pretrained``) and the pipeline needs no peft.
"""

from __future__ import annotations

import torch
from torch import nn

TARGETS = r".*blocks\.\d+\.(self_attn|cross_attn|audio_attn|audio_cross_attn)\.(q|k|v|o|q_linear|kv_linear|proj)$" \
          r"|.*blocks\.\d+\.ffn\.(fc1|fc2)$"


def add_lora(model: nn.Module, rank: int, alpha: float | None = None) -> nn.Module:
    """``model`` with LoRA adapters of ``rank`` on its blocks' linear layers; only the adapters train. The
    adapters start at zero (B = 0): the model's outputs are unchanged."""
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1:
        raise ValueError(f"lora rank must be ≥ 1, got {rank}")
    config = LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else rank, target_modules=TARGETS,
                        lora_dropout=0.0, init_lora_weights=True)
    model = inject_adapter_in_model(config, model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
    return model


def lora_scale(rank: int, alpha: float | None) -> float:
    return (alpha if alpha is not None else rank) / rank


def merged_state(state: dict[str, torch.Tensor], rank: int, alpha: float | None) -> dict[str, torch.Tensor]:
    """A state dict with peft's LoRA layers (``X.base_layer.weight``, ``X.lora_A.default.weight``,
    ``X.lora_B.default.weight``) folded into plain ``X.weight`` / ``X.bias``: W = W₀ + (α/r)·B·A."""
    scale = lora_scale(rank, alpha)
    out = {}
    for key, value in state.items():
        if ".lora_A." in key or ".lora_B." in key:
            continue
        if ".base_layer." in key:
            prefix, leaf = key.split(".base_layer.")
            if leaf == "weight":
                a = state.get(f"{prefix}.lora_A.default.weight")
                b = state.get(f"{prefix}.lora_B.default.weight")
                if a is not None and b is not None:
                    value = (value.float() + scale * (b.float() @ a.float())).to(value.dtype)
            out[f"{prefix}.{leaf}"] = value
        else:
            out[key] = value
    return out


__all__ = ["TARGETS", "add_lora", "lora_scale", "merged_state"]

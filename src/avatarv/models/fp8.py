"""FP8 (e4m3) weights for the DiT's linear layers, applied to a built model from outside.

``quantize_fp8(model)`` swaps every ``nn.Linear`` it selects (default: the blocks') for :class:`Fp8Linear`: the
weight is stored as ``float8_e4m3fn`` with one fp32 scale per output row (absmax / 448), half the bytes of bf16.
Its forward:

- on a GPU with FP8 tensor cores (compute capability ≥ 8.9: Ada, Hopper, Blackwell), the matmul runs in FP8
  (``torch._scaled_mm``, the activations quantised per token on the fly, row-wise scales, bf16 output), as
  torchao's float8 inference and lightx2v's fp8 checkpoints do;
- elsewhere (the CPU, older GPUs) the weight is dequantised to the activations' dtype right before the matmul:
  weight-only FP8, which saves memory, not time.

Per-row scales bound the error of a row by its own largest weight (e4m3 keeps 3 mantissa bits: ~3 % relative per
weight, averaging out over a dot product). Followed: torchao ``float8`` (``Float8Linear`` with row-wise scaling),
PyTorch's ``torch._scaled_mm`` contract (fp8 A row-major, fp8 B column-major, fp32 scales ``[M, 1]`` / ``[1, N]``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

E4M3 = torch.float8_e4m3fn
E4M3_MAX = 448.0


def fp8_matmul_supported(device: torch.device | str) -> bool:
    """True on CUDA devices with FP8 tensor cores (sm_89 and later)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device) >= (8, 9)


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[out, in]`` → (e4m3 ``[out, in]``, fp32 scale ``[out, 1]``) with ``weight ≈ q · scale`` row by row."""
    w = weight.float()
    scale = (w.abs().amax(dim=1, keepdim=True) / E4M3_MAX).clamp(min=1e-12)
    return (w / scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3), scale


class Fp8Linear(nn.Module):
    """A linear layer with an e4m3 weight and per-row fp32 scales (bias kept in its own dtype)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        q, scale = quantize_rows(linear.weight.detach())
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(q, requires_grad=False)
        self.scale = nn.Parameter(scale, requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        return (self.weight.float() * self.scale).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and fp8_matmul_supported(x.device) and self._scaled_ok(x):
            return self._fp8_matmul(x)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.dequantized(x.dtype), bias)

    def _scaled_ok(self, x: torch.Tensor) -> bool:
        return self.in_features % 16 == 0 and self.out_features % 16 == 0 and x.dtype in (torch.bfloat16, torch.float16)

    def _fp8_matmul(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - needs an FP8 GPU
        shape = x.shape
        a = x.reshape(-1, shape[-1])
        a_scale = (a.float().abs().amax(dim=1, keepdim=True) / E4M3_MAX).clamp(min=1e-12)  # [M, 1]
        a_q = (a.float() / a_scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)
        out = torch._scaled_mm(a_q, self.weight.t(), scale_a=a_scale, scale_b=self.scale.t().contiguous(),
                               bias=None if self.bias is None else self.bias.to(x.dtype), out_dtype=x.dtype)
        return out.reshape(*shape[:-1], self.out_features)


def quantize_fp8(model: nn.Module, select: Callable[[str], bool] | None = None) -> int:
    """Swap the selected ``nn.Linear`` layers of ``model`` for :class:`Fp8Linear` in place (default: those inside
    ``blocks``, where almost all of a DiT's weights are). Inference only. Returns how many were swapped."""
    select = select or (lambda name: name.startswith("blocks."))
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear) and select(name)]
    for name, linear in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Fp8Linear(linear))
    return len(targets)


__all__ = ["Fp8Linear", "fp8_matmul_supported", "quantize_fp8", "quantize_rows"]

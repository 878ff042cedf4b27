"""fp32 3-D convolutions on oneDNN at inference on the CPU, wrapped around the VAE (never editing it).

ATen picks a convolution kernel by a heuristic (``ConvParams::use_mkldnn``): for an fp32 input with a 3×3×3
kernel, batch 1 and ``N·C·T·H ≤ 20480`` it takes ``slow_conv3d`` (im2col + GEMM), on the theory that "for some
cases native is faster". Wan's causal VAE decodes one latent frame at a time (T = 1–3 after the causal
padding) at small channel counts, so nearly every call it makes falls on that side: 86 % of a decode's time
was ``slow_conv3d_forward`` (world-small VAE, 33 frames at 128 px: 7.1 s). oneDNN runs the same calls
2–5× faster on an AVX2 CPU (measured per shape: 64→64 ch at 3×16² 1.07 → 0.49 ms; 16→16 ch at 3×128²
11.5 → 2.2 ms), same maths with another summation order (max |Δ| ~2e-4 on unit-variance inputs).

:class:`OneDnnConv3d` is a ``TorchFunctionMode``: inside it, every ``conv3d`` call on CPU fp32 tensors without
autograd goes to ``aten.mkldnn_convolution``; anything else (grad, bf16 under autocast — oneDNN already takes
those — CUDA, string padding) goes through unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_CONV3D = {F.conv3d, torch.conv3d}


def _triple(v) -> list[int]:
    return list(v) if isinstance(v, (tuple, list)) else [int(v)] * 3


def onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.aten, "mkldnn_convolution")


class OneDnnConv3d(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _CONV3D:
            out = self._onednn(*args, **kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)

    @staticmethod
    def _onednn(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        if (input.device.type != "cpu" or input.dtype != torch.float32 or weight.dtype != torch.float32
                or input.dim() != 5 or isinstance(padding, str) or torch.is_grad_enabled()
                or torch.is_autocast_enabled("cpu")):
            return None
        return torch.ops.aten.mkldnn_convolution(input.contiguous(), weight.contiguous(),
                                                 None if bias is None else bias.contiguous(), _triple(padding),
                                                 _triple(stride), _triple(dilation), groups)


__all__ = ["OneDnnConv3d", "onednn_available"]

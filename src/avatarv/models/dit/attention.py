"""The one attention function every attention layer calls, with interchangeable backends.

``q, k, v``: ``[B, H, N, d]``. Two kinds of mask, both optional and combinable:
- ``key_mask`` ``[B, Nk]`` bool (True = attend): drops keys, e.g. faceless reference frames, padding;
- ``window`` (:class:`LocalWindow`): query of frame i sees keys of frames |i − j| ≤ r (the SR refiner's
  local temporal attention).

Backends: ``sdpa`` (PyTorch's fused kernel, the reference; a dense boolean mask when masked), ``chunked``
(query blocks; memory linear in sequence length, and with a window it skips keys outside it), ``tiled``
(per-head query tiles as two cache-resident GEMMs: the fastest on CPU for half-precision inference), ``flex``
(``flex_attention`` compiled with a block mask built from the same mask predicate), and on CUDA
``flash`` / ``sage`` when those packages are importable (unmasked only). ``auto`` picks per call.
Sequence parallelism wraps this function from outside (``distributed/ulysses.py``).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from avatarv.errors import ConfigError
from avatarv.precision import cpu_bf16_native

AttentionFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class LocalWindow:
    """Query of frame i sees keys of frames |i − j| ≤ radius; keys with a negative frame (reference tokens)
    are visible to every query."""

    q_frames: torch.Tensor  # [Nq] int: latent frame of each query
    k_frames: torch.Tensor  # [Nk] int: latent frame of each key (< 0: always visible)
    radius: int

    def allowed(self, q_frames: torch.Tensor, k_frames: torch.Tensor) -> torch.Tensor:
        """Broadcasting predicate: True where a query of ``q_frames`` may see a key of ``k_frames``."""
        return ((q_frames - k_frames).abs() <= self.radius) | (k_frames < 0)


def dense_mask(
    key_mask: torch.Tensor | None, window: LocalWindow | None, nq: int, nk: int
) -> torch.Tensor | None:
    """Boolean mask ``[B | 1, 1, Nq, Nk]`` (True = attend) or None when nothing is masked."""
    mask = None
    if key_mask is not None:
        mask = key_mask[:, None, None, :]
    if window is not None:
        local = window.allowed(window.q_frames[:, None], window.k_frames[None, :])  # [Nq, Nk]
        mask = local[None, None] if mask is None else mask & local[None, None]
    return mask


def sdpa_attention(q, k, v, key_mask=None, window=None) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, attn_mask=dense_mask(key_mask, window, q.shape[2], k.shape[2]))


def chunked_attention(q, k, v, key_mask=None, window=None, block: int = 1024) -> torch.Tensor:
    """SDPA over query blocks: peak memory O(block · Nk) instead of O(Nq · Nk) for masked attention.

    With a window and keys sorted by frame, each block only visits the keys of its frame range, so local
    attention costs O(N · window) rather than O(N²).
    """
    nq = q.shape[2]
    out = torch.empty_like(q)
    sorted_keys = window is not None and bool(torch.all(window.k_frames[1:] >= window.k_frames[:-1]))
    wildcards = 0 if window is None else int((window.k_frames < 0).sum())  # sorted: they come first
    for start in range(0, nq, block):
        stop = min(start + block, nq)
        lo, hi = 0, k.shape[2]
        sub_window = None
        if window is not None:
            qf = window.q_frames[start:stop]
            kf = window.k_frames
            if sorted_keys:
                lo = 0 if wildcards else int(torch.searchsorted(kf, qf.min() - window.radius, right=False))
                hi = int(torch.searchsorted(kf, qf.max() + window.radius, right=True))
            sub_window = LocalWindow(qf, kf[lo:hi], window.radius)
        sub_keys = None if key_mask is None else key_mask[:, lo:hi]
        mask = dense_mask(sub_keys, sub_window, stop - start, hi - lo)
        out[:, :, start:stop] = F.scaled_dot_product_attention(
            q[:, :, start:stop], k[:, :, lo:hi], v[:, :, lo:hi], attn_mask=mask
        )
    return out


def tiled_attention(q, k, v, key_mask=None, window=None, block: int = 512) -> torch.Tensor:
    """Attention one head at a time in query tiles of ``block`` rows: ``S = q_tile · (k·d^-½)ᵀ`` in the inputs'
    dtype, softmax, ``· v``. The tile's scores ``[block, Nk]`` stay in cache between the two matmuls, and each
    matmul is one large 2-D GEMM (oneDNN/AMX for bf16), so on CPU this runs at ≈ 0.64 of the bf16 matmul peak
    where fused SDPA reaches 0.37 (``benchmarks/attention.py``).

    Precision: the GEMM accumulates in fp32 but writes the scores in the input dtype, so with bf16 inputs each
    logit carries a rounding error of ≈ 2⁻⁹·|s| before the (fp32-internal) softmax: the reduced-precision QK
    trade SageAttention makes with int8. Measured against fp32 attention on random inputs at 4k tokens, 8
    heads, d 64, with logit std 1 / 3 / 6: mean |error| 1.1e-4 / 2.8e-3 / 8.0e-3, where fused SDPA in bf16 has
    0.8e-4 / 1.2e-3 / 3.3e-3 (its own bf16 P·V rounding): 1.4–2.4× SDPA's error. fp32 inputs are computed
    in fp32. ``auto`` uses it only for large no-grad half-precision CPU calls (inference); training keeps SDPA.
    """
    b, h, nq, d = q.shape
    kt = (k * d**-0.5).transpose(-1, -2)  # [B, H, d, Nk]
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    kt = kt if grad else kt.contiguous()
    out = None if grad else torch.empty_like(q)
    heads = []
    for bi in range(b):
        keep = None if key_mask is None else key_mask[bi if key_mask.shape[0] > 1 else 0]  # [Nk]
        for hi in range(h):
            kh, vh = kt[bi, hi], v[bi, hi]
            tiles = []
            for start in range(0, nq, block):
                stop = min(start + block, nq)
                s = torch.mm(q[bi, hi, start:stop], kh)  # [block, Nk]
                if keep is not None or window is not None:
                    ok = keep[None, :] if keep is not None else None
                    if window is not None:
                        local = window.allowed(window.q_frames[start:stop, None], window.k_frames[None, :])
                        ok = local if ok is None else ok & local
                    s = s.masked_fill(~ok, float("-inf")) if grad else s.masked_fill_(~ok, float("-inf"))
                if grad:  # autograd cannot record out= writes
                    tiles.append(torch.softmax(s, -1) @ vh)
                else:
                    torch.mm(torch.softmax(s, -1), vh, out=out[bi, hi, start:stop])
            if grad:
                heads.append(torch.cat(tiles, 0))
    return torch.stack(heads).unflatten(0, (b, h)) if grad else out


@functools.cache
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def flex_mask_mod(key_mask: torch.Tensor | None, window: LocalWindow | None, extra=None):
    """The mask predicate for ``create_block_mask``: key validity ∧ local window (∧ an extra predicate)."""

    def mask_mod(b, h, q_idx, kv_idx):
        ok = q_idx >= 0  # an all-True tensor of the right shape
        if key_mask is not None:
            ok = ok & key_mask[b, kv_idx]
        if window is not None:
            ok = ok & window.allowed(window.q_frames[q_idx], window.k_frames[kv_idx])
        if extra is not None:
            ok = ok & extra(b, h, q_idx, kv_idx)
        return ok

    return mask_mod


def flex_attention_backend(q, k, v, key_mask=None, window=None, extra_mask_mod=None) -> torch.Tensor:
    from torch.nn.attention.flex_attention import create_block_mask

    block_mask = None
    if key_mask is not None or window is not None or extra_mask_mod is not None:
        b = key_mask.shape[0] if key_mask is not None else None
        block_mask = create_block_mask(
            flex_mask_mod(key_mask, window, extra_mask_mod), b, None, q.shape[2], k.shape[2], device=q.device
        )
    return _compiled_flex()(q, k, v, block_mask=block_mask)


def flash_attention(q, k, v, key_mask=None, window=None) -> torch.Tensor:
    from flash_attn import flash_attn_func  # CUDA only; [B, N, H, d] layout

    if key_mask is not None or window is not None:
        raise ValueError("the flash backend takes no masks; use sdpa, chunked or flex")
    return flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)


def sage_attention(q, k, v, key_mask=None, window=None) -> torch.Tensor:
    from sageattention import sageattn  # CUDA only, 8-bit QK

    if key_mask is not None or window is not None:
        raise ValueError("the sage backend takes no masks; use sdpa, chunked or flex")
    return sageattn(q, k, v, tensor_layout="HND", is_causal=False)


BACKENDS: dict[str, AttentionFn] = {
    "sdpa": sdpa_attention,
    "chunked": chunked_attention,
    "tiled": tiled_attention,
    "flex": flex_attention_backend,
    "flash": flash_attention,
    "sage": sage_attention,
}


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    names = ["sdpa", "chunked", "tiled", "flex"]
    if torch.device(device).type == "cuda":
        names += [n for n, mod in (("flash", "flash_attn"), ("sage", "sageattention")) if importlib.util.find_spec(mod)]
    return names


def select_backend(q: torch.Tensor, masked: bool, nk: int | None = None) -> str:
    """Fastest correct backend for this call (measured: benchmarks/attention.py).

    CPU: for no-grad half-precision calls with at least 1024 × 1024 scores per head (``nk`` keys, default
    ``Nq``), on a CPU that computes bf16 natively (``avatarv.precision.cpu_bf16_native``: its one large GEMM
    is what AMX is fast at; where bf16 is emulated it is the slowest choice), ``tiled`` (1.5–1.9× fused SDPA
    from 1k to 4k tokens with AMX; see its docstring for the precision it trades; below that size, and for
    short contexts such as text, its per-head loop loses); otherwise fused SDPA, with a masked call over long
    sequences going to ``chunked`` to keep the dense mask's memory bounded.
    CUDA: flash when unmasked.
    """
    nk = q.shape[2] if nk is None else nk
    if q.device.type == "cuda" and not masked and importlib.util.find_spec("flash_attn") and q.dtype in (
        torch.float16, torch.bfloat16
    ):
        return "flash"
    if (q.device.type == "cpu" and q.dtype in (torch.float16, torch.bfloat16) and not torch.is_grad_enabled()
            and q.shape[2] * nk >= 1 << 20 and nk >= 256 and cpu_bf16_native()):
        return "tiled"
    if masked and q.shape[2] * q.shape[0] > 16384:
        return "chunked"
    return "sdpa"


def attention(q, k, v, key_mask=None, window=None, backend: str = "auto") -> torch.Tensor:
    if backend == "auto":
        backend = select_backend(q, key_mask is not None or window is not None, k.shape[2])
    try:
        fn = BACKENDS[backend]
    except KeyError:
        raise ConfigError(f"unknown attention backend {backend!r}; choose auto or one of {', '.join(BACKENDS)}") from None
    return fn(q, k, v, key_mask=key_mask, window=window)


def make_attention(backend: str = "auto") -> AttentionFn:
    if backend != "auto" and backend not in BACKENDS:
        raise ConfigError(f"unknown attention backend {backend!r}; choose auto or one of {', '.join(BACKENDS)}")
    return functools.partial(attention, backend=backend)


def sparse_ref_attention_flex(q_ref, k_ref, v_ref, q_gen, k_gen, v_gen, ref_key_mask=None):
    """The whole sparse reference pattern as ONE flex call over ``[ref ; gen]`` with a block mask:
    gen rows see every valid key, ref rows only valid ref keys. Returns (ref_out, gen_out)."""
    n_ref = q_ref.shape[2]
    q = torch.cat([q_ref, q_gen], 2)
    k = torch.cat([k_ref, k_gen], 2)
    v = torch.cat([v_ref, v_gen], 2)
    key_mask = None
    if ref_key_mask is not None:
        gen_ok = torch.ones(ref_key_mask.shape[0], k_gen.shape[2], dtype=torch.bool, device=q.device)
        key_mask = torch.cat([ref_key_mask, gen_ok], 1)

    def asymmetric(b, h, q_idx, kv_idx):
        return (q_idx >= n_ref) | (kv_idx < n_ref)

    out = flex_attention_backend(q, k, v, key_mask=key_mask, extra_mask_mod=asymmetric)
    return out[:, :, :n_ref], out[:, :, n_ref:]


class AttentionProjections(torch.nn.Module):
    """Wan's attention parameters: q, k, v, o projections and RMS q/k norms across heads (``WanSelfAttention``
    / ``WanCrossAttention``), plus the attention function (``attn_fn``) the layer calls."""

    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.q = torch.nn.Linear(dim, dim)
        self.k = torch.nn.Linear(dim, dim)
        self.v = torch.nn.Linear(dim, dim)
        self.o = torch.nn.Linear(dim, dim)
        self.norm_q = torch.nn.RMSNorm(dim, eps=eps)
        self.norm_k = torch.nn.RMSNorm(dim, eps=eps)
        self.attn_fn = make_attention()  # set per config; wrapped from outside for sequence parallelism

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # [B, N, D] → [B, H, N, d]

    def _out(self, x: torch.Tensor) -> torch.Tensor:
        return self.o(x.transpose(1, 2).flatten(2))  # [B, H, N, d] → [B, N, D]

"""One-GPU check of the InfiniteTalk-layout DiT: CUDA parity, step time, peak memory with and without block
offload, MFU. Under 8 minutes on one H100; ends with one JSON line.

    python benchmarks/gpu_check.py [--out FILE]          # on a GPU
    python benchmarks/gpu_check.py --smoke [--out FILE]  # tiny sizes, seconds, CPU or GPU (CI: it does not rot)

(a) ``parity``: the tiny InfiniteTalk-layout DiT of ``tests/parity/test_infinitetalk_parity.py`` (random weights
    loaded from the transcribed InfiniteTalk ``WanModel``) for 1 and 2 speakers: our CPU fp32 output against the
    reference's, the device fp32 output against our CPU result (max abs error), and the device bf16 output
    (weights and inputs in bf16) against the device fp32 one. When ``tests`` is not importable a tiny DiT is built
    directly (no reference then).
(b) ``step``: a random-weight DiT of Wan-1.3B size with InfiniteTalk's fields (``get_preset("wan-1.3b")`` DiT +
    cond_channels 20, image_dim 1280, audio_adapter "infinitetalk", audio_dim 768; no motion stream), weights and
    inputs in bf16, at 480p × 81 frames (latents 16 × 21 × 60 × 104, 32 760 tokens; text 512 tokens, CLIP 257,
    one speaker): seconds per denoising step = one forward after a warm-up (median of the timed calls; CFG not
    included: InfiniteTalk runs three forwards per step), peak device memory
    (``torch.cuda.max_memory_allocated``) without and with ``offload_blocks`` (prefetch 1), whether the
    offloaded output is bit-identical, and MFU = analytic FLOPs / time / the GPU's dense bf16 peak
    (:func:`forward_flops`; :data:`PEAK_BF16_DENSE` by device name, unknown → null). The FLOPs counted by
    ``torch.utils.flop_counter`` for the same forward are reported beside the analytic figure.
    ``offload_exact``: the same tiny DiT with a reference stream, plain vs ``offload_blocks`` on the device
    (prefetch 1 and 2): bit-identical outputs expected (the CUDA stream/event path runs here).
(c) ``capability``: ``avatarv.precision.capability`` of the device.
Every part runs in its own try/except: a failure is recorded as that part's ``error`` and the JSON still prints.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.parity (the InfiniteTalk reference) lives beside src/

from avatarv.config import DiTConfig, get_preset  # noqa: E402
from avatarv.distributed.offload import offload_blocks  # noqa: E402
from avatarv.models.dit import VideoRefDiT  # noqa: E402
from avatarv.precision import capability  # noqa: E402

GIB = 2**30
TEXT_TOKENS, CLIP_TOKENS = 512, 257
# Dense bf16 tensor-core peaks (NVIDIA datasheets; the sparsity figures halved), matched in order against
# torch.cuda.get_device_name: "NVIDIA H100 80GB HBM3" is the SXM part.
PEAK_BF16_DENSE = (("H200", 989e12), ("H100 NVL", 835e12), ("H100 PCIe", 756e12), ("H100", 989e12),
                   ("A100", 312e12))


def peak_bf16_flops(device_name: str | None) -> float | None:
    for key, flops in PEAK_BF16_DENSE:
        if device_name and key in device_name:
            return flops
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.detach().float().cpu() - b.detach().float().cpu()).abs().max().item()


# ------------------------------------------------------------------ (a) parity
def _to(args: dict, device: torch.device, dtype: torch.dtype | None = None) -> dict:
    """InfiniteTalk's forward arguments (tensors and lists of tensors) on ``device``; floats in ``dtype``."""

    def move(t):
        if not isinstance(t, torch.Tensor):
            return t
        t = t.to(device)
        return t.to(dtype) if dtype is not None and t.is_floating_point() and t.ndim > 1 else t

    return {k: [move(t) for t in v] if isinstance(v, list) else move(v) for k, v in args.items()}


def parity(device: torch.device) -> dict:
    from avatarv.models.dit.infinitetalk import infinitetalk_forward

    try:
        from tests.parity.test_infinitetalk_parity import inputs, our_model, reference_model
    except ImportError as e:  # outside the repository checkout: a tiny DiT, no reference
        return {"reference": f"unavailable ({e})", **_parity_without_reference(device)}
    ref = reference_model()
    ours = our_model(ref)
    out: dict = {"reference": "tests/parity/infinitetalk_reference.py (InfiniteTalk WanModel transcribed)"}
    for speakers in (1, 2):
        args = inputs(speakers)
        with torch.no_grad():
            want = ref(**args)
            cpu = infinitetalk_forward(ours, **args)
            dev_model = VideoRefDiT(ours.cfg).eval()
            dev_model.load_state_dict(ours.state_dict())
            dev_model.to(device)
            fp32 = infinitetalk_forward(dev_model, **_to(args, device))
            dev_model.to(torch.bfloat16)
            bf16 = infinitetalk_forward(dev_model, **_to(args, device, torch.bfloat16))
        out[f"speakers_{speakers}"] = {
            "output_max_abs": want.abs().max().item(),
            "cpu_fp32_vs_reference": _err(cpu, want),
            "device_fp32_vs_cpu": _err(fp32, cpu),
            "device_bf16_vs_device_fp32": _err(bf16, fp32),
        }
    return out


def _parity_without_reference(device: torch.device) -> dict:
    cfg = tiny_config()
    torch.manual_seed(0)
    model = VideoRefDiT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
        x = step_inputs(cfg, (16, 3, 8, 12), torch.device("cpu"), torch.float32)
        cpu = model(**x).video
        model.to(device)
        fp32 = model(**{k: v.to(device) for k, v in x.items()}).video
        model.to(torch.bfloat16)
        bf16 = model(**step_inputs(cfg, (16, 3, 8, 12), device, torch.bfloat16)).video
    return {"speakers_1": {"output_max_abs": cpu.abs().max().item(), "device_fp32_vs_cpu": _err(fp32, cpu),
                           "device_bf16_vs_device_fp32": _err(bf16, fp32)}}


def offload_exact(device: torch.device) -> dict:
    """``offload_blocks`` on the device (side-stream copies, events) gives the plain model's output bit for bit,
    for the generated stream and the reference stream (``forward_ref``), prefetch 1 and 2."""
    from avatarv.models.dit import RefInputs

    cfg = tiny_config()
    torch.manual_seed(0)
    with torch.device(device):
        model = VideoRefDiT(cfg).eval().requires_grad_(False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    inputs = step_inputs(cfg, (16, 3, 8, 12), device, torch.float32)
    inputs["ref"] = RefInputs(latents=torch.randn(1, 16, 2, 8, 12, device=device))
    with torch.no_grad():
        plain = model(**inputs).video
    out = {}
    for prefetch in (1, 2):
        handle = offload_blocks(model, device, prefetch=prefetch)
        try:
            with torch.no_grad():
                first = model(**inputs).video
                second = model(**inputs).video  # after the wrap-around prefetch of block 0
            out[f"prefetch_{prefetch}"] = {"bitwise_equal": bool(torch.equal(first, plain) and torch.equal(second, plain)),
                                           "max_abs_diff": max(_err(first, plain), _err(second, plain)),
                                           "resident_after": list(handle.resident)}
        finally:
            handle.remove()
    return out


# -------------------------------------------------------------------- (b) step
def infinitetalk_config(preset: str = "wan-1.3b") -> DiTConfig:
    return replace(get_preset(preset).dit, cond_channels=20, image_dim=1280, audio_adapter="infinitetalk",
                   audio_dim=768, motion_dim=0, audio_positions=False)


def tiny_config() -> DiTConfig:
    return DiTConfig(dim=48, num_heads=4, num_layers=3, ffn_dim=96, latent_channels=16, cond_channels=20, text_dim=32,
                     freq_dim=32, image_dim=40, audio_adapter="infinitetalk", audio_dim=12, audio_layers=3,
                     audio_hidden_dim=16, audio_context_tokens=4, audio_token_dim=24)


def step_inputs(cfg: DiTConfig, latents: tuple[int, int, int, int], device: torch.device, dtype: torch.dtype,
                speakers: int = 1) -> dict:
    """Random inputs of one InfiniteTalk forward: latents ``[1, C, F, H, W]`` and their condition, text, CLIP,
    wav2vec windows for ``1 + 4·(F − 1)`` video frames."""
    c, f, h, w = latents
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g).to(device=device, dtype=dtype)

    return dict(
        x=rand(1, c, f, h, w), t=torch.tensor([0.5], device=device), text=rand(1, TEXT_TOKENS, cfg.text_dim),
        cond=rand(1, cfg.cond_channels, f, h, w), image=rand(1, CLIP_TOKENS, cfg.image_dim),
        audio=rand(1, speakers, 1 + cfg.audio_tokens_per_frame * (f - 1), cfg.audio_frame_window, cfg.audio_layers,
                   cfg.audio_dim),
    )


def forward_flops(cfg: DiTConfig, frames: int, height: int, width: int, speakers: int = 1) -> dict[str, float]:
    """Multiply-add FLOPs (2 per MAC) of one forward for latents of ``frames × height × width``.

    "2 · parameters · tokens" made exact per layer: every Linear counted over the rows it is applied to (the
    video tokens N, or the 512 text / 257 CLIP / audio tokens for the context projections), plus attention
    4·N·keys·D for each attention (self: N keys; text, CLIP; the frame-local audio: its frame's tokens)."""
    pt, ph, pw = cfg.patch_size
    f, h, w = frames // pt, height // ph, width // pw
    n, d, ffn = f * h * w, cfg.dim, cfg.ffn_dim
    a = cfg.audio_context_tokens * speakers  # audio keys of a frame
    audio_rows = f * a
    per_block_linear = 2 * (
        n * (4 * d * d + 2 * d * d + 2 * d * ffn)  # self q, k, v, o; cross q, o; FFN
        + TEXT_TOKENS * 2 * d * d + (CLIP_TOKENS * 2 * d * d if cfg.image_dim else 0)  # cross k, v (text, image)
        + (n * 2 * d * d + audio_rows * cfg.audio_token_dim * 2 * d if cfg.audio_dim else 0)  # q_linear, proj; kv
    )
    per_block_attention = 4 * n * d * (n + TEXT_TOKENS + (CLIP_TOKENS if cfg.image_dim else 0)
                                       + (a if cfg.audio_dim else 0))
    patch = n * cfg.in_channels * pt * ph * pw * d
    head = n * d * cfg.latent_channels * pt * ph * pw
    embeddings = TEXT_TOKENS * (cfg.text_dim * d + d * d) + cfg.freq_dim * d + d * d + d * 6 * d
    if cfg.image_dim:
        embeddings += CLIP_TOKENS * (cfg.image_dim * cfg.image_dim + cfg.image_dim * d)
    if cfg.audio_dim:  # audio_proj: frame 0 reads its window, later frames 8 entries of 4 video frames
        per_entry = cfg.audio_layers * cfg.audio_dim
        hid = cfg.audio_hidden_dim
        first = cfg.audio_frame_window * per_entry
        later = (cfg.audio_frame_window + cfg.audio_tokens_per_frame - 1) * per_entry
        embeddings += speakers * (first * hid + (f - 1) * later * hid
                                  + f * (hid * hid + hid * cfg.audio_context_tokens * cfg.audio_token_dim))
    linear = cfg.num_layers * per_block_linear + 2 * (patch + head + embeddings)
    attention = cfg.num_layers * per_block_attention
    return {"linear": float(linear), "attention": float(attention), "total": float(linear + attention), "tokens": n}


def counted_flops(model: VideoRefDiT, inputs: dict) -> float:
    """FLOPs of one forward as ``torch.utils.flop_counter`` counts them (matmuls, convolutions, fused attention);
    on CPU attention runs in the math kernel so its matmuls are seen."""
    from torch.utils.flop_counter import FlopCounterMode

    kernel = contextlib.nullcontext()
    if inputs["x"].device.type == "cpu":  # the CPU flash kernel has no FLOP formula; the math kernel's matmuls do
        kernel = torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), kernel, counter:
        model(**inputs)
    return float(counter.get_total_flops())


def _timed(model, inputs: dict, device: torch.device, repeats: int) -> tuple[float, torch.Tensor]:
    with torch.no_grad():
        out = model(**inputs).video  # warm-up
        _sync(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = model(**inputs).video
            _sync(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def step(device: torch.device, smoke: bool) -> dict:
    cfg = tiny_config() if smoke else infinitetalk_config("wan-1.3b")
    latents = (16, 3, 8, 12) if smoke else (16, 21, 60, 104)  # 480p × 81 frames: 480/8 × 832/8, 1 + 80/4
    repeats = 1 if smoke else 2
    torch.manual_seed(0)
    with torch.device(device):
        model = VideoRefDiT(cfg)
    model = model.to(torch.bfloat16).eval().requires_grad_(False)
    inputs = step_inputs(cfg, latents, device, torch.bfloat16)
    _, f, h, w = latents
    flops = forward_flops(cfg, f, h, w)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    out: dict = {
        "model": "tiny (smoke)" if smoke else "wan-1.3b + InfiniteTalk fields (random weights)",
        "params": sum(p.numel() for p in model.parameters()), "latents": list(latents), "tokens": flops["tokens"],
        "dtype": "bf16", "cfg_included": False, "gpu": gpu,
    }
    _reset_peak(device)
    seconds, plain = _timed(model, inputs, device, repeats)
    out.update(seconds_per_step=seconds, peak_gib=_peak_gib(device))

    handle = offload_blocks(model, device, prefetch=1)
    try:
        _reset_peak(device)
        off_seconds, offloaded = _timed(model, inputs, device, repeats)
        out["offload_blocks"] = {
            "prefetch": 1, "seconds_per_step": off_seconds, "peak_gib": _peak_gib(device),
            "resident_after": list(handle.resident), "bitwise_equal": bool(torch.equal(offloaded, plain)),
            "max_abs_diff_vs_plain": _err(offloaded, plain), "slowdown": off_seconds / seconds,
        }
    finally:
        handle.remove()
    if out["peak_gib"] and out["offload_blocks"]["peak_gib"]:
        out["offload_blocks"]["peak_ratio"] = out["offload_blocks"]["peak_gib"] / out["peak_gib"]

    peak = peak_bf16_flops(gpu)
    out.update(flops_per_forward=flops["total"], flops_linear=flops["linear"], flops_attention=flops["attention"],
               peak_bf16_flops=peak, mfu=flops["total"] / seconds / peak if peak else None)
    try:
        counted = counted_flops(model, inputs)
        out.update(flops_counted=counted, flops_analytic_over_counted=flops["total"] / counted if counted else None)
    except Exception as e:  # informative only
        out["flops_counted"] = f"error: {type(e).__name__}: {e}"
    del model
    _reset_peak(device)
    return out


# -------------------------------------------------------------------- driver
def run_part(record: dict, name: str, fn) -> None:
    start = time.perf_counter()
    try:
        record[name] = fn()
    except Exception as e:
        record[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=4)[-2000:]}
        record["errors"].append(name)
    print(f"[gpu_check] {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="one-GPU check: CUDA parity, step time, offload memory, MFU")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds; runs on CPU)")
    ap.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON line to this file")
    args = ap.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    start = time.perf_counter()
    record: dict = {"benchmark": "gpu_check", "smoke": args.smoke, "device": str(device), "errors": []}
    run_part(record, "capability", lambda: capability(device))
    run_part(record, "parity", lambda: parity(device))
    run_part(record, "offload_exact", lambda: offload_exact(device))
    run_part(record, "step", lambda: step(device, args.smoke))
    record["seconds"] = time.perf_counter() - start
    line = json.dumps(record)
    print(line)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n")
    return record


if __name__ == "__main__":
    main()

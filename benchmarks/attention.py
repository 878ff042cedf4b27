"""Attention and reference-conditioning benchmarks (issue: fast attention, SP, FSDP2).

    python benchmarks/attention.py [--quick] [--dtype auto|fp32|bf16|both]

0. The machine (``avatarv.precision.capability``: CPU model, ATen capability, native bf16 or not, threads)
   and the matmul peak in fp32 and in bf16, measured in the same run: where bf16 is emulated (AVX2-only
   CPUs) it is ~300× slower than fp32, and every figure below would be meaningless in it.
1. One denoising step of the ``small`` preset at N_ref = N_gen ∈ {1k, 2k, 4k} tokens (``--quick``: 1k):
   full concatenation (reference latents as ordinary tokens, dense attention, recomputed every step)
   vs sparse reference attention vs sparse + RefKVCache (reference K/V computed once, before timing).
2. Attention kernel throughput at 4k tokens, every available backend, against the matmul peak of the dtype.
3. One block of ours vs one ``diffusers`` ``WanTransformerBlock`` of the same config and dtype.
4. Time vs reference length at N_gen = 1k (N_ref 1k → 8k): full concatenation vs sparse + cache, plotted
   to benchmarks/out/ref_scaling.png.
Sections 1–4 run in each dtype of ``--dtype``: ``auto`` (default) is both where bf16 is native and fp32
alone where it is emulated (bf16 then gets the matmul probe of section 0 and a 1k-token attention probe).
The JSON line says which dtype was faster per step and whether the precision policy's default is that one.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_seconds  # noqa: E402
from avatarv.config import get_preset  # noqa: E402
from avatarv.models.dit import RefInputs, RefKVCache, VideoRefDiT  # noqa: E402
from avatarv.models.dit.attention import BACKENDS, available_backends  # noqa: E402
from avatarv.precision import autocast, bf16_native, capability, compute_dtype, dtype_name  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
LATENT = 32  # 32×32 latents → 16×16 = 256 tokens per latent frame
TOKENS_PER_FRAME = (LATENT // 2) ** 2


DEVICE = torch.device("cpu")


def small_model(preset: str = "small") -> VideoRefDiT:
    cfg = replace(get_preset(preset).dit, motion_dim=0, audio_dim=0)  # isolate self-attention costs
    torch.manual_seed(0)
    return VideoRefDiT(cfg).eval().to(DEVICE)


def step_times(model: VideoRefDiT, gen_tokens: int, ref_tokens: int, repeats: int,
               dtype: torch.dtype = torch.float32) -> dict[str, float]:
    cfg = model.cfg
    g = torch.Generator().manual_seed(0)
    fg, fr = gen_tokens // TOKENS_PER_FRAME, ref_tokens // TOKENS_PER_FRAME
    x = torch.randn(1, cfg.latent_channels, fg, LATENT, LATENT, generator=g).to(DEVICE)
    ref_lat = torch.randn(1, cfg.latent_channels, fr, LATENT, LATENT, generator=g).to(DEVICE)
    text = torch.randn(1, 16, cfg.text_dim, generator=g).to(DEVICE)
    t = torch.tensor([0.5], device=DEVICE)
    ref = RefInputs(ref_lat)
    cache = RefKVCache()
    with torch.no_grad(), autocast(DEVICE, dtype):
        model(x, t, text=text, ref=ref, ref_cache=cache)  # builds the cache outside the timing
        full = median_seconds(lambda: model(torch.cat([ref_lat, x], 2), t, text=text), repeats)
        sparse = median_seconds(lambda: model(x, t, text=text, ref=ref), repeats)
        cached = median_seconds(lambda: model(x, t, text=text, ref=ref, ref_cache=cache), repeats)
    return {"full_ms": full * 1e3, "sparse_ms": sparse * 1e3, "cached_ms": cached * 1e3}


def matmul_peak(dtype=torch.float32, n=2048) -> float:
    n = 8192 if DEVICE.type == "cuda" else n
    a, b = torch.randn(n, n, dtype=dtype, device=DEVICE), torch.randn(n, n, dtype=dtype, device=DEVICE)
    return 2 * n**3 / median_seconds(lambda: a @ b, repeats=5) / 1e9


def attention_throughput(dtype=torch.float32, tokens=4096, heads=8, head_dim=64) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, heads, tokens, head_dim, generator=g).to(DEVICE, dtype) for _ in range(3))
    flops = 4 * heads * tokens * tokens * head_dim
    out = {}
    for name in available_backends(DEVICE):
        fn = BACKENDS[name]
        out[name] = flops / median_seconds(lambda fn=fn: fn(q, k, v), repeats=3) / 1e9
    return out


def block_vs_diffusers(tokens=2048, dtype=torch.float32) -> float:
    from diffusers.models.transformers.transformer_wan import WanTransformerBlock

    model = small_model()
    cfg = model.cfg
    ours = model.blocks[0].to(dtype)
    theirs = WanTransformerBlock(cfg.dim, cfg.ffn_dim, cfg.num_heads, "rms_norm_across_heads", True, cfg.eps)
    theirs = theirs.to(DEVICE, dtype).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, tokens, cfg.dim, generator=g).to(DEVICE, dtype)
    text = torch.randn(1, 16, cfg.dim, generator=g).to(DEVICE, dtype)
    temb6 = torch.randn(1, 6, cfg.dim, generator=g).to(DEVICE, dtype)
    fh = tokens // TOKENS_PER_FRAME
    from avatarv.models.dit.layout import GenLayout
    from avatarv.models.dit.rope import rope_cos_sin

    layout = GenLayout(fh, LATENT // 2, LATENT // 2, False)
    cos, sin = rope_cos_sin(layout.positions(device=DEVICE), cfg.head_dim)
    rotary = (cos.repeat_interleave(2, -1)[None, :, None], sin.repeat_interleave(2, -1)[None, :, None])
    with torch.no_grad():
        t_ours = median_seconds(lambda: ours(x, temb6, (cos, sin), text, None, layout, None, None), repeats=5)
        t_theirs = median_seconds(lambda: theirs(x, text, temb6, rotary), repeats=5)
    return t_theirs / t_ours


def ref_scaling(model: VideoRefDiT, repeats: int, max_ref: int, gen: int = 1024,
                dtype: torch.dtype = torch.float32) -> list[dict]:
    rows = []
    for ref_tokens in [gen * k for k in (1, 2, 4, 8) if gen * k <= max_ref]:
        r = step_times(model, gen, ref_tokens, repeats, dtype)
        rows.append({"ref_tokens": ref_tokens, "gen_tokens": gen, **r})
        print(f"  ref {ref_tokens:5d}: full {r['full_ms']:8.1f} ms  cached {r['cached_ms']:8.1f} ms", flush=True)
    return rows


def plot_scaling(rows: list[dict], path: Path, dtype: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    x = [r["ref_tokens"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("full_ms", "full concatenation"), ("sparse_ms", "sparse (no cache)"),
                       ("cached_ms", "sparse + K/V cache")):
        ax.plot(x, [r[key] for r in rows], marker="o", label=label)
    ax.set_xlabel(f"reference tokens (N_gen = {rows[0]['gen_tokens']})")
    ax.set_ylabel(f"ms per denoising step ({dtype}, {DEVICE.type})")
    ax.set_title("Cost of reference conditioning vs reference length")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def dtypes_to_run(choice: str, native: bool) -> list[torch.dtype]:
    if choice == "both" or (choice == "auto" and native):
        return [torch.float32, torch.bfloat16]
    if choice == "auto":
        return [torch.float32]
    return [compute_dtype(DEVICE, choice)]


def run_dtype(model: VideoRefDiT, dtype: torch.dtype, sizes: list[int], repeats: int, gen_for_scaling: int,
              max_ref: int) -> dict[str, object]:
    """Sections 1–4 in one dtype."""
    name = dtype_name(dtype)
    result: dict[str, object] = {}
    print(f"[{name}] step of the {model.cfg.dim}-dim preset ({torch.get_num_threads()} threads):", flush=True)
    per_size = {}
    for n in sizes:
        r = step_times(model, n, n, repeats, dtype)
        r["speedup_cached_vs_full"] = r["full_ms"] / r["cached_ms"]
        per_size[n] = r
        print(f"  N_ref = N_gen = {n}: full {r['full_ms']:.1f} ms, sparse {r['sparse_ms']:.1f} ms, "
              f"cached {r['cached_ms']:.1f} ms, speedup {r['speedup_cached_vs_full']:.2f}x", flush=True)
    largest = per_size[sizes[-1]]
    result.update({k: round(v, 2) for k, v in largest.items()})
    result["steps"] = {str(n): {k: round(v, 2) for k, v in r.items()} for n, r in per_size.items()}

    peak = matmul_peak(dtype)
    attn = attention_throughput(dtype)
    best = max(attn, key=attn.get)
    print(f"[{name}] attention at 4k tokens (GFLOP/s): { {k: round(v, 1) for k, v in attn.items()} }; "
          f"matmul peak {peak:.1f}", flush=True)
    result.update(attn_gflops=round(attn[best], 1), attn_backend=best, attn_backends={k: round(v, 1) for k, v in
                  attn.items()}, matmul_peak_gflops=round(peak, 1), attn_fraction_of_peak=round(attn[best] / peak, 3))
    try:
        result["block_speed_vs_diffusers"] = round(block_vs_diffusers(dtype=dtype), 3)
        print(f"[{name}] block ours vs diffusers: {result['block_speed_vs_diffusers']}x", flush=True)
    except ImportError:
        print("diffusers not installed here: block comparison skipped", flush=True)

    print(f"[{name}] reference scaling at N_gen = {gen_for_scaling}:", flush=True)
    rows = ref_scaling(model, repeats, max_ref, gen_for_scaling, dtype)
    plot_scaling(rows, OUT / f"ref_scaling{'' if DEVICE.type == 'cpu' else '_' + DEVICE.type}_{name}.png", name)
    result["ref_scaling"] = [{k: round(v, 1) for k, v in r.items()} for r in rows]
    if len(rows) >= 3:
        # growth exponent of step time between the shortest and longest reference (1 = linear, 2 = quadratic;
        # the fixed N_gen part pulls both below their asymptotic exponent)
        import math

        lo, hi = rows[0], rows[-1]
        ratio = math.log(hi["ref_tokens"] / lo["ref_tokens"])
        for key in ("cached_ms", "full_ms"):
            result[key.replace("_ms", "_growth")] = round(math.log(hi[key] / lo[key]) / ratio, 2)
    return result


def bf16_probe() -> dict[str, float]:
    """What bf16 costs where it is emulated, at sizes that finish: the matmul peak at 512² and SDPA at 1k."""
    peak = matmul_peak(torch.bfloat16, n=512)
    attn = attention_throughput(torch.bfloat16, tokens=1024)
    print(f"[bf16, emulated] matmul 512² {peak:.2f} GFLOP/s; attention at 1k tokens (GFLOP/s): "
          f"{ {k: round(v, 2) for k, v in attn.items()} }", flush=True)
    return {"matmul_peak_gflops_512": round(peak, 3), "attn_gflops_1k": {k: round(v, 3) for k, v in attn.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k tokens only, 2 repeats, ref scaling to 2k")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--preset", default="small", help="DiT preset for the step benchmarks")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "both"],
                        help="auto: fp32 and bf16 where bf16 is native, fp32 (+ a bf16 probe) where it is emulated")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    repeats = 2 if args.quick else 3
    sizes = [1024] if args.quick else [1024, 2048, 4096]
    gen_for_scaling, max_ref = 1024, (2048 if args.quick else 8192)
    if DEVICE.type == "cuda":  # a GPU needs longer sequences to be busy
        sizes, gen_for_scaling, max_ref = [4096, 8192, 16384], 4096, 32768
    native = bf16_native(DEVICE)
    machine = capability(DEVICE)
    print(f"machine: {machine}", flush=True)
    model = small_model(args.preset)
    result: dict[str, object] = {"bench": "attention", "threads": torch.get_num_threads(), "device": str(DEVICE),
                                 "preset": args.preset, "machine": machine}
    fp32_peak = matmul_peak(torch.float32)
    result["matmul_peak_gflops_fp32"] = round(fp32_peak, 1)
    per_dtype = {}
    for dtype in dtypes_to_run(args.dtype, native):
        per_dtype[dtype_name(dtype)] = run_dtype(model, dtype, sizes, repeats, gen_for_scaling, max_ref)
    if "bf16" not in per_dtype and not native:
        probe = bf16_probe()
        result["bf16_emulated_probe"] = probe
        result["bf16_vs_fp32_matmul"] = round(probe["matmul_peak_gflops_512"] / fp32_peak, 4)
    result["by_dtype"] = per_dtype
    first = next(iter(per_dtype.values()))
    result.update({k: v for k, v in first.items() if k != "steps"})  # the top-level figures: the first dtype's
    if len(per_dtype) == 2:
        faster = min(per_dtype, key=lambda k: per_dtype[k]["cached_ms"])
        result["bf16_vs_fp32_step"] = round(per_dtype["fp32"]["cached_ms"] / per_dtype["bf16"]["cached_ms"], 3)
    elif "bf16_vs_fp32_matmul" in result:  # bf16 emulated: the probe decides (a step would take minutes)
        faster = "bf16" if result["bf16_vs_fp32_matmul"] > 1 else "fp32"
    else:
        faster = next(iter(per_dtype))  # one dtype asked for
    policy = dtype_name(compute_dtype(DEVICE))
    result.update(faster_dtype=faster, policy_dtype=policy, policy_is_faster=faster == policy)
    print(f"faster per step: {faster}; the precision policy's default here: {policy}", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

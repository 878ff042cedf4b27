"""``avatarv info``: the model presets with parameter counts, and what this machine offers."""

from __future__ import annotations

import os
import platform

import typer


def machine_summary() -> dict[str, object]:
    """Threads, CPU flags relevant to bf16 (AMX / AVX-512 BF16), CUDA devices, and the precision each part
    computes in (``avatarv.precision``: bf16 only where the hardware computes it natively)."""
    import torch

    from avatarv.precision import capability, cpu_flags, mkldnn_bf16

    cap, flags = capability(), cpu_flags()  # one reading of the policy: every part computes in cap["dtype"]
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "cpu_model": cap["cpu_model"],
        "cpu_capability": cap["cpu_capability"],
        "mkldnn_bf16": mkldnn_bf16(),
        "bf16_native": cap["bf16_native"],
        "dtype_request": cap["dtype_request"],
        "dtype_dit_inference": cap["dtype"],
        "dtype_vae_inference": cap["dtype"],
        "dtype_training_autocast": cap["dtype"],
        "attention_tiled_backend": "used for bf16 inference" if cap["bf16_native"] else "off (bf16 not native)",
    }



def info(
    preset: str = typer.Option(None, "--preset", help="Only this preset (e.g. wan-14b)."),
) -> None:
    """Print the DiT presets (parameter counts, built on the meta device) and the machine."""
    from avatarv.config import PRESETS, get_preset
    from avatarv.models.dit import VideoRefDiT

    names = [preset] if preset else list(PRESETS)
    typer.echo("presets:")
    for name in names:
        cfg = get_preset(name)
        n = VideoRefDiT.count_parameters(cfg.dit)
        typer.echo(
            f"  {name:9s} dim={cfg.dit.dim:5d} heads={cfg.dit.num_heads:3d} layers={cfg.dit.num_layers:3d} "
            f"ffn={cfg.dit.ffn_dim:6d} params={n:,} ({n / 1e9:.3f} B)"
        )
    typer.echo("machine:")
    for key, value in machine_summary().items():
        typer.echo(f"  {key}: {value}")

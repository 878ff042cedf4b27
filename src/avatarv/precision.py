"""One precision policy: bf16 where the hardware computes it, fp32 everywhere else.

bf16 is only a speed-up where the processor multiplies bf16 natively. Measured with a 2048² matmul:

- Intel with AMX (``amx_bf16``): fp32 149 GFLOP/s, bf16 413 GFLOP/s;
- AMD EPYC with AVX2 only: fp32 94 GFLOP/s, bf16 **0.3** GFLOP/s (oneDNN has no bf16 kernel and ATen
  falls back to a scalar loop; ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is False there).

So every part of avatarv that picks a dtype asks :func:`compute_dtype`, and nothing else hard-codes bf16:
the VAE at inference, the DiT at inference, the attention backend rule (``tiled`` is a bf16 kernel), the
trainers' autocast. ``AVATARV_DTYPE=fp32|bf16`` (or ``--dtype`` on the commands) overrides the choice;
``auto`` (the default) asks the hardware.

Storage precision is a separate matter (checkpoints are stored in bf16 to halve their bytes, and loaded into
fp32 parameters): this module only decides what the arithmetic runs in.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform

import torch

from avatarv.errors import ConfigError

ENV_VAR = "AVATARV_DTYPE"
CHOICES = ("auto", "fp32", "bf16")
_NAMES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (``flags`` on x86, ``Features`` on ARM); empty elsewhere."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key = line.split(":", 1)[0].strip().lower()
                if key in ("flags", "features"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def mkldnn_bf16() -> bool:
    """Whether oneDNN says it can run bf16 on this CPU (``torch.ops.mkldnn._is_mkldnn_bf16_supported``; until
    2026-12-08 this called a misspelt ``_ismkldnn_bf16_supported``, which no torch has, so it was always False and
    ``auto`` chose fp32 even on AMX and AVX512-BF16 machines)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_bf16_native() -> bool:
    """True where the CPU has bf16 arithmetic in hardware and oneDNN uses it.

    oneDNN reports bf16 "supported" on any AVX-512 CPU, also those that only convert (Skylake, Cascade Lake),
    where bf16 is no faster than fp32; so the instruction set must have a bf16 dot product too: AMX-BF16 or
    AVX512-BF16 on x86, the BF16 extension on ARM (``bf16`` in /proc/cpuinfo's Features)."""
    flags = cpu_flags()
    if not mkldnn_bf16():
        return False
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "bf16" in flags
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def bf16_native(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` computes bf16 natively (CUDA: compute capability ≥ 8.0; CPU: :func:`cpu_bf16_native`)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return cpu_bf16_native()
    return False


def parse_dtype(name: str | None, field: str = ENV_VAR) -> str:
    """``auto`` / ``fp32`` / ``bf16`` (``float32``, ``bfloat16`` accepted); a clear error naming ``field``."""
    if name is None or name == "":
        return "auto"
    key = name.strip().lower()
    if key == "auto":
        return key
    if key in _NAMES:
        return "bf16" if _NAMES[key] is torch.bfloat16 else "fp32"
    raise ConfigError(f"{field}: unknown dtype {name!r}; choose one of {', '.join(CHOICES)}")


def requested() -> str:
    """What the environment asks for (``AVATARV_DTYPE``), ``auto`` when unset."""
    return parse_dtype(os.environ.get(ENV_VAR), ENV_VAR)


def compute_dtype(device: torch.device | str = "cpu", override: str | None = None) -> torch.dtype:
    """The dtype arithmetic runs in on ``device``: ``override`` (e.g. a ``--dtype`` flag) if given and not
    ``auto``, else ``AVATARV_DTYPE`` if set and not ``auto``, else bf16 where it is native and fp32 otherwise."""
    choice = parse_dtype(override, "--dtype") if override is not None else "auto"
    if choice == "auto":
        choice = requested()
    if choice == "auto":
        return torch.bfloat16 if bf16_native(device) else torch.float32
    return _NAMES[choice]


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


def autocast(device: torch.device | str, dtype: torch.dtype):
    """Mixed precision in ``dtype`` on ``device`` (weights stay as they are); a no-op for fp32."""
    device = torch.device(device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def capability(device: torch.device | str = "cpu") -> dict[str, object]:
    """What the figures of a benchmark depend on: put it in every JSON line so runs on different machines
    are never compared blindly."""
    device = torch.device(device)
    info: dict[str, object] = {
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": bf16_native(device),
        "threads": torch.get_num_threads(),
        "dtype_request": requested(),
        "dtype": dtype_name(compute_dtype(device)),
    }
    if device.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


__all__ = [
    "CHOICES", "ENV_VAR", "autocast", "bf16_native", "capability", "compute_dtype", "cpu_bf16_native",
    "cpu_flags", "cpu_model", "dtype_name", "mkldnn_bf16", "parse_dtype", "requested",
]

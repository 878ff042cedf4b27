"""Load a Wan / InfiniteTalk DiT shard by shard into the run dtype and device, without a full fp32 copy in host memory.

The DiT is built on the meta device (no storage); every checkpoint tensor is read alone (``safe_open``), cast to the
run dtype (fp32 / bf16 / fp16; fp8 ``float8_e4m3fn`` files cast up), LoRA deltas merged into it in fp32
(``models/dit/lora.py``), and assigned as the parameter. Host memory peaks at the model in the run dtype (when the
device is the CPU) + the shard being read (its pages are mapped) + one tensor in fp32. InfiniteTalk
(``wan/multitalk.py``) instead merges all of Wan's seven shards and ``infinitetalk.safetensors`` into one state dict
before ``load_state_dict``: ~2× the fp32 model. An fp32 file loaded as fp32 on the CPU is not even copied:
safetensors' ``get_tensor`` returns tensors on a private mapping of the file, paged in on first use.

Strict as ``wan_weights.load_wan_state_dict``: every checkpoint key must map to a parameter (an unknown key is an
error naming the key and its file), every parameter must come from some file, except avatarv's own additions
(``wan_weights.AVATARV_ONLY``), which get the init ``VideoRefDiT(cfg)`` gives them (identity on the Wan path). All
of it is checked from the headers before any tensor is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from avatarv.config import DiTConfig
from avatarv.errors import CheckpointError
from avatarv.models.dit.lora import LoraFiles, LoraSpec, apply_deltas, index_loras
from avatarv.models.dit.wan_weights import (
    AUDIO_ADAPTER_KEY,
    KeyMapper,
    LoadReport,
    classify_keys,
    detect_layout,
    is_avatarv_only,
    read_safetensors_header,
    strip_prefix,
)

RUN_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@dataclass
class StreamLoadReport(LoadReport):
    files: list[str] = field(default_factory=list)
    source_dtypes: dict[str, int] = field(default_factory=dict)  # safetensors dtype → number of tensors read
    lora_merged: list[str] = field(default_factory=list)  # our parameters a LoRA changed


def build_meta_dit(cfg: DiTConfig) -> nn.Module:
    """``VideoRefDiT(cfg)`` on the meta device: every shape, no storage, no init cost."""
    from avatarv.models.dit.model import VideoRefDiT

    with torch.device("meta"):
        return VideoRefDiT(cfg)


def parameter_groups(names_and_sizes: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Parameter counts by origin: ``wan`` (Wan2.1 incl. the I2V image branch), ``audio_adapter`` (InfiniteTalk /
    MultiTalk), ``avatarv`` (our additions), and ``total``."""
    counts = {"wan": 0, "audio_adapter": 0, "avatarv": 0}
    for name, n in names_and_sizes:
        group = ("audio_adapter" if AUDIO_ADAPTER_KEY.match(name)
                 else "avatarv" if is_avatarv_only(name) else "wan")
        counts[group] += n
    counts["total"] = sum(counts.values())
    return counts


def parameter_counts(cfg: DiTConfig) -> dict[str, int]:
    """:func:`parameter_groups` of the DiT ``cfg`` describes, counted on the meta device (nothing allocated):
    e.g. ``parameter_counts(infinitetalk_14b_config())`` for the full-size InfiniteTalk model."""
    model = build_meta_dit(cfg)
    return parameter_groups((k, p.numel()) for k, p in model.named_parameters())


def infinitetalk_14b_config(**extras) -> DiTConfig:
    """The DiT of InfiniteTalk-14B: Wan2.1-I2V-14B-480P's config.json + InfiniteTalk's audio adapter
    (``wan/configs/wan_multitalk_14B.py``, ``multitalk_model.py`` WanModel / AudioProjModel defaults)."""
    from avatarv.models.dit.wan_weights import INFINITETALK_AUDIO, WAN_I2V_14B_CONFIG, dit_config_from_wan

    return dit_config_from_wan(WAN_I2V_14B_CONFIG, **{**INFINITETALK_AUDIO, **extras})


def _set_tensor(model: nn.Module, name: str, value: torch.Tensor) -> None:
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name) if module_name else model
    if attr in module._parameters:
        old = module._parameters[attr]
        module._parameters[attr] = nn.Parameter(value, requires_grad=old.requires_grad)
    else:
        module._buffers[attr] = value


@torch.no_grad()
def _init_avatarv_only(model: nn.Module, names: list[str], device, dtype) -> None:
    """Materialise our own parameters (absent from Wan / InfiniteTalk files) with ``VideoRefDiT``'s init: zeros
    for bare parameters (``ref_embedding``, ``audio_position`` are zeros at construction), torch's own
    ``reset_parameters`` for layers whose parameters are all ours (LayerNorm: ones), then the DiT's
    ``reset_parameters`` (xavier linears, zeroed output projections). The Wan parameters are still on the meta
    device at that point, so those inits touch nothing else."""
    wanted = set(names)
    for name in names:
        shape = model.get_parameter(name).shape
        _set_tensor(model, name, torch.zeros(shape, device=device, dtype=dtype))
    prefix = {m: n for n, m in model.named_modules()}
    for module in model.modules():
        own = [f"{prefix[module]}.{k}".lstrip(".") for k, p in module._parameters.items() if p is not None]
        if module is not model and own and all(n in wanted for n in own) and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    model.reset_parameters()


@dataclass
class LoadPlan:
    """Which file fills which of our parameters, worked out from the headers alone (:func:`plan_dit_load`)."""

    model: nn.Module  # on the meta device
    files: list[Path]
    headers: dict[Path, dict[str, tuple[str, tuple[int, ...]]]]
    keys: dict[Path, dict[str, str]]  # file → {stored key: our key}
    report: StreamLoadReport


def plan_dit_load(files: Sequence[str | Path], cfg: DiTConfig, layout: str = "auto",
                  skip_image_branch: bool = False) -> LoadPlan:
    """Map every key of ``files`` onto ``VideoRefDiT(cfg)`` (built on meta) from the safetensors headers; raise
    :class:`CheckpointError` on unknown, duplicated, missing or misshaped keys, naming key and file. No tensor is
    read: ``avatarv weights check`` runs this on the 14B checkpoint in a fraction of a second."""
    files = [Path(f) for f in files]
    if not files:
        raise CheckpointError("no checkpoint files to load")
    headers = {f: read_safetensors_header(f) for f in files}
    if layout == "auto":
        layout = detect_layout(strip_prefix(k) for h in headers.values() for k in h)
    mapper = KeyMapper(layout, skip_image_branch and not cfg.image_dim)
    report = StreamLoadReport(layout=layout, files=[str(f) for f in files])
    model = build_meta_dit(cfg)
    own = {k: tuple(v.shape) for k, v in model.state_dict(keep_vars=True).items()}
    keys: dict[Path, dict[str, str]] = {f: {} for f in files}
    source: dict[str, Path] = {}
    problems: list[str] = []
    for f, header in headers.items():
        for raw, (_, shape) in header.items():
            ours = mapper(strip_prefix(raw), report)
            if ours is None:
                continue
            if ours == KeyMapper.UNEXPECTED or ours not in own:
                report.unexpected.append(raw)
                problems.append(f"unexpected key {raw} in {f}")
            elif ours in source:
                problems.append(f"{ours} in both {source[ours]} and {f} (key {raw})")
            elif tuple(shape) != own[ours]:
                problems.append(f"{raw} in {f}: checkpoint {tuple(shape)} vs model {own[ours]}")
            else:
                source[ours] = f
                keys[f][raw] = ours
    problems += [f"no file has {k}" for k in classify_keys(report, own, source)]
    if problems:
        raise CheckpointError(f"Wan {layout} checkpoint does not match the DiT config ({len(problems)} problems): "
                              + "; ".join(problems[:8]) + ("; …" if len(problems) > 8 else ""))
    return LoadPlan(model, files, headers, keys, report)


@torch.no_grad()
def load_dit_streaming(
    files: Sequence[str | Path],
    cfg: DiTConfig,
    dtype: torch.dtype = torch.bfloat16,
    device: str | torch.device = "cpu",
    lora: Sequence[LoraSpec] = (),
    layout: str = "auto",
    skip_image_branch: bool = False,
    on_file: Callable[[Path, int, int], None] | None = None,
) -> tuple[nn.Module, StreamLoadReport]:
    """Build ``VideoRefDiT(cfg)`` in ``dtype`` on ``device`` from safetensors ``files`` (Wan shards in either layout
    plus, for InfiniteTalk, its audio file; ``wan_weights.wan_checkpoint_files`` lists a folder's), merging ``lora``.

    ``skip_image_branch``: a DiT without the CLIP branch (``image_dim`` 0) may skip an I2V checkpoint's branch keys.
    ``on_file(path, i, n)`` is called before each file is read. Raises :class:`CheckpointError` (from the headers,
    before any tensor is read: :func:`plan_dit_load`) on unknown, duplicated, missing or misshaped keys."""
    if dtype not in RUN_DTYPES:
        raise CheckpointError(f"run dtype must be one of {', '.join(map(str, RUN_DTYPES))}, got {dtype}")
    device = torch.device(device)
    plan = plan_dit_load(files, cfg, layout, skip_image_branch)
    model, report = plan.model, plan.report
    lora = list(lora)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict(keep_vars=True).items()}
    deltas = index_loras(lora, {k: shapes[k] for k in report.loaded})

    from safetensors import safe_open

    _init_avatarv_only(model, report.avatarv_only, device, dtype)
    with LoraFiles(s.path for s in lora) as lora_files:
        for i, f in enumerate(plan.files):
            if on_file is not None:
                on_file(f, i, len(plan.files))
            with safe_open(str(f), framework="pt") as handle:
                for raw, ours in plan.keys[f].items():
                    dt = plan.headers[f][raw][0]
                    report.source_dtypes[dt] = report.source_dtypes.get(dt, 0) + 1
                    tensor = handle.get_tensor(raw)
                    if ours in deltas:
                        value = apply_deltas(tensor.to(device), deltas[ours], lora_files, dtype)
                        report.lora_merged.append(ours)
                    else:
                        value = tensor.to(device=device, dtype=dtype)
                    del tensor
                    _set_tensor(model, ours, value)
    left = [k for k, v in model.state_dict(keep_vars=True).items() if v.is_meta]
    if left:  # the plan covers every key; this guards the plan itself
        raise CheckpointError(f"{len(left)} parameters left unloaded: {', '.join(left[:8])}")
    return model, report

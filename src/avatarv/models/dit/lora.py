"""LoRA files as the Wan community ships them, merged into the DiT's weights (W ← W + s·α·up @ down).

Key scheme, as InfiniteTalk's ``wan/wan_lora.py`` (``WanLoraWrapper._apply_lora_weights``) reads it:
``diffusion_model.<Wan module>.lora_down.weight`` / ``.lora_up.weight`` (a low-rank pair), ``.diff`` (a full weight
delta) and ``.diff_b`` (a bias delta). Also accepted here, as other Wan LoRAs are written: no prefix,
``transformer.`` (diffusers-named modules), ``lora_A`` / ``lora_B`` for down / up (peft), ``lora_B.bias`` (diffusers'
form of ``diff_b``), and ``.alpha`` (kohya / ComfyUI).

Module names go through the same tables as the checkpoint (``wan_weights``: the InfiniteTalk audio adapter's, then
Wan's original, then diffusers' names), so a LoRA may name either layout. A key that maps to none of our
parameters is an error naming it.

``alpha``: InfiniteTalk's ``wan_lora.py`` ignores it (``delta = up @ down * lora_scale``); diffusers
(``lora_conversion_utils._convert_non_diffusers_wan_lora_to_diffusers``, ``get_alpha_scales``) scales the pair by
alpha / rank, as the LoRA was trained. :class:`LoraSpec` defaults to ``"ignore"``: the LoRAs InfiniteTalk's README
recommends (FusionX, lightx2v) come with scales tuned under its loader, and matching its outputs is the point of
loading InfiniteTalk. ``"scale"`` gives the LoRA's trained strength where alpha ≠ rank.

Merging is done in fp32 on the target device, then cast to the run dtype once (``wan_lora.py`` adds a delta computed
in the parameter's dtype off CPU; in bf16 that rounds each LoRA's delta before the sum).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from avatarv.errors import CheckpointError
from avatarv.models.dit.wan_weights import KeyMapper, read_safetensors_header

ALPHA_MODES = ("ignore", "scale")
LORA_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.")
_SUFFIX = re.compile(
    r"^(?P<base>.+?)\.(?P<part>lora_down\.weight|lora_up\.weight|lora_A\.weight|lora_B\.weight|lora_B\.bias"
    r"|alpha|diff|diff_b)$"
)
_DOWN, _UP = ("lora_down.weight", "lora_A.weight"), ("lora_up.weight", "lora_B.weight")


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA file and how strongly to merge it. ``alpha_mode``: ``"ignore"`` (InfiniteTalk's ``wan_lora.py``,
    the default; see the module docstring) or ``"scale"`` (alpha / rank, as diffusers and the trainer)."""

    path: Path
    scale: float = 1.0
    alpha_mode: str = "ignore"

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))
        if self.alpha_mode not in ALPHA_MODES:
            raise CheckpointError(f"LoRA alpha_mode must be one of {', '.join(ALPHA_MODES)}, got {self.alpha_mode!r}",
                                  self.path)


@dataclass(frozen=True)
class LoraDelta:
    """One update of one of our parameters: ``factor · up @ down`` (``keys`` = (down, up)) or ``factor · diff``
    (``keys`` = (diff,)), read from ``file``."""

    file: Path
    keys: tuple[str, ...]
    factor: float

    def compute(self, handle, shape: torch.Size, device) -> torch.Tensor:
        """The delta in fp32 on ``device``, shaped like the parameter. ``handle``: ``safe_open`` of ``file``."""
        if len(self.keys) == 1:
            delta = handle.get_tensor(self.keys[0]).to(device=device, dtype=torch.float32)
            return (delta * self.factor).reshape(shape)
        down = handle.get_tensor(self.keys[0]).to(device=device, dtype=torch.float32).flatten(1)  # [r, in·k]
        up = handle.get_tensor(self.keys[1]).to(device=device, dtype=torch.float32).flatten(1)  # [out, r]
        return ((up @ down) * self.factor).reshape(shape)  # conv LoRAs (patch_embedding): [out, in, kt, kh, kw]


def _strip(key: str) -> str:
    for p in LORA_PREFIXES:
        if key.startswith(p):
            return key[len(p) :]
    return key


class _Targets:
    """Wan (either layout) or audio-adapter module key → our parameter name, or None."""

    def __init__(self):
        self.mappers = [KeyMapper("original"), KeyMapper("diffusers")]

    def __call__(self, key: str) -> str | None:
        for mapper in self.mappers:
            ours = mapper(key)
            if ours not in (None, KeyMapper.UNEXPECTED):
                return ours
        return None


def index_lora(spec: LoraSpec, params: Mapping[str, tuple[int, ...]]) -> dict[str, list[LoraDelta]]:
    """Our parameter name → its deltas in one LoRA file, from the header (and the ``alpha`` scalars) alone.

    ``params``: our parameter shapes. Every key must belong to a pair, a diff or an alpha of a parameter in
    ``params`` with matching shapes; otherwise :class:`CheckpointError` names the key and the file."""
    from safetensors import safe_open

    header = read_safetensors_header(spec.path)
    groups: dict[str, dict[str, str]] = defaultdict(dict)
    for raw in header:
        m = _SUFFIX.match(_strip(raw))
        if m is None:
            raise CheckpointError(f"unknown LoRA key {raw!r} (expected <module>.lora_down/lora_up/lora_A/lora_B.weight,"
                                  " .alpha, .diff or .diff_b)", spec.path)
        groups[m["base"]][m["part"]] = raw
    targets = _Targets()
    out: dict[str, list[LoraDelta]] = defaultdict(list)

    def target(base: str, raw: str, kinds=("weight",)) -> str:
        for kind in kinds:
            ours = targets(f"{base}.{kind}" if kind else base)
            if ours is not None and ours in params:
                return ours
        raise CheckpointError(f"LoRA key {raw!r} names no parameter of this DiT", spec.path)

    with safe_open(str(spec.path), framework="pt") as handle:
        for base, parts in groups.items():
            down = next((parts[k] for k in _DOWN if k in parts), None)
            up = next((parts[k] for k in _UP if k in parts), None)
            if (down is None) != (up is None):
                raise CheckpointError(f"LoRA key {down or up!r} has no {'up' if up is None else 'down'} partner",
                                      spec.path)
            if down is not None:
                ours = target(base, down)
                rank, out_features = header[down][1][0], header[up][1][0]
                numel = torch.Size(params[ours]).numel()
                if (out_features != params[ours][0] or header[up][1][1] != rank
                        or out_features * torch.Size(header[down][1][1:]).numel() != numel):
                    raise CheckpointError(f"LoRA pair {down!r} {header[down][1]} / {up!r} {header[up][1]} does not fit "
                                          f"{ours} {tuple(params[ours])}", spec.path)
                alpha = 1.0
                if spec.alpha_mode == "scale" and "alpha" in parts:
                    alpha = float(handle.get_tensor(parts["alpha"]).float().item()) / rank
                out[ours].append(LoraDelta(spec.path, (down, up), spec.scale * alpha))
            elif "alpha" in parts:
                raise CheckpointError(f"LoRA key {parts['alpha']!r} has no lora_down/lora_up pair", spec.path)
            for part, kinds in (("diff", ("weight", "")), ("diff_b", ("bias",)), ("lora_B.bias", ("bias",))):
                if part in parts:
                    ours = target(base, parts[part], kinds)
                    if torch.Size(header[parts[part]][1]).numel() != torch.Size(params[ours]).numel():
                        raise CheckpointError(f"LoRA key {parts[part]!r} {header[parts[part]][1]} does not fit {ours} "
                                              f"{tuple(params[ours])}", spec.path)
                    out[ours].append(LoraDelta(spec.path, (parts[part],), spec.scale))
    return dict(out)


def index_loras(specs: Iterable[LoraSpec], params: Mapping[str, tuple[int, ...]]) -> dict[str, list[LoraDelta]]:
    """:func:`index_lora` over several files, deltas of one parameter in the order given."""
    merged: dict[str, list[LoraDelta]] = defaultdict(list)
    for spec in specs:
        for name, deltas in index_lora(spec, params).items():
            merged[name].extend(deltas)
    return dict(merged)


class LoraFiles:
    """Open ``safe_open`` handles of the LoRA files, for :func:`apply_deltas` (a context manager)."""

    def __init__(self, files: Iterable[Path]):
        self.files = sorted({Path(f) for f in files})
        self.handles: dict[Path, object] = {}

    def __enter__(self) -> LoraFiles:
        from safetensors import safe_open

        self.handles = {f: safe_open(str(f), framework="pt") for f in self.files}
        return self

    def __exit__(self, *exc) -> None:
        self.handles.clear()


def apply_deltas(weight: torch.Tensor, deltas: list[LoraDelta], files: LoraFiles, dtype: torch.dtype) -> torch.Tensor:
    """``weight`` + every delta, summed in fp32 on the weight's device, cast to ``dtype`` once."""
    merged = weight.to(torch.float32)
    for d in deltas:
        merged += d.compute(files.handles[d.file], merged.shape, merged.device)
    return merged.to(dtype)


@torch.no_grad()
def merge_loras(model: nn.Module, specs: Iterable[LoraSpec]) -> list[str]:
    """Merge LoRA files into an already loaded DiT, in place. Returns the names of the parameters changed."""
    specs = list(specs)
    params = dict(model.named_parameters())
    plan = index_loras(specs, {k: tuple(p.shape) for k, p in params.items()})
    with LoraFiles(s.path for s in specs) as files:
        for name, deltas in plan.items():
            p = params[name]
            p.copy_(apply_deltas(p.data, deltas, files, p.dtype))
    return sorted(plan)

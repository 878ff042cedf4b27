"""Shipped small networks (world SyncNet, world identity embedder): fp16 safetensors with the network's
config and training figures as JSON metadata, written atomically and read back in fp32."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from torch import nn

from avatarv.errors import CheckpointError


def save_small_weights(module: nn.Module, path: str | Path, meta: dict) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in module.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata={"avatarv": json.dumps(meta)})
    tmp.replace(path)
    return path


def load_small_weights(path: Path, build: Callable[[dict], nn.Module], what: str, make_target: str) -> nn.Module:
    """Build the network from the file's metadata (``build(meta)``), load its weights, attach ``meta``, eval mode."""
    from safetensors.torch import load_file, safe_open

    if not path.is_file():
        raise CheckpointError(f"{path}: {what} weights not found ({make_target})")
    with safe_open(str(path), "pt") as fh:
        meta = json.loads((fh.metadata() or {}).get("avatarv", "{}"))
    module = build(meta)
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(f"{path}: not a {what} ({result.missing_keys[:3]} {result.unexpected_keys[:3]})")
    module.meta = meta
    return module.eval()


__all__ = ["save_small_weights", "load_small_weights"]

"""avatarv's own DiT checkpoints: ``config.json`` + ``model.safetensors`` in a directory, written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from avatarv.config import DiTConfig
from avatarv.errors import CheckpointError
from avatarv.fsutil import atomic_directory

FORMAT = "avatarv-dit-v1"


def save_dit(model, directory: str | Path) -> None:
    from safetensors.torch import save_file

    with atomic_directory(directory) as tmp:
        (tmp / "config.json").write_text(json.dumps({"format": FORMAT, "dit": model.cfg.to_dict()}, indent=2))
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"))


def load_dit(directory: str | Path, device: str | torch.device = "cpu"):
    from safetensors.torch import load_file

    from avatarv.models.dit.model import VideoRefDiT

    directory = Path(directory)
    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError("not an avatarv DiT checkpoint (no config.json)", directory)
    meta = json.loads(cfg_path.read_text())
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"unknown checkpoint format {meta.get('format')!r} (expected {FORMAT})", directory)
    model = VideoRefDiT(DiTConfig.from_dict(meta["dit"]))
    state = load_file(str(directory / "model.safetensors"), device=str(device))
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"checkpoint does not match its config: missing {result.missing_keys[:8]}, "
            f"unexpected {result.unexpected_keys[:8]}",
            directory,
        )
    return model.to(device)

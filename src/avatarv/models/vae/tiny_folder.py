"""Folder I/O of the tiny VAE halves (tiny_decoder.py, tiny_encoder.py): ``config.json`` (the dataclass config and
the class name) + ``model.safetensors``; a missing, corrupt or mismatched folder is a ``CheckpointError`` naming it."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

from torch import nn

from avatarv.errors import CheckpointError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_folder(model: nn.Module, directory: str | Path) -> None:
    """``model.cfg`` (a dataclass) and the weights of ``model`` into ``directory``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_NAME).write_text(json.dumps({"class": type(model).__name__, **asdict(model.cfg)}, indent=2))
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(directory / WEIGHTS_NAME))


def load_folder(cls: type[nn.Module], config_cls: type, directory: str | Path, what: str) -> nn.Module:
    """A ``cls(config_cls(...))`` in eval mode from a folder written by ``save_folder``; ``what`` names it in errors
    ("tiny decoder"). A folder whose config names another class is refused."""
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / CONFIG_NAME).is_file() or not (directory / WEIGHTS_NAME).is_file():
        raise CheckpointError(f"not a {what} folder (needs {CONFIG_NAME} and {WEIGHTS_NAME})", directory)
    try:
        raw = json.loads((directory / CONFIG_NAME).read_text())
        if raw.get("class", cls.__name__) != cls.__name__:
            raise ValueError(f"class {raw.get('class')!r}, expected {cls.__name__}")
        known = {f.name for f in fields(config_cls)}
        cfg = config_cls(**{k: v for k, v in raw.items() if k in known})
    except (ValueError, TypeError, AttributeError) as err:
        raise CheckpointError(f"bad {what} {CONFIG_NAME}: {err}", directory) from None
    try:
        state = load_file(str(directory / WEIGHTS_NAME))
    except Exception as err:  # safetensors raises its own error types for truncated / foreign files
        raise CheckpointError(f"cannot read {WEIGHTS_NAME}: {err}", directory) from None
    model = cls(cfg)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshaped = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or misshaped:
        raise CheckpointError(f"{what} weights do not match its config: missing {missing[:4]}, "
                              f"unexpected {unexpected[:4]}, misshaped {misshaped[:4]}", directory)
    model.load_state_dict(state)
    return model.eval()

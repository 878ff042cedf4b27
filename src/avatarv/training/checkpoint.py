"""Training checkpoints: model, EMA and optimizer tensors in safetensors; RNG, data position and the
non-tensor optimizer state in JSON. Written to a temp folder and renamed, then ``latest`` is updated
atomically, so a kill at any moment leaves the previous checkpoint intact. Resume is exact on CPU.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from avatarv.errors import CheckpointError
from avatarv.fsutil import atomic_directory


def _flatten(obj, prefix: str, tensors: dict[str, torch.Tensor]):
    """Nested state dict → JSON skeleton with tensors replaced by {"__tensor__": key}."""
    if isinstance(obj, torch.Tensor):
        key = prefix or "root"
        tensors[key] = obj.detach().contiguous().cpu()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[_json_key(k), _flatten(v, f"{prefix}/{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [_flatten(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)],
                "tuple": isinstance(obj, tuple)}
    return obj


def _json_key(k):
    return k if isinstance(k, (str, int, float, bool)) or k is None else str(k)


def _unflatten(obj, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {k: _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            items = [_unflatten(v, tensors) for v in obj["__list__"]]
            return tuple(items) if obj.get("tuple") else items
    return obj


def save_state(path: Path, state: dict) -> None:
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, "", tensors)
    save_file(tensors, str(path.with_suffix(".safetensors")))
    path.with_suffix(".json").write_text(json.dumps(skeleton))


def load_state(path: Path) -> dict:
    tensors = load_file(str(path.with_suffix(".safetensors")))
    return _unflatten(json.loads(path.with_suffix(".json").read_text()), tensors)


def rng_state(generator: torch.Generator) -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": repr(random.getstate()),
    }


def restore_rng(state: dict, generator: torch.Generator) -> None:
    import ast

    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
    random.setstate(ast.literal_eval(state["python"]))


def save_checkpoint(root: Path, step: int, parts: dict[str, dict], keep: int = 0) -> Path:
    """Write ``root/step_XXXXXXX/{name}.safetensors|json`` for each part and point ``root/latest`` at it;
    then, with ``keep`` > 0, delete all but the newest ``keep`` checkpoints (only after ``latest`` moved, so a
    kill at any point leaves ``latest`` pointing at a whole checkpoint)."""
    final = root / f"step_{step:07d}"
    with atomic_directory(final) as tmp:
        for name, state in parts.items():
            save_state(tmp / name, state)
    latest_tmp = root / ".latest.tmp"
    latest_tmp.write_text(final.name)
    os.replace(latest_tmp, root / "latest")
    if keep > 0:
        import shutil

        steps = sorted(p for p in root.glob("step_*") if p.is_dir() and p.name[5:].isdigit())
        for old in steps[:-keep]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: Path) -> Path | None:
    pointer = root / "latest"
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    if not path.is_dir():
        raise CheckpointError(f"latest points at a missing checkpoint {path.name}", root)
    return path


def load_checkpoint(path: Path, names: list[str]) -> dict[str, dict]:
    return {name: load_state(path / name) for name in names}


def save_simple_trainer(root: Path, step: int, model: torch.nn.Module, optim: torch.optim.Optimizer,
                        generator: torch.Generator, config: dict, keep: int = 0) -> Path:
    """One model, one optimiser, one data generator: the checkpoint of the small single-model trainers (the VAE's,
    the tiny decoder's) under ``root`` at ``step``; ``resume_simple_trainer`` reads it back exactly."""
    return save_checkpoint(root, step, {
        "model": model.state_dict(), "optim": optim.state_dict(),
        "trainer": {"step": step, "rng": rng_state(generator), "config": config},
    }, keep=keep)


def resume_simple_trainer(root: Path, model: torch.nn.Module, optim: torch.optim.Optimizer,
                          generator: torch.Generator) -> int | None:
    """Load the latest ``save_simple_trainer`` checkpoint under ``root`` into the model, optimiser and generator.
    → its step, or None when there is none."""
    path = latest_checkpoint(root)
    if path is None:
        return None
    state = load_checkpoint(path, ["model", "optim", "trainer"])
    model.load_state_dict(state["model"])
    optim.load_state_dict(state["optim"])
    restore_rng(state["trainer"]["rng"], generator)
    return int(state["trainer"]["step"])


def truncate_log(path: Path, step: int) -> None:
    """Keep the records of ``step`` and before in a ``log.jsonl`` (each line a JSON object with ``step``): a run
    resumed from the checkpoint of ``step`` writes the later steps again, so they must not stay twice."""
    path = Path(path)
    if path.is_file():
        kept = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
        path.write_text("".join(k + "\n" for k in kept))

"""A pipeline (stages in dependency order), its inputs, and the desired state: the task keys.

A pipeline is a Python list of ``Stage`` objects or a TOML file::

    [[stage]]
    use = "normalise"                 # a name from ``stages.REGISTRY`` or "package.module:Class"
    config = { max_side = 640, fps = 25.0 }

    [[stage]]
    use = "prefilter"
    name = "prefilter"                # defaults to the class's name; ``inputs`` to the class's inputs

Desired state: every input item through every stage. The key of a task chains the stage's config hash with
the item's content hash (for a first stage) or its upstream tasks' keys, so a config change invalidates a
stage and everything downstream of it and nothing else::

    key(stage, item) = H(config_hash(stage), content_hash(item), key(u, item) for u in stage.inputs)

A collection stage (one task over every item, e.g. dedup) hashes the keys of all items whose upstream tasks
committed.
"""

from __future__ import annotations

import hashlib
import importlib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from avatarv.data.curation.stage import Stage
from avatarv.errors import ConfigError, InputError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


def _h(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class InputItem:
    item_id: str  # path relative to the input folder
    path: Path
    content_hash: str


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def discover_inputs(input_dir: str | Path) -> list[InputItem]:
    """Every video file under ``input_dir`` (recursively, sorted), identified by path and content hash."""
    root = Path(input_dir)
    if not root.is_dir():
        raise InputError("input folder not found", root)
    items = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES):
        items.append(InputItem(path.relative_to(root).as_posix(), path.resolve(), file_hash(path)))
    return items


class Pipeline:
    """Stages in a valid dependency order (inputs must name earlier stages)."""

    def __init__(self, stages: list[Stage]):
        self.stages = list(stages)
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ConfigError(f"pipeline: duplicate stage names {names}")
        seen: set[str] = set()
        for s in self.stages:
            missing = [u for u in s.inputs if u not in seen]
            if missing:
                raise ConfigError(f"pipeline: stage {s.name!r} needs {missing}, which no earlier stage provides")
            if s.scope not in ("item", "collection"):
                raise ConfigError(f"pipeline: stage {s.name!r} has unknown scope {s.scope!r}")
            seen.add(s.name)
        self.by_name = {s.name: s for s in self.stages}

    def dependants(self, name: str) -> list[str]:
        """Stages downstream of ``name`` (transitively), in pipeline order."""
        out: set[str] = {name}
        for s in self.stages:
            if any(u in out for u in s.inputs):
                out.add(s.name)
        return [s.name for s in self.stages if s.name in out and s.name != name]

    def item_key(self, stage: Stage, item: InputItem, keys: dict[str, str]) -> str:
        """Task key of an item stage given the keys of its upstream tasks for this item (``keys``)."""
        if stage.inputs:
            return _h(stage.config_hash(), *(f"{u}={keys[u]}" for u in stage.inputs))
        return _h(stage.config_hash(), item.content_hash)

    def collection_key(self, stage: Stage, members: list[tuple[str, dict[str, str]]]) -> str:
        """Task key of a collection stage over ``members``: (item_id, upstream keys) of every committed item."""
        parts = [f"{iid}:" + ",".join(f"{u}={k[u]}" for u in stage.inputs) for iid, k in sorted(members)]
        return _h(stage.config_hash(), *parts)

    def specs(self) -> list[dict]:
        return [s.spec() for s in self.stages]


def resolve_stage_class(use: str):
    from avatarv.data.curation.stages import REGISTRY

    target = REGISTRY.get(use, use)
    if ":" not in target:
        raise ConfigError(f"unknown stage {use!r} (known: {sorted(REGISTRY)}, or 'package.module:Class')")
    module, qual = target.split(":")
    try:
        obj = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"stage {use!r}: cannot import {target} ({err})") from err
    return obj


def load_pipeline(path: str | Path) -> Pipeline:
    """A pipeline from a TOML file (see the module docstring) or a built-in name from ``PRESETS``."""
    from avatarv.data.curation.stages import PRESETS

    p = Path(path)
    if not p.is_file():
        if str(path) in PRESETS:
            return Pipeline(PRESETS[str(path)]())
        raise InputError(f"pipeline file not found (or a preset: {sorted(PRESETS)})", p)
    try:
        doc = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{p}: {err}") from err
    stages = []
    for entry in doc.get("stage", []):
        if "use" not in entry:
            raise ConfigError(f"{p}: every [[stage]] needs 'use'")
        cls = resolve_stage_class(entry["use"])
        kwargs = dict(entry.get("config", {}))
        stages.append(cls(name=entry.get("name"), inputs=tuple(entry["inputs"]) if "inputs" in entry else None,
                          **kwargs))
    if not stages:
        raise ConfigError(f"{p}: no [[stage]] entries")
    return Pipeline(stages)

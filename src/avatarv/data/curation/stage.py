"""A curation stage: declared inputs, outputs and resources, a typed config, and a pure ``process``.

The engine never looks inside a stage. It needs only:

- ``name`` (unique in a pipeline), ``inputs`` (upstream stage names), ``outputs`` (artifact names the stage
  writes beside its ``values.json``), ``resources`` (what one task holds: cpu, gpu, memory), ``scope``
  (``"item"``: one task per input video; ``"collection"``: one task over every item, e.g. dedup);
- ``config_hash()``: the identity of the stage's behaviour (class, ``version``, config). The desired state of
  an item is keyed by it, so changing a config field or bumping ``version`` invalidates exactly the stage's
  own artifacts and, through the chained task keys (``pipeline.task_key``), its dependants';
- ``process(item)`` (or ``process(items)`` for a collection stage): reads only its arguments and returns an
  ``Output``. It must be deterministic (the resume and executor-parity tests compare bytes) and must not
  write anywhere: the engine writes the output atomically.

A stage whose model cannot run here returns ``Output.unavailable(reason)`` (``unavailable()`` says why before
any work is done); the reason is stored and shown by ``avatarv curate status``. Never a made-up value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Resources:
    """What one task of a stage holds while it runs (the executors schedule by it)."""

    cpu: float = 1.0
    gpu: float = 0.0
    memory_mb: int = 512


@dataclass
class Output:
    """What ``process`` returns: JSON-able ``values``, named numpy ``arrays`` (saved as .npy) and raw ``files``."""

    values: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    status: str = "ok"  # "ok" | "unavailable"
    reason: str | None = None

    @classmethod
    def unavailable(cls, reason: str) -> Output:
        return cls(values={}, status="unavailable", reason=reason)


@dataclass
class Artifact:
    """A committed output of an upstream stage, as a downstream ``process`` sees it."""

    stage: str
    path: Path  # the artifact directory (values.json, *.npy, files)
    values: dict[str, Any]
    status: str = "ok"
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def array(self, name: str) -> np.ndarray:
        return np.load(self.path / f"{name}.npy", allow_pickle=False)

    def file(self, name: str) -> Path:
        return self.path / name


@dataclass
class Item:
    """One input video (``item_id`` is its path under the input folder) and its upstream artifacts."""

    item_id: str
    source: Path
    content_hash: str
    upstream: dict[str, Artifact] = field(default_factory=dict)

    def video_path(self) -> Path:
        """The normalised video when a ``normalise`` stage ran upstream, else the source file."""
        norm = self.upstream.get("normalise")
        if norm is not None and norm.ok:
            return norm.file("video.mp4")
        return self.source


def _jsonable(obj):
    if is_dataclass(obj):
        return asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"config value {obj!r} is not JSON-able")


class Stage:
    """Base class. Subclasses set the class attributes, a ``Config`` dataclass and ``process``."""

    name: ClassVar[str] = "stage"
    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ()
    resources: ClassVar[Resources] = Resources()
    scope: ClassVar[str] = "item"
    version: ClassVar[str] = "1"

    @dataclass(frozen=True)
    class Config:
        pass

    def __init__(self, name: str | None = None, inputs: tuple[str, ...] | None = None, **config):
        known = {f.name for f in fields(self.Config)}
        unknown = sorted(set(config) - known)
        if unknown:
            from avatarv.errors import ConfigError

            raise ConfigError(f"stage {type(self).__name__}: unknown config {unknown} (known: {sorted(known)})")
        self.config = self.Config(**config)
        if name is not None:
            self.name = name
        if inputs is not None:
            self.inputs = tuple(inputs)

    # -- identity -------------------------------------------------------------------------------------------
    @property
    def class_path(self) -> str:
        return f"{type(self).__module__}:{type(self).__qualname__}"

    def spec(self) -> dict:
        """Everything needed to rebuild this stage in a worker (``build_stage(spec)``)."""
        return {"class": self.class_path, "name": self.name, "inputs": list(self.inputs),
                "config": json.loads(json.dumps(asdict(self.config), default=_jsonable))}

    def config_hash(self) -> str:
        doc = {"class": self.class_path, "version": self.version, "config": self.spec()["config"]}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    # -- work -----------------------------------------------------------------------------------------------
    def unavailable(self) -> str | None:
        """Why this stage cannot run here (a missing model or package), or None when it can."""
        return None

    def process(self, item):  # Item -> Output, or list[Item] -> Output for scope == "collection"
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, config={self.config})"


_BUILT: dict[str, Stage] = {}


def build_stage(spec: dict) -> Stage:
    """Rebuild a stage from ``Stage.spec()``; cached per process so a worker loads a model once."""
    import importlib

    key = json.dumps(spec, sort_keys=True)
    stage = _BUILT.get(key)
    if stage is None:
        module, qual = spec["class"].split(":")
        cls = importlib.import_module(module)
        for part in qual.split("."):
            cls = getattr(cls, part)
        stage = cls(name=spec["name"], inputs=tuple(spec["inputs"]), **spec["config"])
        _BUILT[key] = stage
    return stage

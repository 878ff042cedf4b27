"""Where avatarv finds what it ships and what it loads: no path is relative to a source checkout, so a
``pip install .`` (not editable) behaves like the repository.

- Bundled examples (``examples/ref.mp4``, ``examples/speech.wav``: the demo's inputs) and the world analyzer
  are package data (``avatarv/assets``), read through ``importlib.resources``.
- Pipeline checkpoints are found by name on a search path, first hit wins:
  1. the folders in ``$AVATARV_CHECKPOINTS`` (separated by ``os.pathsep``);
  2. ``./checkpoints`` (the repository's, when run from its root as ``make demo`` does);
  3. ``$XDG_DATA_HOME/avatarv/checkpoints`` (default ``~/.local/share/avatarv/checkpoints``).
  A checkpoint is a folder holding ``pipeline.json``. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from avatarv.errors import CheckpointError

DEFAULT_CHECKPOINT = "world-small"  # the bundled world model, ``generate``'s default
DISTILLED_CHECKPOINT = "world-small-distilled"  # its stage-4 student (training/distill_recipe.py), the demo's default


def asset(*parts: str) -> Path:
    """A file shipped in ``avatarv/assets`` (a real path: the package is installed as files, not zipped)."""
    return Path(str(resources.files("avatarv").joinpath("assets", *parts)))


def example(name: str) -> Path:
    """A bundled example input: ``ref.mp4`` or ``speech.wav``."""
    return asset("examples", name)


def checkpoint_search_path() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("AVATARV_CHECKPOINTS", "").split(os.pathsep) if p]
    dirs.append(Path.cwd() / "checkpoints")
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    dirs.append(data / "avatarv" / "checkpoints")
    return dirs


def find_checkpoint(name: str = DEFAULT_CHECKPOINT) -> Path:
    """The first ``<dir>/<name>`` with a ``pipeline.json`` on :func:`checkpoint_search_path`; a clear error
    naming the folders searched otherwise."""
    searched = checkpoint_search_path()
    for d in searched:
        if (d / name / "pipeline.json").is_file():
            return d / name
    raise CheckpointError(f"checkpoint {name!r} not found in {', '.join(str(d) for d in searched)} (set "
                          "AVATARV_CHECKPOINTS, pass --checkpoint DIR, or --preset NAME for untrained random weights)")


__all__ = ["DEFAULT_CHECKPOINT", "DISTILLED_CHECKPOINT", "asset", "checkpoint_search_path", "example", "find_checkpoint"]

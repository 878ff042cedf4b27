"""User-facing errors: one line, naming the file and what is wrong, and a non-zero exit."""

from __future__ import annotations

from pathlib import Path


class AvatarvError(Exception):
    """An error meant for a person. ``str(err)`` is printed as ``avatarv: <message>``."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(AvatarvError):
    """Bad user input: missing, corrupt or unsuitable file; bad option value."""


class ConfigError(AvatarvError):
    """A configuration that cannot be built (unknown preset, inconsistent sizes)."""


class CheckpointError(AvatarvError):
    """A checkpoint that does not match the model (missing/unexpected keys, wrong shapes)."""

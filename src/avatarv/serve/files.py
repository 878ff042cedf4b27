"""The data folder: where each user's files live, and uploads that land atomically or not at all.

Layout (paths in the store are relative to the root)::

    avatarv.sqlite3           the store (WAL: -wal and -shm beside it)
    keys/signer.key, .pem     the C2PA signing key, made once (provenance.c2pa.generate_key)
    tmp/                      uploads being received (same file system: the final rename is atomic)
    users/<user>/avatars/<avatar>/reference.mp4, consent-<id>.mp4
    users/<user>/jobs/<job>/speech.*, voice.*, work/attempt-<n>/…, video.mp4 (finished, marked, signed)

Client file names are never used in paths (``../../x`` names nothing): files get server-chosen names.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from pathlib import Path

from avatarv.serve.errors import ApiError

CHUNK = 1 << 20


class DataDir:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.tmp = self.root / "tmp"
        self.keys = self.root / "keys"
        for d in (self.root, self.tmp, self.keys):
            d.mkdir(parents=True, exist_ok=True)

    @property
    def db_path(self) -> Path:
        return self.root / "avatarv.sqlite3"

    def avatar_dir(self, user_id: str, avatar_id: str) -> Path:
        return self.root / "users" / user_id / "avatars" / avatar_id

    def job_dir(self, user_id: str, job_id: str) -> Path:
        return self.root / "users" / user_id / "jobs" / job_id

    def rel(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.root).as_posix()

    def path(self, rel: str) -> Path:
        """A stored relative path → absolute, refusing anything that would leave the root."""
        p = (self.root / rel).resolve()
        if not p.is_relative_to(self.root):
            raise ValueError(f"{rel!r} leaves the data folder")
        return p

    def remove_tree(self, path: Path) -> None:
        """Delete a folder: renamed into tmp first (atomic), so a crash never leaves half of it in place."""
        trash = self.tmp / f"trash-{secrets.token_hex(8)}"
        try:
            os.replace(path, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def clean_tmp(self) -> None:
        """At start: uploads and deletions a crash interrupted."""
        for p in self.tmp.iterdir():
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def receive(stream, tmp_dir: Path, limit: int, what: str) -> Path:
    """Copy a binary file-like ``stream`` to a new file in ``tmp_dir``, at most ``limit`` bytes (413 past it,
    nothing kept); fsynced. The caller validates it, then ``commit``s it or unlinks it."""
    tmp = tmp_dir / f"upload-{secrets.token_hex(8)}.part"
    size = 0
    try:
        with open(tmp, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"{what}: larger than the {limit / 1e6:g} MB allowed per upload")
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise ApiError(422, f"{what}: empty file")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def commit(tmp: Path, dest: Path) -> Path:
    """Move a received file into place (atomic rename within the data folder)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    return dest


def write_json(path: Path, data: dict) -> None:
    """Atomic JSON write (temp + rename): a reader sees the old or the new content, never half."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(data, default=float))
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def safe_label(name: str | None, default: str = "upload") -> str:
    """A client file name, for display only: its last component, harmless characters, ≤ 80 characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^A-Za-z0-9._ -]", "_", base).strip(" .")
    return base[:80] or default

"""Observed state: committed artifacts (on any filesystem URL) plus a SQLite key-value store of task records.

Layout::

    OUT/state.sqlite                                task records (status, attempts, error, seconds): local,
                                                    written only by the engine
    ROOT/artifacts/<stage>/<item>/<task_key>/       one committed task: values.json, *.npy, files
    ROOT/tmp/                                       tasks being written (local roots; deleted on start)

``ROOT`` is the output folder by default, or any ``fsspec`` URL (``s3://bucket/run``, ``gs://...``,
``file:///nfs/run``; ``memory://`` in tests). **Every worker writes its own artifacts and reads its upstream
artifacts there, so on a cluster ROOT must be a filesystem every node reaches** (a shared mount or an object
store): a local path on the head node is invisible to the other nodes' workers, whose tasks would fail to find
their inputs. The engine itself only reads each artifact's ``values.json``; large data never travels through it.

Commit protocol (``ArtifactStore.commit``), so a directory with a ``values.json`` is always complete:

- local filesystem: the task is written into ``ROOT/tmp/`` and moved into place with one ``os.rename``
  (atomic on POSIX, NFS included);
- object stores (no rename): every other file is uploaded first and ``values.json`` last; a single PUT is
  atomic, so ``values.json`` is the commit marker. A worker killed mid-upload leaves files without a marker;
  the retry overwrites them with the same bytes.

Keys are content-addressed (``pipeline.task_key``) and stages deterministic, so a task that lands twice (a
worker presumed dead that was only slow, a Ray retry) writes the same bytes: commits are idempotent and a
second one is skipped. ``values.json`` holds only what the stage returned (no timings), so two runs of the
same pipeline give byte-identical artifacts. The artifact is the truth about "done"; the SQLite record is
written after it (a run killed in between adopts the artifact on resume instead of recomputing it).

A worker reads upstream artifacts of a remote root through a local read-only cache
(``$TMPDIR/avatarv-artifacts/...``), valid forever because an artifact under a key never changes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from avatarv.data.curation.stage import Artifact, Output

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    stage TEXT NOT NULL, item TEXT NOT NULL, key TEXT NOT NULL,
    status TEXT NOT NULL,             -- done | unavailable | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT, reason TEXT,
    seconds REAL, frames INTEGER, finished REAL,
    PRIMARY KEY (stage, item, key)
);
CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""

COLLECTION_ITEM = "_all"


class StoreIOError(OSError):
    """Reading or writing the artifact filesystem failed (a network hiccup, a throttled object store): the
    task may simply be run again (it is idempotent), so the Ray executor retries it (``retry_exceptions``)."""


def safe_item_dir(item_id: str) -> str:
    return item_id.replace("/", "__")


def artifact_dir(root: Path, stage: str, item_id: str, key: str) -> Path:
    """The artifact directory under a local root (``ArtifactStore.path`` for any URL)."""
    return Path(root) / "artifacts" / stage / safe_item_dir(item_id) / key


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-able")


def _encode(stage: str, item_id: str, key: str, out: Output) -> dict[str, bytes]:
    """The files of a committed task, ``values.json`` included (deterministic bytes)."""
    files: dict[str, bytes] = {}
    for name, arr in out.arrays.items():
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
        files[f"{name}.npy"] = buf.getvalue()
    files.update(out.files)
    doc = {"stage": stage, "item": item_id, "key": key, "status": out.status, "reason": out.reason,
           "values": out.values}
    files["values.json"] = json.dumps(doc, sort_keys=True, indent=1, default=_json_default).encode()
    return files


class ArtifactStore:
    """The committed artifacts under ``ROOT/artifacts`` for a local path or an ``fsspec`` URL (module docstring)."""

    def __init__(self, root: str | Path):
        from fsspec.core import url_to_fs
        from fsspec.implementations.local import LocalFileSystem

        self.url = str(root)
        self.fs, path = url_to_fs(self.url)
        self.local = isinstance(self.fs, LocalFileSystem)
        self.root = path.rstrip("/") or "/"
        if self.local:  # an absolute path: workers may run in another directory
            self.root = str(Path(self.root).resolve())
            self.url = self.root

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    def path(self, stage: str, item_id: str, key: str) -> str:
        return f"{self.root}/artifacts/{stage}/{safe_item_dir(item_id)}/{key}"

    def exists(self, stage: str, item_id: str, key: str) -> bool:
        try:
            return self.fs.isfile(self.path(stage, item_id, key) + "/values.json")
        except OSError as err:
            raise StoreIOError(f"{self.url}: cannot check {stage}/{item_id}/{key}: {err}") from err

    def read_doc(self, stage: str, item_id: str, key: str) -> dict:
        """The committed ``values.json`` (status, reason, values) without fetching the arrays."""
        with self.fs.open(self.path(stage, item_id, key) + "/values.json", "rb") as fh:
            return json.loads(fh.read())

    def local_dir(self, stage: str, item_id: str, key: str) -> Path:
        """A local directory holding the artifact: itself on a local root, else a read-only cached copy."""
        src = self.path(stage, item_id, key)
        if self.local:
            return Path(src)
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:12]
        cache = Path(tempfile.gettempdir()) / "avatarv-artifacts" / digest / stage / safe_item_dir(item_id) / key
        if (cache / "values.json").is_file():
            return cache
        tmp = cache.parent / f".{key}-{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        try:
            for f in self.fs.ls(src, detail=False):
                name = f.rstrip("/").rsplit("/", 1)[-1]
                with self.fs.open(f, "rb") as fh:
                    (tmp / name).write_bytes(fh.read())
            os.rename(tmp, cache)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            if (cache / "values.json").is_file():  # another task of this worker fetched it first
                return cache
            raise StoreIOError(f"{self.url}: cannot fetch {stage}/{item_id}/{key}: {err}") from err
        return cache

    def load(self, stage: str, item_id: str, key: str) -> Artifact:
        """The artifact as a stage reads it (a local directory: arrays and files open as paths)."""
        path = self.local_dir(stage, item_id, key)
        doc = json.loads((path / "values.json").read_text())
        return Artifact(stage, path, doc["values"], doc["status"], doc.get("reason"))

    def commit(self, stage: str, item_id: str, key: str, out: Output) -> str:
        """Write ``out`` so that it appears whole or not at all (module docstring); a no-op when the task is
        already committed (same key: same bytes). Runs in the worker."""
        final = self.path(stage, item_id, key)
        if self.exists(stage, item_id, key):
            return final
        files = _encode(stage, item_id, key, out)
        try:
            if self.local:
                self._commit_local(final, files)
            else:
                self.fs.makedirs(final, exist_ok=True)
                for name in sorted(files):  # values.json last: the commit marker
                    if name != "values.json":
                        self.fs.pipe_file(f"{final}/{name}", files[name])
                self.fs.pipe_file(f"{final}/values.json", files["values.json"])
        except OSError as err:
            raise StoreIOError(f"{self.url}: cannot commit {stage}/{item_id}/{key}: {err}") from err
        return final

    def _commit_local(self, final: str, files: dict[str, bytes]) -> None:
        tmp = Path(self.root) / "tmp" / f"{Path(final).parts[-4]}-{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        for name, data in files.items():
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())  # data on disk before the rename makes it visible
        Path(final).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, final)
        except OSError:  # someone else committed it first
            shutil.rmtree(tmp, ignore_errors=True)

    def clear_tmp(self) -> None:
        if self.local:
            shutil.rmtree(Path(self.root) / "tmp", ignore_errors=True)

    def committed(self) -> list[tuple[str, str, str]]:
        """Every committed (stage, item directory, key) under the root: what the kill tests compare with the
        desired state (one artifact per task, none missing, none extra)."""
        out = []
        base = f"{self.root}/artifacts"
        if not self.fs.exists(base):
            return out
        for f in self.fs.find(base):
            parts = f[len(base) :].strip("/").split("/")
            if len(parts) == 4 and parts[3] == "values.json":
                out.append((parts[0], parts[1], parts[2]))
        return sorted(out)


def load_artifact(root: str | Path, stage: str, item_id: str, key: str) -> Artifact:
    return ArtifactStore(root).load(stage, item_id, key)


class StateStore:
    """The SQLite task records of one output folder and its artifact store. Single writer: the engine.

    ``artifacts``: the artifact root URL (default: the output folder). It is remembered in the records, so
    ``StateStore(out)`` later (``avatarv curate status``, the evaluation) finds a remote root again."""

    def __init__(self, out_dir: str | Path, artifacts: str | Path | None = None):
        self.root = Path(out_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.root / "state.sqlite", timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        url = str(artifacts) if artifacts else self.kv("artifacts_url") or str(self.root.resolve())
        self.artifacts = ArtifactStore(url)
        self.put("artifacts_url", self.artifacts.url)

    def close(self) -> None:
        self.db.close()

    # -- artifacts ------------------------------------------------------------------------------------------
    @property
    def artifacts_url(self) -> str:
        return self.artifacts.url

    def artifact_dir(self, stage: str, item_id: str, key: str) -> Path:
        return self.artifacts.local_dir(stage, item_id, key)

    def has_artifact(self, stage: str, item_id: str, key: str) -> bool:
        return self.artifacts.exists(stage, item_id, key)

    def artifact_status(self, stage: str, item_id: str, key: str) -> tuple[str, str | None]:
        doc = self.artifacts.read_doc(stage, item_id, key)
        return doc["status"], doc.get("reason")

    def load_artifact(self, stage: str, item_id: str, key: str) -> Artifact:
        return self.artifacts.load(stage, item_id, key)

    def clear_tmp(self) -> None:
        self.artifacts.clear_tmp()

    # -- records --------------------------------------------------------------------------------------------
    def record(self, stage: str, item_id: str, key: str, status: str, *, error: str | None = None,
               reason: str | None = None, seconds: float | None = None, frames: int | None = None,
               count_attempt: bool = True) -> None:
        self.db.execute(
            "INSERT INTO tasks (stage, item, key, status, attempts, error, reason, seconds, frames, finished) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(stage, item, key) DO UPDATE SET "
            "status=excluded.status, attempts=tasks.attempts + excluded.attempts, error=excluded.error, "
            "reason=excluded.reason, seconds=excluded.seconds, frames=excluded.frames, finished=excluded.finished",
            (stage, item_id, key, status, int(count_attempt), error, reason, seconds, frames, time.time()),
        )

    def get(self, stage: str, item_id: str, key: str) -> dict | None:
        cur = self.db.execute("SELECT status, attempts, error, reason FROM tasks WHERE stage=? AND item=? AND key=?",
                              (stage, item_id, key))
        row = cur.fetchone()
        return None if row is None else {"status": row[0], "attempts": row[1], "error": row[2], "reason": row[3]}

    def rows(self) -> list[dict]:
        cur = self.db.execute("SELECT stage, item, key, status, attempts, error, reason, seconds, frames, finished "
                              "FROM tasks")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def reset_failed(self) -> int:
        return self.db.execute("DELETE FROM tasks WHERE status='failed'").rowcount

    def put(self, k: str, v) -> None:
        self.db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (k, json.dumps(v)))

    def kv(self, k: str, default=None):
        row = self.db.execute("SELECT v FROM kv WHERE k=?", (k,)).fetchone()
        return default if row is None else json.loads(row[0])


def commit_output(root: str | Path, stage: str, item_id: str, key: str, out: Output) -> str:
    """``ArtifactStore(root).commit(...)`` (kept for callers of the local-only API)."""
    return ArtifactStore(root).commit(stage, item_id, key, out)

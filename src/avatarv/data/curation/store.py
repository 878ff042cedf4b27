"""Observed state: committed artifacts on disk plus a SQLite key-value store of task records.

Layout under the output folder::

    out/state.sqlite                               task records (status, attempts, error, seconds)
    out/artifacts/<stage>/<item>/<task_key>/       one committed task: values.json, *.npy, files
    out/tmp/                                       tasks being written (deleted on start)

A task's artifact is written in ``tmp/`` and moved into place with one ``os.rename`` (atomic on a POSIX file
system), so a directory under ``artifacts/`` is always complete. ``values.json`` holds only what the stage
returned (no timings), so two runs of the same pipeline give byte-identical artifacts. The artifact
directory is the truth about "done"; the SQLite record is written after it and holds the bookkeeping (a run
killed in between adopts the artifact on resume instead of recomputing it).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
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


def safe_item_dir(item_id: str) -> str:
    return item_id.replace("/", "__")


def artifact_dir(root: Path, stage: str, item_id: str, key: str) -> Path:
    return Path(root) / "artifacts" / stage / safe_item_dir(item_id) / key


def load_artifact(root: Path, stage: str, item_id: str, key: str) -> Artifact:
    path = artifact_dir(root, stage, item_id, key)
    doc = json.loads((path / "values.json").read_text())
    return Artifact(stage, path, doc["values"], doc["status"], doc.get("reason"))


class StateStore:
    """The SQLite task records and the artifact tree of one output folder. Single writer: the engine."""

    def __init__(self, out_dir: str | Path):
        self.root = Path(out_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.root / "state.sqlite", timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- artifacts ------------------------------------------------------------------------------------------
    def artifact_dir(self, stage: str, item_id: str, key: str) -> Path:
        return artifact_dir(self.root, stage, item_id, key)

    def has_artifact(self, stage: str, item_id: str, key: str) -> bool:
        return (self.artifact_dir(stage, item_id, key) / "values.json").is_file()

    def load_artifact(self, stage: str, item_id: str, key: str) -> Artifact:
        return load_artifact(self.root, stage, item_id, key)

    def clear_tmp(self) -> None:
        shutil.rmtree(self.root / "tmp", ignore_errors=True)

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


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-able")


def commit_output(root: Path, stage: str, item_id: str, key: str, out: Output) -> Path:
    """Write ``out`` into a temporary directory and rename it into place (atomic). Runs in the worker.

    If the artifact already exists (a task that was re-run after a kill landed twice) the new copy is dropped:
    both are the same bytes because stages are deterministic.
    """
    final = artifact_dir(root, stage, item_id, key)
    if (final / "values.json").is_file():
        return final
    tmp = Path(root) / "tmp" / f"{stage}-{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    for name, arr in out.arrays.items():
        with open(tmp / f"{name}.npy", "wb") as fh:
            np.save(fh, np.ascontiguousarray(arr), allow_pickle=False)
    for name, data in out.files.items():
        (tmp / name).write_bytes(data)
    doc = {"stage": stage, "item": item_id, "key": key, "status": out.status, "reason": out.reason,
           "values": out.values}
    (tmp / "values.json").write_text(json.dumps(doc, sort_keys=True, indent=1, default=_json_default))
    for f in tmp.iterdir():  # data on disk before the rename makes it visible
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, final)
    except OSError:  # someone else committed it first
        shutil.rmtree(tmp, ignore_errors=True)
    return final

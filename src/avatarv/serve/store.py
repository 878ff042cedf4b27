"""The server's state in one SQLite file (WAL mode): users, sessions, avatars, consents, jobs, moderation
decisions and the audit log. Files live beside it under the data folder (``files.py``); rows name them by
paths relative to that folder.

One connection, one lock: SQLite serialises writers anyway, and the API's work per request is a few
indexed rows. ``transaction()`` is ``BEGIN IMMEDIATE`` … ``COMMIT``, so a claim (queued → running) cannot
be taken twice. The audit log is append-only and outlives the rows it mentions (a revoked avatar's rows
go, its record stays).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, role TEXT NOT NULL DEFAULT 'user',
    token_id TEXT UNIQUE NOT NULL, token_hash TEXT NOT NULL, limits TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL, disabled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS avatars (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), name TEXT NOT NULL,
    state TEXT NOT NULL, reference TEXT NOT NULL, reference_info TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS avatars_user ON avatars(user_id);
CREATE TABLE IF NOT EXISTS consents (
    id TEXT PRIMARY KEY, avatar_id TEXT NOT NULL, user_id TEXT NOT NULL, challenge TEXT NOT NULL,
    state TEXT NOT NULL, decision TEXT, consent_file TEXT, created REAL NOT NULL, decided REAL);
CREATE INDEX IF NOT EXISTS consents_avatar ON consents(avatar_id);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL, avatar_id TEXT NOT NULL, state TEXT NOT NULL,
    params TEXT NOT NULL, seconds REAL NOT NULL, watermark TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT, output TEXT, provenance TEXT, created REAL NOT NULL, started REAL, finished REAL);
CREATE INDEX IF NOT EXISTS jobs_user ON jobs(user_id, created);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, created);
CREATE TABLE IF NOT EXISTS moderation (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, user_id TEXT, subject TEXT NOT NULL,
    subject_id TEXT, kind TEXT NOT NULL, action TEXT NOT NULL, reasons TEXT NOT NULL, reviewer TEXT);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, user_id TEXT, action TEXT NOT NULL,
    subject TEXT, detail TEXT NOT NULL DEFAULT '{}');
"""

JSON_COLUMNS = {"limits", "reference_info", "challenge", "decision", "params", "provenance", "reasons", "detail"}


def _row(cursor: sqlite3.Cursor, values: tuple) -> dict:
    row = {}
    for (name, *_), value in zip(cursor.description, values, strict=True):
        row[name] = json.loads(value) if name in JSON_COLUMNS and isinstance(value, str) else value
    return row


class Store:
    """``store.one(sql, *args)`` → a dict or None, ``store.all(...)`` → dicts (JSON columns decoded),
    ``store.run(sql, *args)`` → rows changed; dict/list arguments are stored as JSON."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = _row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash of the process loses nothing
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(SCHEMA)

    @staticmethod
    def _args(args) -> tuple:
        return tuple(json.dumps(a, default=float) if isinstance(a, dict | list) else a for a in args)

    def one(self, sql: str, *args) -> dict | None:
        with self._lock:
            return self._conn.execute(sql, self._args(args)).fetchone()

    def all(self, sql: str, *args) -> list[dict]:
        with self._lock:
            return self._conn.execute(sql, self._args(args)).fetchall()

    def run(self, sql: str, *args) -> int:
        with self._lock:
            return self._conn.execute(sql, self._args(args)).rowcount

    @contextlib.contextmanager
    def transaction(self):
        """``with store.transaction(): ...`` — all or nothing, no other writer in between."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def audit(self, user_id: str | None, action: str, subject: str | None = None, **detail) -> None:
        self.run("INSERT INTO audit (at, user_id, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
                 time.time(), user_id, action, subject, detail)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

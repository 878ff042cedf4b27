"""Accounts: API tokens (shown once, stored as sha256, compared in constant time), session cookies for the
web page, and per-key token-bucket rate limits.

A token is ``av_<id>_<secret>``: ``id`` (8 random bytes, hex) finds the user's row, ``secret`` (32 random
bytes) is checked against the stored ``sha256(token)`` with ``hmac.compare_digest``. Sessions are random
32-byte ids in an HttpOnly, SameSite=Strict cookie, stored hashed the same way, expiring.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import uuid
from dataclasses import dataclass

from avatarv.serve.config import Limits
from avatarv.serve.errors import ApiError
from avatarv.serve.store import Store

SESSION_COOKIE = "avatarv_session"
ROLES = ("user", "admin")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class User:
    id: str
    name: str
    role: str
    limits: Limits

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def create_user(store: Store, name: str, role: str = "user", limits: dict | None = None,
                by: str | None = None) -> tuple[dict, str]:
    """A new user → (row, token). The token exists only in the return value: show it once."""
    if role not in ROLES:
        raise ApiError(422, f"role must be one of {', '.join(ROLES)}, got {role!r}")
    name = name.strip()
    if not name or len(name) > 64:
        raise ApiError(422, "a user name needs 1 to 64 characters")
    token_id = secrets.token_hex(8)
    token = f"av_{token_id}_{secrets.token_urlsafe(32)}"
    user_id = uuid.uuid4().hex[:16]
    with store.transaction():
        if store.one("SELECT 1 AS x FROM users WHERE name = ?", name):
            raise ApiError(409, f"a user named {name!r} exists")
        store.run("INSERT INTO users (id, name, role, token_id, token_hash, limits, created) VALUES (?,?,?,?,?,?,?)",
                  user_id, name, role, token_id, _hash(token), limits or {}, time.time())
    store.audit(by, "user.create", user_id, name=name, role=role)
    return store.one("SELECT id, name, role, limits, created FROM users WHERE id = ?", user_id), token


def user_for_token(store: Store, token: str, base: Limits) -> User | None:
    parts = token.split("_")
    if len(parts) < 3 or parts[0] != "av":
        return None
    row = store.one("SELECT * FROM users WHERE token_id = ? AND disabled = 0", parts[1])
    if row is None or not hmac.compare_digest(row["token_hash"], _hash(token)):
        return None
    return User(row["id"], row["name"], row["role"], Limits.from_dict(row["limits"], base))


def user_for_session(store: Store, session: str, base: Limits) -> User | None:
    row = store.one("SELECT u.*, s.expires, s.id_hash FROM sessions s JOIN users u ON u.id = s.user_id "
                    "WHERE s.id_hash = ? AND u.disabled = 0", _hash(session))
    if row is None or not hmac.compare_digest(row["id_hash"], _hash(session)) or row["expires"] < time.time():
        return None
    return User(row["id"], row["name"], row["role"], Limits.from_dict(row["limits"], base))


def create_session(store: Store, user: User, hours: float) -> tuple[str, float]:
    session = secrets.token_urlsafe(32)
    expires = time.time() + hours * 3600
    store.run("DELETE FROM sessions WHERE expires < ?", time.time())
    store.run("INSERT INTO sessions (id_hash, user_id, expires) VALUES (?, ?, ?)", _hash(session), user.id, expires)
    return session, expires


def end_session(store: Store, session: str) -> None:
    store.run("DELETE FROM sessions WHERE id_hash = ?", _hash(session))


class RateLimiter:
    """Token buckets by key (a user id, or a client address before login): ``take(key, rate_per_min,
    burst)`` spends one or raises 429 with the seconds until the next one (Retry-After)."""

    def __init__(self, clock=time.monotonic):
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()
        self._clock = clock

    def take(self, key: str, per_minute: float, burst: int, what: str = "requests") -> None:
        rate = per_minute / 60.0
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / rate if rate > 0 else 3600.0
                raise ApiError(429, f"too many {what}: at most {per_minute:g} a minute (bursts of {burst}); "
                                    f"retry in {wait:.0f} s", retry_after=wait)
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > 100_000:  # forget the idle (a full bucket is the default anyway)
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 3600}

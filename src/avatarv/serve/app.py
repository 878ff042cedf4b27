"""``create_app(config)``: the FastAPI application (API under ``/api``, OpenAPI at ``/docs``, the web page at
``/``), over one ``Server``: the store, the data folder, the job scheduler, the moderator, the consent verifier
and the rate limiter. Tests build it with their own executor, moderator and consent verifier.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse

from avatarv.serve.auth import RateLimiter, User
from avatarv.serve.config import ServerConfig
from avatarv.serve.errors import ApiError
from avatarv.serve.executors import Executor, make_executor
from avatarv.serve.files import DataDir
from avatarv.serve.moderation import Decision, Moderator, PolicyModerator
from avatarv.serve.scheduler import Scheduler
from avatarv.serve.store import Store

log = logging.getLogger("avatarv.serve")
STATIC = Path(__file__).resolve().parents[1] / "assets" / "serve"  # package data (pyproject: assets/**)


@dataclass
class Server:
    config: ServerConfig
    data: DataDir
    store: Store
    scheduler: Scheduler
    moderator: Moderator
    verify_consent: Callable  # (reference, consent, challenge, policy, now) -> ConsentDecision
    consent_policy: object
    limiter: RateLimiter = field(default_factory=RateLimiter)

    def moderate(self, user: User, decision: Decision, subject: str, subject_id: str | None, kind: str) -> None:
        """Store the decision (every one, allowed too) and raise the refusal as one line."""
        self.store.run("INSERT INTO moderation (at, user_id, subject, subject_id, kind, action, reasons) "
                       "VALUES (strftime('%s','now'), ?, ?, ?, ?, ?, ?)", user.id, subject, subject_id, kind,
                       decision.action, decision.reasons)
        if decision.action == "refuse":
            self.store.audit(user.id, "moderation.refuse", subject_id, kind=kind, reasons=decision.reasons)
            raise ApiError(422, f"refused by moderation: {decision.line()}")

    def ensure_key(self) -> None:
        from avatarv.provenance.c2pa import CERT_FILE, KEY_FILE, generate_key

        if not ((self.data.keys / KEY_FILE).is_file() and (self.data.keys / CERT_FILE).is_file()):
            generate_key(self.data.keys)
            self.store.audit(None, "key.generate", None, dir="keys")


def build_server(config: ServerConfig, executor: Executor | None = None, moderator: Moderator | None = None,
                 verify_consent: Callable | None = None, consent_policy=None) -> Server:
    data = DataDir(config.data)
    store = Store(data.db_path)
    if executor is None:
        executor = make_executor(config.executor, config.workers, config.ray_address)
    if moderator is None:
        moderator = PolicyModerator.from_file(config.blocklist, review_all=config.review_uploads)
    if verify_consent is None:
        from avatarv.serve.consent import verify_consent
    if consent_policy is None:
        from avatarv.serve.consent import ConsentPolicy

        consent_policy = ConsentPolicy()
    server = Server(config, data, store, Scheduler(store, data, config, executor), moderator, verify_consent,
                    consent_policy)
    server.ensure_key()
    return server


class BodyLimit:
    """Refuse a request whose declared body is over ``limit`` bytes before any of it is read (413)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.limit:
                response = JSONResponse({"detail": f"request body over {self.limit / 1e6:g} MB"}, status_code=413)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class QueueGate:
    """``POST /api/jobs`` while the queue is full: 429 + Retry-After before the upload is read (cheap under a
    burst; the per-user limits are checked after authentication, in the endpoint)."""

    def __init__(self, app, server: Server):
        self.app, self.server = app, server

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/api/jobs":
            scheduler = self.server.scheduler
            queued = scheduler.queue_length()
            if queued >= self.server.config.queue_size:
                err = ApiError(429, f"the job queue is full ({queued} jobs): try again later",
                               retry_after=scheduler.retry_after())
                await JSONResponse({"detail": err.detail}, status_code=429, headers=err.headers())(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(config: ServerConfig | None = None, server: Server | None = None, **server_kwargs) -> FastAPI:
    from avatarv.serve import api_accounts, api_admin, api_avatars, api_jobs

    server = server or build_server(config or ServerConfig(), **server_kwargs)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        server.data.clean_tmp()
        recovered = server.scheduler.recover()
        if any(recovered.values()):
            log.warning("recovered after a restart: %s", recovered)
        server.scheduler.start()
        yield
        server.scheduler.stop()

    app = FastAPI(title="avatarv", summary="Talking avatars with consent, moderation, watermark and provenance.",
                  version="0.1.0", lifespan=lifespan)
    app.state.server = server

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError):
        return JSONResponse({"detail": err.detail}, status_code=err.status, headers=err.headers())

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path"))
        return JSONResponse({"detail": f"{where}: {first.get('msg')}" if where else first.get("msg")},
                            status_code=422)

    for module in (api_accounts, api_avatars, api_jobs, api_admin):
        app.include_router(module.router, prefix="/api")

    @app.get("/healthz", include_in_schema=False)
    def healthz():
        return {"ok": True, "queue": server.scheduler.queue_length()}

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        path = (STATIC / name).resolve()
        if path.parent != STATIC or not path.is_file():
            raise ApiError(404, f"no static file {name}")
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    app.add_middleware(BodyLimit, limit=2 * server.config.limits.upload_bytes + (1 << 20))
    app.add_middleware(QueueGate, server=server)
    return app

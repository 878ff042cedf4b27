"""Log in (token → session cookie for the web page), log out, who am I (with today's usage)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from avatarv.serve.auth import SESSION_COOKIE, User, create_session, end_session, user_for_token
from avatarv.serve.deps import current_user
from avatarv.serve.errors import ApiError

router = APIRouter(tags=["accounts"])


class Login(BaseModel):
    token: str


@router.post("/login")
def login(body: Login, request: Request, response: Response):
    """Exchange an API token for a session cookie (HttpOnly, SameSite=Strict) for the web page."""
    server = request.app.state.server
    client = request.client.host if request.client else "?"
    server.limiter.take(f"login:{client}", server.config.login_per_minute, 10, "login attempts")
    user = user_for_token(server.store, body.token.strip(), server.config.limits)
    if user is None:
        raise ApiError(401, "invalid token")
    session, expires = create_session(server.store, user, server.config.session_hours)
    response.set_cookie(SESSION_COOKIE, session, max_age=int(expires - time.time()), httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    server.store.audit(user.id, "session.login", user.id, client=client)
    return {"id": user.id, "name": user.name, "role": user.role}


@router.post("/logout")
def logout(request: Request, response: Response):
    server = request.app.state.server
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        end_session(server.store, session)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"ok": True}


def usage(server, user: User) -> dict:
    from avatarv.serve.scheduler import OPEN

    day = server.store.one("SELECT COALESCE(SUM(seconds), 0) AS s FROM jobs WHERE user_id = ? AND created > ? "
                           "AND state NOT IN ('failed', 'rejected')", user.id, time.time() - 86400)["s"]
    open_jobs = server.store.one(f"SELECT COUNT(*) AS n FROM jobs WHERE user_id = ? AND state IN {OPEN}",
                                 user.id)["n"]
    return {"output_seconds_today": day, "open_jobs": open_jobs}


@router.get("/me")
def me(request: Request, user: User = Depends(current_user)):
    server = request.app.state.server
    return {"id": user.id, "name": user.name, "role": user.role, "limits": user.limits.to_dict(),
            "usage": usage(server, user)}

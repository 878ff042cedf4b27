"""What every endpoint needs: the caller (token or session cookie, rate-limited), the server, clean messages."""

from __future__ import annotations

from fastapi import Request

from avatarv.errors import InputError
from avatarv.serve.auth import SESSION_COOKIE, User, user_for_session, user_for_token
from avatarv.serve.errors import ApiError


def server_of(request: Request):
    return request.app.state.server


def input_message(err: InputError) -> str:
    """An ``InputError``'s message without the server-side path it names."""
    text = str(err)
    return text[len(err.path) + 2:] if err.path and text.startswith(err.path + ": ") else text



def current_user(request: Request) -> User:
    """The caller, from ``Authorization: Bearer <token>`` or the session cookie; 401 otherwise; rate-limited."""
    server = request.app.state.server
    base = server.config.limits
    header = request.headers.get("authorization")
    session = request.cookies.get(SESSION_COOKIE)
    user = None
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token:
            user = user_for_token(server.store, token.strip(), base)
        problem = "invalid token"
    elif session:
        user = user_for_session(server.store, session, base)
        problem = "session expired or unknown: log in again"
    else:
        raise ApiError(401, "not logged in: send 'Authorization: Bearer <token>' or log in")
    if user is None:
        client = request.client.host if request.client else "?"
        server.limiter.take(f"ip:{client}", server.config.login_per_minute, 10, "failed logins")
        raise ApiError(401, problem)
    server.limiter.take(user.id, user.limits.requests_per_minute, user.limits.burst)
    return user


def admin_user(request: Request) -> User:
    user = current_user(request)
    if not user.is_admin:
        raise ApiError(403, "this needs an admin token")
    return user

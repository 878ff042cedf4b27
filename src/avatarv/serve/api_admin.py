"""Admin: users (token shown once), the human review queue (held jobs), moderation decisions, the audit log,
and the watermark → job look-up (who made this video?)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from avatarv.serve.api_jobs import public_job
from avatarv.serve.auth import User, create_user
from avatarv.serve.deps import admin_user, server_of
from avatarv.serve.errors import ApiError, not_found

router = APIRouter(prefix="/admin", tags=["admin"])


class NewUser(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: str = "user"
    limits: dict = Field(default_factory=dict)


class Review(BaseModel):
    approve: bool
    note: str = Field("", max_length=500)


@router.post("/users", status_code=201)
def add_user(body: NewUser, request: Request, admin: User = Depends(admin_user)):
    """Create a user; the response holds the API token, shown this once (only its hash is stored)."""
    row, token = create_user(server_of(request).store, body.name, body.role, body.limits, by=admin.id)
    return {**row, "token": token}


@router.get("/users")
def users(request: Request, admin: User = Depends(admin_user)):
    return server_of(request).store.all("SELECT id, name, role, limits, created, disabled FROM users ORDER BY created")


@router.post("/users/{user_id}/disable")
def disable(user_id: str, request: Request, admin: User = Depends(admin_user)):
    store = server_of(request).store
    if store.run("UPDATE users SET disabled = 1 WHERE id = ?", user_id) == 0:
        raise not_found("user", user_id)
    store.run("DELETE FROM sessions WHERE user_id = ?", user_id)
    store.audit(admin.id, "user.disable", user_id)
    return {"disabled": user_id}


@router.get("/review")
def review_queue(request: Request, admin: User = Depends(admin_user)):
    """Jobs held by moderation, oldest first, with the reasons they were held."""
    server = server_of(request)
    held = server.store.all("SELECT * FROM jobs WHERE state = 'held' ORDER BY created")
    out = []
    for job in held:
        reasons = [r for m in server.store.all("SELECT reasons FROM moderation WHERE subject_id = ? AND action = "
                                               "'review'", job["id"]) for r in m["reasons"]]
        out.append({**public_job(server, job), "user_id": job["user_id"], "reasons": reasons})
    return out


@router.post("/review/{job_id}")
def review(job_id: str, body: Review, request: Request, admin: User = Depends(admin_user)):
    """Approve (the job is queued) or reject a held job; the decision is logged with the reviewer."""
    server = server_of(request)
    with server.store.transaction():
        job = server.store.one("SELECT * FROM jobs WHERE id = ?", job_id)
        if job is None:
            raise not_found("job", job_id)
        if job["state"] != "held":
            raise ApiError(409, f"job {job_id} is {job['state']}, not held for review")
        state = "queued" if body.approve else "rejected"
        server.store.run("UPDATE jobs SET state = ?, error = ? WHERE id = ?", state,
                         None if body.approve else f"rejected by a moderator: {body.note or 'no reason given'}", job_id)
        server.store.run("INSERT INTO moderation (at, user_id, subject, subject_id, kind, action, reasons, reviewer) "
                         "VALUES (strftime('%s','now'), ?, 'job', ?, 'review', ?, ?, ?)", job["user_id"], job_id,
                         "allow" if body.approve else "refuse", [body.note] if body.note else [], admin.id)
    server.store.audit(admin.id, "review.approve" if body.approve else "review.reject", job_id, note=body.note)
    server.scheduler.wake()
    return {"id": job_id, "state": state}


@router.get("/moderation")
def moderation(request: Request, limit: int = 100, admin: User = Depends(admin_user)):
    return server_of(request).store.all("SELECT * FROM moderation ORDER BY id DESC LIMIT ?", min(limit, 1000))


@router.get("/audit")
def audit(request: Request, limit: int = 100, admin: User = Depends(admin_user)):
    return server_of(request).store.all("SELECT * FROM audit ORDER BY id DESC LIMIT ?", min(limit, 1000))


@router.get("/watermarks/{payload}")
def watermark(payload: str, request: Request, admin: User = Depends(admin_user)):
    """The job a detected watermark payload (16 hex digits, ``avatarv watermark detect``) belongs to."""
    store = server_of(request).store
    row = store.one("SELECT id, user_id, avatar_id, created, finished FROM jobs WHERE watermark = ?", payload.lower())
    if row is not None:
        return {**row, "deleted": False}
    record = store.one("SELECT subject, user_id, at, detail FROM audit WHERE action = 'job.create' AND "
                       "json_extract(detail, '$.watermark') = ?", payload.lower())
    if record is None:
        raise not_found("job with watermark", payload)
    return {"id": record["subject"], "user_id": record["user_id"], "avatar_id": record["detail"].get("avatar"),
            "created": record["at"], "deleted": True}

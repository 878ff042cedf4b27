"""Jobs: make a video of a verified avatar saying an audio file or a text (+ a voice sample); progress as
server-sent events; the growing fMP4 while it runs (``/live``); the finished, watermarked, signed video
(``/video``) only once it is finished; its provenance; delete."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, StreamingResponse

from avatarv.errors import InputError
from avatarv.serve.api_avatars import owned_avatar
from avatarv.serve.auth import User
from avatarv.serve.deps import current_user, input_message, server_of
from avatarv.serve.errors import ApiError, not_found
from avatarv.serve.files import commit, read_json, receive
from avatarv.serve.moderation import Decision
from avatarv.serve.scheduler import ACTIVE, OPEN, TERMINAL

router = APIRouter(tags=["jobs"])
MAX_TEXT = 2000
WORDS_PER_SECOND = 2.5  # speech-length estimate of a text, for the daily limit before it is spoken


def owned_job(server, user: User, job_id: str) -> dict:
    row = server.store.one("SELECT * FROM jobs WHERE id = ? AND user_id = ?", job_id, user.id)
    if row is None:
        raise not_found("job", job_id)
    return row


def progress_of(server, job: dict) -> dict | None:
    if job["state"] != "running":
        return None
    work = server.data.job_dir(job["user_id"], job["id"]) / "work" / f"attempt-{job['attempts']}"
    return read_json(work / "progress.json")


def public_job(server, job: dict) -> dict:
    out = {k: job[k] for k in ("id", "avatar_id", "state", "seconds", "attempts", "error", "created", "started",
                               "finished")}
    out["params"] = {k: v for k, v in job["params"].items() if k in ("text", "prompt", "seconds", "steps", "seed")}
    out["progress"] = progress_of(server, job)
    out["watermark"] = job["watermark"] if job["state"] == "finished" else None
    if job["state"] == "held":
        out["note"] = "held for review by a moderator"
    return out


def _seconds_of(path) -> float:
    from avatarv.media import read_audio

    try:
        speech = read_audio(path)
    except InputError as err:
        raise ApiError(422, f"audio: {input_message(err)}") from None
    if speech.size == 0:
        raise ApiError(422, "audio: no samples")
    return len(speech) / 16000.0


@router.post("/jobs", status_code=202)
def create_job(request: Request, avatar_id: str = Form(...), audio: UploadFile | None = File(None),
               text: str | None = Form(None), voice: UploadFile | None = File(None), prompt: str = Form(""),
               seconds: float | None = Form(None, gt=0), steps: int | None = Form(None, ge=1),
               seed: int = Form(0), user: User = Depends(current_user)):
    """Queue a video: ``avatar_id`` and exactly one of ``audio`` (a speech file) or ``text`` (+ ``voice``)."""
    server, cfg = server_of(request), server_of(request).config
    avatar = owned_avatar(server, user, avatar_id)
    if avatar["state"] != "verified":
        raise ApiError(409, f"avatar {avatar_id} has no verified consent: record the challenge phrase first")
    text = (text or "").strip() or None
    if (audio is None) == (text is None):
        raise ApiError(422, "give exactly one of audio (a speech file) or text")
    if text is not None and len(text) > MAX_TEXT:
        raise ApiError(422, f"text: {len(text)} characters, at most {MAX_TEXT}")
    if steps is not None and steps > cfg.max_steps:
        raise ApiError(422, f"steps: at most {cfg.max_steps}")
    if len(prompt) > MAX_TEXT:
        raise ApiError(422, f"prompt: at most {MAX_TEXT} characters")
    _admit(server, user, 0.0)  # cheap refusals before reading any upload
    job_id = secrets.token_hex(8)  # 64 random bits: also the watermark payload (payload_for_job keeps it)
    decision = Decision()
    for kind, value in (("prompt", prompt), ("speech_text", text)):
        if value:
            d = server.moderator.check_text(value, kind)
            server.moderate(user, d, "job", job_id, kind)
            decision = decision.combine(d)
    job_dir = server.data.job_dir(user.id, job_id)
    params = {"prompt": prompt, "seed": seed, "steps": steps, "seconds": seconds}
    try:
        for kind, upload in (("audio", audio), ("voice", voice)):
            if upload is None:
                continue
            tmp = receive(upload.file, server.data.tmp, user.limits.upload_bytes, kind)
            try:
                length = _seconds_of(tmp)
                d = server.moderator.check_upload(tmp, kind)
                server.moderate(user, d, "job", job_id, kind)
                decision = decision.combine(d)
                params[kind] = server.data.rel(commit(tmp, job_dir / f"{kind}.input"))
                if kind == "audio":
                    params["audio_seconds"] = length
            finally:
                tmp.unlink(missing_ok=True)
        if text is not None:
            params["text"] = text
        length = params.get("audio_seconds") or len(text.split()) / WORDS_PER_SECOND
        length = min(length, seconds or length)
        if length > cfg.max_seconds:
            raise ApiError(422, f"speech of {length:.0f} s: at most {cfg.max_seconds:g} s per job")
        state = "held" if decision.action == "review" else "queued"
        from avatarv.provenance.watermark import payload_for_job

        with server.store.transaction():
            _admit(server, user, length)
            server.store.run("INSERT INTO jobs (id, user_id, avatar_id, state, params, seconds, watermark, created) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", job_id, user.id, avatar_id, state, params, length,
                             payload_for_job(job_id).hex(), time.time())
    except BaseException:
        server.data.remove_tree(job_dir)
        raise
    server.store.audit(user.id, "job.create", job_id, avatar=avatar_id, state=state, reasons=decision.reasons,
                       watermark=payload_for_job(job_id).hex())  # outlives the job: who made a found video
    server.scheduler.wake()
    return public_job(server, owned_job(server, user, job_id))


def _admit(server, user: User, seconds: float) -> None:
    """The user's limits and the queue's bound: 429 with Retry-After when over."""
    limits, store = user.limits, server.store
    open_jobs = store.one(f"SELECT COUNT(*) AS n FROM jobs WHERE user_id = ? AND state IN {OPEN}", user.id)["n"]
    if open_jobs >= limits.concurrent_jobs:
        raise ApiError(429, f"you have {open_jobs} unfinished jobs (at most {limits.concurrent_jobs} at a time)",
                       retry_after=server.scheduler.retry_after())
    now = time.time()
    rows = store.all("SELECT created, seconds FROM jobs WHERE user_id = ? AND created > ? AND state NOT IN "
                     "('failed', 'rejected') ORDER BY created", user.id, now - 86400)
    used = sum(r["seconds"] for r in rows)
    if seconds and used + seconds > limits.output_minutes_per_day * 60:
        wait = (rows[0]["created"] + 86400 - now) if rows else 86400
        raise ApiError(429, f"daily limit: {used / 60:.1f} of {limits.output_minutes_per_day:g} minutes of video "
                            f"used in the last 24 h, this job needs {seconds / 60:.1f}", retry_after=wait)
    queued = server.scheduler.queue_length()
    if queued >= server.config.queue_size:
        raise ApiError(429, f"the job queue is full ({queued} jobs): try again later",
                       retry_after=server.scheduler.retry_after())


@router.get("/jobs")
def list_jobs(request: Request, user: User = Depends(current_user)):
    server = server_of(request)
    return [public_job(server, j) for j in
            server.store.all("SELECT * FROM jobs WHERE user_id = ? ORDER BY created DESC LIMIT 200", user.id)]


@router.get("/jobs/{job_id}")
def get_job(job_id: str, request: Request, user: User = Depends(current_user)):
    server = server_of(request)
    return public_job(server, owned_job(server, user, job_id))


@router.get("/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request, user: User = Depends(current_user)):
    """Server-sent events: the job (state, progress) each time it changes, until it ends."""
    server = server_of(request)
    owned_job(server, user, job_id)

    async def stream():
        last = None
        while not await request.is_disconnected():
            row = server.store.one("SELECT * FROM jobs WHERE id = ? AND user_id = ?", job_id, user.id)
            if row is None:
                yield "event: deleted\ndata: {}\n\n"
                return
            event = json.dumps(public_job(server, row), default=float)
            if event != last:
                yield f"data: {event}\n\n"
                last = event
            if row["state"] in TERMINAL:
                yield "event: end\ndata: {}\n\n"
                return
            await asyncio.sleep(0.5)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/jobs/{job_id}/live")
def live_video(job_id: str, request: Request, user: User = Depends(current_user)):
    """The fMP4 as generated so far (plays up to its last chunk), only while the job runs. Not watermarked
    yet: the watermark needs the whole video; the download (``/video``) is."""
    server = server_of(request)
    job = owned_job(server, user, job_id)
    if job["state"] == "finished":
        raise ApiError(409, f"job {job_id} is finished: download /api/jobs/{job_id}/video")
    if job["state"] != "running":
        raise ApiError(409, f"job {job_id} is {job['state']}: no live video")
    live = server.data.job_dir(user.id, job_id) / "work" / f"attempt-{job['attempts']}" / "live.mp4"
    try:
        handle = open(live, "rb")  # opened now: a rename or delete later does not cut this response
    except FileNotFoundError:
        raise ApiError(409, f"job {job_id}: the first chunk is not written yet") from None
    data = handle.read()
    handle.close()
    from fastapi import Response

    return Response(data, media_type="video/mp4", headers={"Cache-Control": "no-store"})


@router.get("/jobs/{job_id}/video")
def video(job_id: str, request: Request, user: User = Depends(current_user)):
    """The finished video (watermarked, C2PA-signed); 409 while the job is not finished."""
    server = server_of(request)
    job = owned_job(server, user, job_id)
    if job["state"] != "finished" or not job["output"]:
        p = progress_of(server, job)
        where = f" ({p.get('step', 0)}/{p.get('total', 0)} steps)" if p else ""
        raise ApiError(409, f"job {job_id} is {job['state']}{where}: the video is served when it is finished")
    return FileResponse(server.data.path(job["output"]), media_type="video/mp4", filename=f"avatarv-{job_id}.mp4")


@router.get("/jobs/{job_id}/provenance")
def provenance(job_id: str, request: Request, user: User = Depends(current_user)):
    """The watermark payload and the C2PA manifest as read back from the served file."""
    from avatarv.provenance.c2pa import read_manifest

    server = server_of(request)
    job = owned_job(server, user, job_id)
    if job["state"] != "finished":
        raise ApiError(409, f"job {job_id} is {job['state']}: provenance comes with the finished video")
    manifest = read_manifest(server.data.path(job["output"])) or {}
    return {"watermark": job["watermark"], "c2pa": {"validation_state": manifest.get("validation_state"),
                                                    "ai_generated": manifest.get("ai_generated"),
                                                    "title": manifest.get("title")}}


@router.delete("/jobs/{job_id}")
def delete_job(job_id: str, request: Request, user: User = Depends(current_user)):
    """Delete a job and its files (a running one is abandoned: its result is never published)."""
    server = server_of(request)
    job = owned_job(server, user, job_id)
    server.store.run("DELETE FROM jobs WHERE id = ?", job_id)
    server.data.remove_tree(server.data.job_dir(user.id, job_id))
    server.store.audit(user.id, "job.delete", job_id, state=job["state"])
    return {"deleted": job_id, "was": job["state"]}


__all__ = ["ACTIVE", "router"]

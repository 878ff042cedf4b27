"""Avatars with consent: upload a reference video (media + face check), get a challenge phrase, upload the
consent video saying it (``consent.verify_consent`` decides), revoke (deletes the avatar's files and rows;
the audit log keeps a record). Generation needs an avatar whose consent is verified (``api_jobs``)."""

from __future__ import annotations

import secrets
import time

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse

from avatarv.errors import InputError
from avatarv.serve.auth import User
from avatarv.serve.deps import current_user, input_message, server_of
from avatarv.serve.errors import ApiError, not_found
from avatarv.serve.files import commit, receive, safe_label

router = APIRouter(tags=["avatars"])
SUFFIX = {"mov,mp4,m4a,3gp,3g2,mj2": ".mp4", "matroska,webm": ".mkv", "avi": ".avi"}


def owned_avatar(server, user: User, avatar_id: str) -> dict:
    row = server.store.one("SELECT * FROM avatars WHERE id = ? AND user_id = ?", avatar_id, user.id)
    if row is None:
        raise not_found("avatar", avatar_id)
    return row


def _public(server, avatar: dict) -> dict:
    consent = server.store.one("SELECT id, state, decision, decided FROM consents WHERE avatar_id = ? "
                               "AND state != 'issued' ORDER BY created DESC LIMIT 1", avatar["id"])
    decision = (consent or {}).get("decision") or {}
    return {"id": avatar["id"], "name": avatar["name"], "state": avatar["state"], "created": avatar["created"],
            "reference": avatar["reference_info"],
            "consent": None if consent is None else {"id": consent["id"], "state": consent["state"],
                                                     "reasons": decision.get("reasons", []),
                                                     "scores": decision.get("scores", {}), "decided": consent["decided"]}}


def check_reference(server, path) -> dict:
    """Media validation and the face check of ``consent.verify_consent`` on the reference; 422 otherwise."""
    from avatarv.serve.consent import load_clip, track_face

    policy = server.consent_policy
    try:
        video = load_clip(path, policy, policy.reference_fps, policy.max_reference_s, require_audio=False)
    except InputError as err:
        raise ApiError(422, f"reference: {input_message(err)}") from None
    track = track_face(video.frames, 1)
    if track.face_fraction < policy.min_face_fraction:
        raise ApiError(422, f"reference: no face found ({len(track.detected)} of {track.looked} frames looked at "
                            f"have one, {policy.min_face_fraction:.0%} needed): film one person facing the camera")
    from avatarv.media import probe

    info = probe(path)
    return {"format": info.format, "width": info.width, "height": info.height, "seconds": info.duration,
            "face_fraction": track.face_fraction}


@router.post("/avatars", status_code=201)
def create_avatar(request: Request, reference: UploadFile = File(..., description="Reference video of the person"),
                  name: str = Form("", max_length=80), user: User = Depends(current_user)):
    """Upload a reference video; the avatar waits for consent (``/challenge`` then ``/consent``)."""
    server = server_of(request)
    tmp = receive(reference.file, server.data.tmp, user.limits.upload_bytes, "reference")
    try:
        avatar_id = secrets.token_hex(8)
        server.moderate(user, server.moderator.check_upload(tmp, "reference"), "avatar", avatar_id, "reference")
        info = check_reference(server, tmp)
        info["upload_name"] = safe_label(reference.filename)
        dest = server.data.avatar_dir(user.id, avatar_id) / f"reference{SUFFIX.get(info['format'], '.video')}"
        commit(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    server.store.run("INSERT INTO avatars (id, user_id, name, state, reference, reference_info, created) "
                     "VALUES (?, ?, ?, 'pending_consent', ?, ?, ?)", avatar_id, user.id,
                     name.strip() or info["upload_name"], server.data.rel(dest), info, time.time())
    server.store.audit(user.id, "avatar.create", avatar_id)
    return _public(server, owned_avatar(server, user, avatar_id))


@router.get("/avatars")
def list_avatars(request: Request, user: User = Depends(current_user)):
    server = server_of(request)
    return [_public(server, a) for a in
            server.store.all("SELECT * FROM avatars WHERE user_id = ? ORDER BY created DESC", user.id)]


@router.get("/avatars/{avatar_id}")
def get_avatar(avatar_id: str, request: Request, user: User = Depends(current_user)):
    server = server_of(request)
    return _public(server, owned_avatar(server, user, avatar_id))


@router.post("/avatars/{avatar_id}/challenge", status_code=201)
def challenge(avatar_id: str, request: Request, user: User = Depends(current_user)):
    """A fresh phrase to say on camera (random words, expiring); earlier unused phrases stop counting."""
    from avatarv.serve.challenge import issue_challenge

    server = server_of(request)
    avatar = owned_avatar(server, user, avatar_id)
    if avatar["state"] == "verified":
        raise ApiError(409, f"avatar {avatar_id} already has verified consent")
    issued = issue_challenge(None, ttl_s=server.config.challenge_ttl_s)
    with server.store.transaction():
        server.store.run("UPDATE consents SET state = 'superseded' WHERE avatar_id = ? AND state = 'issued'", avatar_id)
        server.store.run("INSERT INTO consents (id, avatar_id, user_id, challenge, state, created) "
                         "VALUES (?, ?, ?, ?, 'issued', ?)", issued.id, avatar_id, user.id, issued.to_dict(),
                         time.time())
    server.store.audit(user.id, "consent.challenge", avatar_id, challenge=issued.id)
    return {"challenge_id": issued.id, "phrase": issued.phrase, "expires_at": issued.expires_at,
            "instructions": "Record yourself facing the camera saying the phrase aloud, then upload the clip."}


@router.post("/avatars/{avatar_id}/consent")
def consent(avatar_id: str, request: Request, video: UploadFile = File(..., description="You, saying the phrase"),
            user: User = Depends(current_user)):
    """Upload the consent video for the latest challenge: the decision, its reasons and scores. A phrase is
    used once, whatever the outcome; a refused clip is not kept (the decision is)."""
    from avatarv.serve.challenge import Challenge

    server = server_of(request)
    received = time.time()
    avatar = owned_avatar(server, user, avatar_id)
    if avatar["state"] == "verified":
        raise ApiError(409, f"avatar {avatar_id} already has verified consent")
    with server.store.transaction():
        row = server.store.one("SELECT * FROM consents WHERE avatar_id = ? AND state = 'issued' "
                               "ORDER BY created DESC LIMIT 1", avatar_id)
        if row is None:
            raise ApiError(409, f"avatar {avatar_id}: no open challenge phrase (POST /api/avatars/{avatar_id}/"
                                "challenge first)")
        server.store.run("UPDATE consents SET state = 'checking' WHERE id = ?", row["id"])
    tmp = None
    try:
        tmp = receive(video.file, server.data.tmp, user.limits.upload_bytes, "consent video")
        server.moderate(user, server.moderator.check_upload(tmp, "consent"), "avatar", avatar_id, "consent")
        decision = server.verify_consent(server.data.path(avatar["reference"]), tmp,
                                         Challenge.from_dict(row["challenge"]), server.consent_policy, now=received)
        record = decision.to_dict()
        record.update(reference="reference", consent="consent video")  # no server paths in the record
        if decision.verified:
            dest = commit(tmp, server.data.avatar_dir(user.id, avatar_id) / f"consent-{row['id']}.mp4")
            with server.store.transaction():
                server.store.run("UPDATE consents SET state = 'verified', decision = ?, decided = ?, consent_file = ? "
                                 "WHERE id = ?", record, time.time(), server.data.rel(dest), row["id"])
                server.store.run("UPDATE avatars SET state = 'verified' WHERE id = ?", avatar_id)
        else:
            server.store.run("UPDATE consents SET state = 'refused', decision = ?, decided = ? WHERE id = ?",
                             record, time.time(), row["id"])
    except BaseException:
        server.store.run("UPDATE consents SET state = 'refused', decided = ? WHERE id = ? AND state = 'checking'",
                         time.time(), row["id"])
        raise
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    server.store.audit(user.id, "consent.verify" if decision.verified else "consent.refuse", avatar_id,
                       reasons=decision.reasons)
    body = {"verified": decision.verified, "reasons": decision.reasons, "scores": record["scores"],
            "avatar": _public(server, owned_avatar(server, user, avatar_id))}
    if not decision.verified:
        return JSONResponse({"detail": "consent not verified: " + "; ".join(decision.reasons), **body},
                            status_code=422)
    return body


def delete_avatar_data(server, user: User, avatar_id: str, action: str) -> dict:
    """Rows and files of the avatar and of its jobs go; the audit log records what went."""
    owned_avatar(server, user, avatar_id)
    with server.store.transaction():
        jobs = server.store.all("SELECT id FROM jobs WHERE avatar_id = ?", avatar_id)
        server.store.run("DELETE FROM jobs WHERE avatar_id = ?", avatar_id)
        consents = server.store.run("DELETE FROM consents WHERE avatar_id = ?", avatar_id)
        server.store.run("DELETE FROM avatars WHERE id = ?", avatar_id)
    for job in jobs:
        server.data.remove_tree(server.data.job_dir(user.id, job["id"]))
    server.data.remove_tree(server.data.avatar_dir(user.id, avatar_id))
    server.store.audit(user.id, action, avatar_id, jobs_deleted=[j["id"] for j in jobs], consents_deleted=consents)
    return {"deleted": avatar_id, "jobs_deleted": len(jobs)}


@router.delete("/avatars/{avatar_id}/consent")
def revoke_consent(avatar_id: str, request: Request, user: User = Depends(current_user)):
    """Revoke consent: the avatar, its reference and consent videos, its jobs and their videos are deleted."""
    return delete_avatar_data(server_of(request), user, avatar_id, "consent.revoke")


@router.delete("/avatars/{avatar_id}")
def delete_avatar(avatar_id: str, request: Request, user: User = Depends(current_user)):
    """Same as revoking consent."""
    return delete_avatar_data(server_of(request), user, avatar_id, "avatar.delete")

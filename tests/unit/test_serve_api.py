"""The server's API (FastAPI TestClient): access control, uploads, consent, moderation, limits, jobs.

Jobs run ``serve.jobs.run_job`` (the real tiny pipeline, watermark and C2PA) in a thread of this process, or
not at all (``HeldExecutor``) where a test only needs a job to stay queued or running. Worker processes, a
SIGKILLed server and Ray are in ``tests/integration/test_serve_*.py``.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from avatarv.resources import example  # noqa: E402
from avatarv.serve.app import create_app  # noqa: E402
from avatarv.serve.auth import create_user  # noqa: E402
from avatarv.serve.config import Limits, ServerConfig  # noqa: E402
from avatarv.serve.consent import ConsentDecision  # noqa: E402
from avatarv.serve.jobs import run_job  # noqa: E402
from avatarv.serve.moderation import Decision, PolicyModerator  # noqa: E402

REF = example("ref.mp4")


def passing_consent(reference, consent, challenge, policy, now=None):
    """A consent verifier that accepts (the real checks are tested in test_consent_challenge.py)."""
    assert Path(reference).is_file() and Path(consent).is_file() and not challenge.expired(now)
    return ConsentDecision(True, [], {"identity_distance": 0.1, "phrase_wer": 0.0})


def refusing_consent(reference, consent, challenge, policy, now=None):
    return ConsentDecision(False, ["phrase: the challenge phrase was not said (word error rate 1.00 > 0.40)"],
                           {"phrase_wer": 1.0})


class ThreadExecutor:
    """Runs jobs in a thread of the test process (torch is imported once)."""

    slots = 1

    def __init__(self):
        self._pool = cf.ThreadPoolExecutor(1)

    def submit(self, spec):
        return self._pool.submit(run_job, spec.to_dict())

    def shutdown(self):
        self._pool.shutdown(wait=False, cancel_futures=True)


class HeldExecutor:
    """Accepts jobs and never finishes them (until ``release``): queued and running states stay put."""

    def __init__(self, slots: int = 1):
        self.slots, self.futures = slots, []

    def submit(self, spec):
        f = cf.Future()
        self.futures.append((spec, f))
        return f

    def shutdown(self):
        pass


def speech_wav(path: Path, seconds: float = 1.0) -> Path:
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return path


class Harness:
    def __init__(self, tmp: Path, executor=None, consent=passing_consent, moderator=None, **config):
        config.setdefault("preset", "tiny")
        config.setdefault("steps", 1)
        self.config = ServerConfig(data=tmp / "data", **config)
        self.app = create_app(self.config, executor=executor or HeldExecutor(), verify_consent=consent,
                              moderator=moderator)
        self.server = self.app.state.server
        self.client = TestClient(self.app)
        self.client.__enter__()
        self.tmp = tmp
        self.speech = speech_wav(tmp / "speech.wav")

    def user(self, name: str, role: str = "user", **limits) -> dict:
        _, token = create_user(self.server.store, name, role, limits)
        return {"Authorization": f"Bearer {token}"}

    def avatar(self, h: dict, verified: bool = True) -> str:
        with open(REF, "rb") as f:
            r = self.client.post("/api/avatars", headers=h, files={"reference": ("ref.mp4", f)}, data={"name": "me"})
        assert r.status_code == 201, r.text
        avatar_id = r.json()["id"]
        if verified:
            assert self.client.post(f"/api/avatars/{avatar_id}/challenge", headers=h).status_code == 201
            with open(REF, "rb") as f:
                r = self.client.post(f"/api/avatars/{avatar_id}/consent", headers=h, files={"video": ("c.mp4", f)})
            assert r.status_code == 200 and r.json()["verified"], r.text
        return avatar_id

    def job(self, h: dict, avatar_id: str, **data):
        files = {}
        if "text" not in data:
            files["audio"] = ("speech.wav", open(self.speech, "rb"))
        try:
            return self.client.post("/api/jobs", headers=h, data={"avatar_id": avatar_id, **data}, files=files)
        finally:
            for _, f in files.values():
                f.close()

    def wait(self, h: dict, job_id: str, states=("finished", "failed"), timeout: float = 120) -> dict:
        end = time.time() + timeout
        while time.time() < end:
            job = self.client.get(f"/api/jobs/{job_id}", headers=h).json()
            if job["state"] in states:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")

    def files(self) -> list[str]:
        root = self.config.data
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def close(self):
        self.client.__exit__(None, None, None)


@pytest.fixture
def harness(tmp_path):
    made = []

    def make(**kwargs) -> Harness:
        h = Harness(tmp_path / f"h{len(made)}", **kwargs)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def user_files(h: Harness) -> list[str]:
    return [f for f in h.files() if f.startswith("users/")]


# --- access ---------------------------------------------------------------------------------------------------------


def test_no_token_wrong_token_and_admin_only(harness):
    h = harness()
    alice = h.user("alice")
    for headers, status, words in (({}, 401, "not logged in"), ({"Authorization": "Bearer av_00_xx"}, 401, "invalid"),
                                   ({"Authorization": alice["Authorization"] + "x"}, 401, "invalid"),
                                   ({"Authorization": "Basic abc"}, 401, "invalid")):
        r = h.client.get("/api/avatars", headers=headers)
        assert r.status_code == status and words in r.json()["detail"], r.text
    assert h.client.get("/api/avatars", headers=alice).json() == []
    r = h.client.post("/api/admin/users", headers=alice, json={"name": "eve"})
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    assert h.client.get("/openapi.json").json()["info"]["title"] == "avatarv"


def test_admin_creates_user_token_shown_once_stored_hashed(harness):
    h = harness()
    admin = h.user("root", "admin")
    r = h.client.post("/api/admin/users", headers=admin, json={"name": "bob", "limits": {"concurrent_jobs": 1}})
    assert r.status_code == 201
    token = r.json()["token"]
    assert h.client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()["limits"]["concurrent_jobs"] == 1
    assert all("token" not in u for u in h.client.get("/api/admin/users", headers=admin).json())
    db = b"".join(p.read_bytes() for p in h.config.data.glob("avatarv.sqlite3*"))
    assert token.encode() not in db and token.split("_")[-1].encode() not in db
    assert h.client.post("/api/admin/users", headers=admin, json={"name": "bob"}).status_code == 409


def test_session_login_cookie_and_logout(harness):
    h = harness()
    token = h.user("carol")["Authorization"].split()[1]
    assert h.client.post("/api/login", json={"token": token + "x"}).status_code == 401
    r = h.client.post("/api/login", json={"token": token})
    assert r.status_code == 200 and "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    assert h.client.get("/api/me").json()["name"] == "carol"
    h.client.post("/api/logout")
    assert h.client.get("/api/me").status_code == 401
    assert h.client.get("/").status_code == 200 and "avatarv" in h.client.get("/").text
    assert h.client.get("/static/app.js").status_code == 200
    assert h.client.get("/static/..%2f..%2fserve%2fapp.py").status_code == 404


def test_another_users_ids_are_404(harness):
    h = harness()
    alice, mallory = h.user("alice"), h.user("mallory")
    avatar = h.avatar(alice)
    job = h.job(alice, avatar).json()["id"]
    for method, path in (("GET", f"/api/avatars/{avatar}"), ("DELETE", f"/api/avatars/{avatar}"),
                         ("POST", f"/api/avatars/{avatar}/challenge"), ("DELETE", f"/api/avatars/{avatar}/consent"),
                         ("GET", f"/api/jobs/{job}"), ("GET", f"/api/jobs/{job}/video"),
                         ("GET", f"/api/jobs/{job}/live"), ("GET", f"/api/jobs/{job}/events"),
                         ("GET", f"/api/jobs/{job}/provenance"), ("DELETE", f"/api/jobs/{job}")):
        r = h.client.request(method, path, headers=mallory)
        assert r.status_code == 404 and r.json()["detail"].startswith("no "), (method, path, r.text)
    r = h.job(mallory, avatar)
    assert r.status_code == 404
    assert h.client.get("/api/jobs", headers=mallory).json() == []
    assert h.client.get(f"/api/jobs/{job}", headers=alice).status_code == 200


# --- uploads --------------------------------------------------------------------------------------------------------


def test_upload_names_cannot_escape(harness):
    h = harness()
    alice = h.user("alice")
    with open(REF, "rb") as f:
        r = h.client.post("/api/avatars", headers=alice, files={"reference": ("../../x", f)})
    assert r.status_code == 201
    assert r.json()["reference"]["upload_name"] == "x" and r.json()["name"] == "x"
    assert not (h.config.data.parent / "x").exists() and not (h.tmp / "x").exists()
    assert [f.split("/")[-1] for f in user_files(h)] == ["reference.mp4"]


def test_upload_over_the_limit_is_413_and_nothing_is_kept(harness):
    h = harness()
    small = h.user("small", upload_bytes=50_000)
    with open(REF, "rb") as f:
        r = h.client.post("/api/avatars", headers=small, files={"reference": ("ref.mp4", f)})
    assert r.status_code == 413 and "0.05 MB" in r.json()["detail"]
    assert user_files(h) == [] and list((h.config.data / "tmp").iterdir()) == []
    big = Harness(h.tmp / "big", limits=Limits(upload_bytes=10_000))
    try:
        with open(REF, "rb") as f:  # over the server-wide cap: refused before the body is read
            r = big.client.post("/api/avatars", headers=big.user("u"), files={"reference": ("ref.mp4", f)})
        assert r.status_code == 413
    finally:
        big.close()


def test_non_media_and_faceless_references_are_refused(harness, tmp_path):
    from avatarv.media import write_mp4
    from avatarv.media.testing import indexed_frames

    h = harness()
    alice = h.user("alice")
    r = h.client.post("/api/avatars", headers=alice, files={"reference": ("ref.mp4", b"#!/bin/sh\necho hi\n" * 50)})
    assert r.status_code == 422 and r.json()["detail"].startswith("reference: ") and "\n" not in r.json()["detail"]
    assert str(h.config.data) not in r.json()["detail"]
    faceless = write_mp4(tmp_path / "wall.mp4", indexed_frames(25, 128, 128), 25)
    with open(faceless, "rb") as f:
        r = h.client.post("/api/avatars", headers=alice, files={"reference": ("wall.mp4", f)})
    assert r.status_code == 422 and "no face found" in r.json()["detail"]
    assert user_files(h) == [] and h.client.get("/api/avatars", headers=alice).json() == []


# --- consent --------------------------------------------------------------------------------------------------------


def test_consent_needs_a_challenge_and_a_refusal_keeps_no_clip(harness):
    h = harness(consent=refusing_consent)
    alice = h.user("alice")
    avatar = h.avatar(alice, verified=False)
    with open(REF, "rb") as f:
        r = h.client.post(f"/api/avatars/{avatar}/consent", headers=alice, files={"video": ("c.mp4", f)})
    assert r.status_code == 409 and "challenge" in r.json()["detail"]
    phrase = h.client.post(f"/api/avatars/{avatar}/challenge", headers=alice).json()["phrase"]
    assert len(phrase.split()) == 5
    with open(REF, "rb") as f:
        r = h.client.post(f"/api/avatars/{avatar}/consent", headers=alice, files={"video": ("c.mp4", f)})
    assert r.status_code == 422 and r.json()["detail"].startswith("consent not verified: phrase:")
    assert r.json()["scores"] == {"phrase_wer": 1.0} and r.json()["verified"] is False
    assert [f.split("/")[-1] for f in user_files(h)] == ["reference.mp4"]
    with open(REF, "rb") as f:  # the phrase was used: a second try needs a new one
        assert h.client.post(f"/api/avatars/{avatar}/consent", headers=alice,
                             files={"video": ("c.mp4", f)}).status_code == 409
    r = h.job(alice, avatar)
    assert r.status_code == 409 and "no verified consent" in r.json()["detail"]
    assert h.client.get(f"/api/avatars/{avatar}", headers=alice).json()["consent"]["state"] == "refused"


def test_revoked_consent_deletes_the_data_and_refuses_generation(harness):
    h = harness()
    alice = h.user("alice")
    avatar = h.avatar(alice)
    job = h.job(alice, avatar).json()["id"]
    assert len(user_files(h)) == 3  # reference, consent clip, the job's speech
    r = h.client.delete(f"/api/avatars/{avatar}/consent", headers=alice)
    assert r.status_code == 200 and r.json()["jobs_deleted"] == 1
    assert user_files(h) == []
    store = h.server.store
    assert store.one("SELECT COUNT(*) AS n FROM consents")["n"] == 0 and store.one("SELECT COUNT(*) AS n FROM jobs")["n"] == 0
    assert [a["action"] for a in store.all("SELECT action FROM audit WHERE subject = ?", avatar)][-1] == "consent.revoke"
    assert h.job(alice, avatar).status_code == 404
    assert h.client.get(f"/api/jobs/{job}", headers=alice).status_code == 404
    found = h.client.get(f"/api/admin/watermarks/{job}", headers=h.user("root", "admin")).json()
    assert found["deleted"] and found["user_id"] == h.client.get("/api/me", headers=alice).json()["id"]


# --- moderation -----------------------------------------------------------------------------------------------------


def test_moderation_refuses_holds_and_logs(harness, tmp_path):
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("# terms\nbank account number\nreview: election\n")
    flagged = []

    def classifier(text):
        flagged.append(text)
        return Decision("refuse", ["classifier: threatening"]) if "hurt" in text else None

    h = harness(moderator=PolicyModerator.from_file(blocklist, classifier=classifier))
    alice, admin = h.user("alice"), h.user("root", "admin")
    avatar = h.avatar(alice)
    r = h.job(alice, avatar, prompt="Tell them your Bank Account-number now")
    assert r.status_code == 422
    assert r.json()["detail"] == "refused by moderation: prompt: contains blocked term 'bank account number'"
    r = h.job(alice, avatar, prompt="I will hurt you")
    assert r.status_code == 422 and "classifier: threatening" in r.json()["detail"]
    assert [f.split("/")[-1] for f in user_files(h)] == ["consent-" + f.split("consent-")[-1] for f in user_files(h)
                                                        if "consent-" in f] + ["reference.mp4"]
    held = h.job(alice, avatar, prompt="about the election").json()
    assert held["state"] == "held"
    queue = h.client.get("/api/admin/review", headers=admin).json()
    assert [j["id"] for j in queue] == [held["id"]] and "election" in queue[0]["reasons"][0]
    assert h.client.post(f"/api/admin/review/{held['id']}", headers=alice, json={"approve": True}).status_code == 403
    r = h.client.post(f"/api/admin/review/{held['id']}", headers=admin, json={"approve": False, "note": "off topic"})
    assert r.json()["state"] == "rejected"
    assert h.client.get(f"/api/jobs/{held['id']}", headers=alice).json()["error"] == "rejected by a moderator: off topic"
    log = h.client.get("/api/admin/moderation", headers=admin).json()
    assert {m["action"] for m in log} >= {"refuse", "review", "allow"} and all(isinstance(m["reasons"], list) for m in log)
    assert flagged


# --- limits ---------------------------------------------------------------------------------------------------------


def test_limits_and_rate_limit_answer_429_with_retry_after(harness):
    h = harness(queue_size=2)
    one = h.user("one", concurrent_jobs=1)
    avatar = h.avatar(one)
    assert h.job(one, avatar).status_code == 202
    r = h.job(one, avatar)
    assert r.status_code == 429 and "at most 1 at a time" in r.json()["detail"] and int(r.headers["Retry-After"]) >= 1
    daily = h.user("daily", output_minutes_per_day=0.01)
    r = h.job(daily, h.avatar(daily))
    assert r.status_code == 429 and "daily limit" in r.json()["detail"] and int(r.headers["Retry-After"]) > 3600
    two = h.user("two")
    assert h.job(two, h.avatar(two)).status_code == 202
    r = h.job(two, h.avatar(two))  # queue: 2 jobs
    assert r.status_code == 429 and "queue is full" in r.json()["detail"] and "Retry-After" in r.headers
    assert not [f for f in user_files(h) if "jobs" in f and f.count("/") > 4 and "speech" in f]
    fast = h.user("fast", requests_per_minute=60, burst=3)
    codes = [h.client.get("/api/me", headers=fast).status_code for _ in range(4)]
    assert codes[:3] == [200] * 3 and codes[3] == 429
    r = h.client.get("/api/me", headers=fast)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"


def test_live_video_only_while_running_and_video_only_when_finished(harness):
    executor = HeldExecutor()
    h = harness(executor=executor)
    alice = h.user("alice")
    job = h.job(alice, h.avatar(alice)).json()["id"]
    end = time.time() + 10
    while not executor.futures and time.time() < end:
        time.sleep(0.05)
    spec, future = executor.futures[0]
    r = h.client.get(f"/api/jobs/{job}/live", headers=alice)
    assert r.status_code == 409 and "first chunk" in r.json()["detail"]
    (Path(spec.work_dir) / "live.mp4").write_bytes(REF.read_bytes())
    (Path(spec.work_dir) / "signed.mp4").write_bytes(REF.read_bytes()[:1000])  # a partial file: never served
    r = h.client.get(f"/api/jobs/{job}/live", headers=alice)
    assert r.status_code == 200 and r.content == REF.read_bytes() and r.headers["cache-control"] == "no-store"
    r = h.client.get(f"/api/jobs/{job}/video", headers=alice)
    assert r.status_code == 409 and "is running" in r.json()["detail"]
    r = h.client.delete(f"/api/jobs/{job}", headers=alice)  # deleted while running: the result is dropped
    future.set_result({"file": str(Path(spec.work_dir) / "signed.mp4"), "summary": {}, "watermark": spec.watermark})
    time.sleep(0.2)
    assert user_files(h) and not [f for f in user_files(h) if "/jobs/" in f]


# --- a real job -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_job_runs_the_pipeline_and_serves_a_marked_signed_video(harness, tmp_path):
    from avatarv.provenance.c2pa import read_manifest
    from avatarv.provenance.watermark import detect_file

    h = harness(executor=ThreadExecutor())
    alice, admin = h.user("alice"), h.user("root", "admin")
    job = h.job(alice, h.avatar(alice)).json()
    assert job["state"] == "queued" and job["watermark"] is None
    with h.client.stream("GET", f"/api/jobs/{job['id']}/events", headers=alice) as events:
        events = [json.loads(line[6:]) for line in events.iter_lines() if line.startswith("data: ")]
    states = [e["state"] for e in events if e]
    assert states[-1] == "finished" and "running" in states
    done = h.client.get(f"/api/jobs/{job['id']}", headers=alice).json()
    assert done["state"] == "finished" and done["attempts"] == 1 and done["watermark"] == job["id"]
    r = h.client.get(f"/api/jobs/{job['id']}/video", headers=alice)
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    out = tmp_path / "out.mp4"
    out.write_bytes(r.content)
    assert detect_file(out).hex == job["id"]
    manifest = read_manifest(out)
    assert manifest["ai_generated"] and manifest["validation_state"] == "Valid"
    assert h.client.get(f"/api/jobs/{job['id']}/provenance", headers=alice).json()["c2pa"]["ai_generated"]
    assert h.client.get(f"/api/admin/watermarks/{job['id']}", headers=admin).json()["id"] == job["id"]
    assert h.client.get(f"/api/jobs/{job['id']}/live", headers=alice).status_code == 409
    job_files = [f for f in user_files(h) if "/jobs/" in f]
    assert sorted(f.split("/")[-1] for f in job_files) == ["audio.input", "video.mp4"]  # no work files left
    con = sqlite3.connect(h.config.data / "avatarv.sqlite3")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT COUNT(*) FROM audit WHERE action = 'job.finish'").fetchone()[0] == 1


def test_world_jobs_sample_as_their_checkpoint_says(tmp_path):
    """A distilled checkpoint's sampling (pipeline.json: steps, sampler, guidance) reaches the server's jobs
    unless the request names the steps; a checkpoint without one gets the teacher's 24 overshoot steps."""
    import json

    from avatarv.diffusion import GuidanceScales
    from avatarv.serve.jobs import JobSpec, world_options

    student, teacher = tmp_path / "student", tmp_path / "teacher"
    for folder, meta in ((student, {"sampling": {"steps": 4, "sampler": "x0", "guidance": "ref=1.5,audio=2.5"}}),
                         (teacher, {})):
        folder.mkdir()
        (folder / "pipeline.json").write_text(json.dumps({"preset": "tiny", **meta}))
    base = dict(job_id="j", attempt=0, work_dir=str(tmp_path), reference="r.mp4", watermark="0" * 16, key_dir="k")
    o = world_options(JobSpec(**base, checkpoint=str(student)))
    assert (o.steps, o.sampler) == (4, "x0") and o.guidance == GuidanceScales.parse("ref=1.5,audio=2.5")
    o = world_options(JobSpec(**base, checkpoint=str(student), steps=2))
    assert (o.steps, o.sampler) == (2, "x0")  # the request's steps, the checkpoint's sampler
    o = world_options(JobSpec(**base, checkpoint=str(teacher)))
    assert (o.steps, o.sampler) == (24, "overshoot")
    o = world_options(JobSpec(**base, preset="tiny", steps=1))
    assert (o.steps, o.sampler) == (1, "overshoot")

"""The bounded job queue: jobs wait in the store (state ``queued``), a dispatcher thread hands them to the
executor as workers free up, and the finished file is published by the server, exactly once.

States: ``held`` (moderation: waiting for an admin) → ``queued`` → ``running`` → ``finished`` | ``failed``;
``rejected`` (by a reviewer). ``cancelled`` jobs are deleted with their files.

Crash safety. Claiming (queued → running, ``attempts`` + 1) is one transaction. A result is published only
if its job is still ``running`` with the same attempt: the signed file is renamed to ``video.mp4`` and the
row set ``finished`` in one transaction. At start (``recover``) a ``running`` job whose ``video.mp4`` exists
was published just before a crash and is marked finished; any other goes back to ``queued`` and re-runs
from the start (a fresh attempt folder). A worker lost mid-job re-queues the job, up to ``max_attempts``.
``video.mp4`` appears only by rename of a complete, signed file, so no partial file is ever served.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from pathlib import Path

from avatarv.errors import AvatarvError
from avatarv.serve.config import ServerConfig
from avatarv.serve.executors import Executor, WorkerLost
from avatarv.serve.files import DataDir
from avatarv.serve.jobs import JobSpec
from avatarv.serve.store import Store

log = logging.getLogger("avatarv.serve")
ACTIVE = ("queued", "running")
OPEN = ("held", "queued", "running")
TERMINAL = ("finished", "failed", "rejected")


class Scheduler:
    def __init__(self, store: Store, data: DataDir, config: ServerConfig, executor: Executor):
        self.store, self.data, self.config, self.executor = store, data, config, executor
        self._inflight: dict[str, int] = {}  # job id -> attempt
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def recover(self) -> dict:
        """Run once before the dispatcher starts: finish what was published, re-queue what was cut off."""
        finished = requeued = 0
        for job in self.store.all("SELECT * FROM jobs WHERE state = 'running'"):
            video = self.data.job_dir(job["user_id"], job["id"]) / "video.mp4"
            if video.is_file():
                self.store.run("UPDATE jobs SET state = 'finished', output = ?, finished = ? WHERE id = ?",
                               self.data.rel(video), time.time(), job["id"])
                self.store.audit(job["user_id"], "job.finish", job["id"], recovered=True)
                finished += 1
            else:
                self.store.run("UPDATE jobs SET state = 'queued' WHERE id = ?", job["id"])
                self.store.audit(job["user_id"], "job.requeue", job["id"], reason="server restarted mid-job",
                                 attempt=job["attempts"])
                requeued += 1
        for job in self.store.all("SELECT id, user_id FROM jobs WHERE state IN ('queued', 'held')"):
            self.data.remove_tree(self.data.job_dir(job["user_id"], job["id"]) / "work")
        return {"finished": finished, "requeued": requeued}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="avatarv-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.executor.shutdown()

    def wake(self) -> None:
        self._wake.set()

    # -- admission -------------------------------------------------------------------------------------------

    def queue_length(self) -> int:
        return self.store.one(f"SELECT COUNT(*) AS n FROM jobs WHERE state IN {ACTIVE}")["n"]

    def retry_after(self) -> float:
        """Seconds until a queue slot is likely free: the mean recent job time × queue rounds ahead."""
        rows = self.store.all("SELECT finished - started AS d FROM jobs WHERE state = 'finished' "
                              "AND started IS NOT NULL ORDER BY finished DESC LIMIT 20")
        mean = sum(r["d"] for r in rows) / len(rows) if rows else 30.0
        return max(1.0, mean * max(1, self.queue_length() - self.executor.slots + 1) / self.executor.slots)

    # -- dispatch --------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._dispatch()
            except Exception:  # the dispatcher must outlive one bad row
                log.error("dispatcher: %s", traceback.format_exc())
            self._wake.wait(1.0)
            self._wake.clear()

    def _claim(self) -> dict | None:
        with self.store.transaction():
            job = self.store.one("SELECT * FROM jobs WHERE state = 'queued' ORDER BY created LIMIT 1")
            if job is None:
                return None
            job["attempts"] += 1
            self.store.run("UPDATE jobs SET state = 'running', attempts = ?, started = ? WHERE id = ?",
                           job["attempts"], time.time(), job["id"])
        return job

    def _dispatch(self) -> None:
        while len(self._inflight) < self.executor.slots and not self._stop.is_set():
            job = self._claim()
            if job is None:
                return
            spec = self.spec(job)
            Path(spec.work_dir).mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._inflight[job["id"]] = job["attempts"]
            self.store.audit(job["user_id"], "job.start", job["id"], attempt=job["attempts"])
            future = self.executor.submit(spec)
            future.add_done_callback(lambda f, j=job: self._done(j, f))

    def spec(self, job: dict) -> JobSpec:
        cfg, params = self.config, job["params"]
        job_dir = self.data.job_dir(job["user_id"], job["id"])
        avatar = self.store.one("SELECT reference FROM avatars WHERE id = ?", job["avatar_id"])
        return JobSpec(
            job_id=job["id"], attempt=job["attempts"], work_dir=str(job_dir / "work" / f"attempt-{job['attempts']}"),
            reference=str(self.data.path(avatar["reference"])), watermark=job["watermark"],
            key_dir=str(self.data.keys), audio=params.get("audio") and str(self.data.path(params["audio"])),
            text=params.get("text"), voice=params.get("voice") and str(self.data.path(params["voice"])),
            prompt=params.get("prompt", ""), seconds=params.get("seconds"), steps=params.get("steps") or cfg.steps,
            seed=params.get("seed", 0), checkpoint=None if cfg.checkpoint is None else str(cfg.checkpoint),
            preset=cfg.preset, weights=None if cfg.weights is None else str(cfg.weights),
            infinitetalk=cfg.infinitetalk, user=job["user_id"])

    def _done(self, job: dict, future) -> None:
        try:
            self._finish(job, future)
        except Exception:
            log.error("job %s: %s", job["id"], traceback.format_exc())
        finally:
            with self._lock:
                self._inflight.pop(job["id"], None)
            self._wake.set()

    def _current(self, job: dict) -> bool:
        row = self.store.one("SELECT state, attempts FROM jobs WHERE id = ?", job["id"])
        return row is not None and row["state"] == "running" and row["attempts"] == job["attempts"]

    def _discard(self, job: dict) -> None:
        """An attempt whose job was deleted or given up on: its files go, nothing is published."""
        job_dir = self.data.job_dir(job["user_id"], job["id"])
        exists = self.store.one("SELECT 1 AS x FROM jobs WHERE id = ?", job["id"]) is not None
        self.data.remove_tree(job_dir / "work" / f"attempt-{job['attempts']}" if exists else job_dir)

    def _finish(self, job: dict, future) -> None:
        job_dir = self.data.job_dir(job["user_id"], job["id"])
        try:
            result = future.result()
        except WorkerLost as err:
            with self.store.transaction():
                if not self._current(job):
                    self._discard(job)
                    return
                again = job["attempts"] < self.config.max_attempts
                self.store.run("UPDATE jobs SET state = ?, error = ? WHERE id = ?", "queued" if again else "failed",
                               None if again else f"the worker died {job['attempts']} times", job["id"])
            self.store.audit(job["user_id"], "job.requeue" if again else "job.fail", job["id"], reason=str(err))
            self.data.remove_tree(job_dir / "work")
            return
        except Exception as err:
            message = str(err) if isinstance(err, AvatarvError) else f"internal error ({type(err).__name__})"
            message = message.replace(str(self.data.root) + os.sep, "")  # no server paths in messages
            if not isinstance(err, AvatarvError):
                log.error("job %s failed: %s", job["id"], "".join(traceback.format_exception(err)))
            with self.store.transaction():
                if not self._current(job):
                    self._discard(job)
                    return
                self.store.run("UPDATE jobs SET state = 'failed', error = ?, finished = ? WHERE id = ?",
                               message, time.time(), job["id"])
            self.store.audit(job["user_id"], "job.fail", job["id"], error=message)
            self.data.remove_tree(job_dir / "work")
            return
        video = job_dir / "video.mp4"
        with self.store.transaction():
            if not self._current(job):  # deleted, or given up on, while it ran: publish nothing
                self._discard(job)
                return
            os.replace(result["file"], video)
            self.store.run("UPDATE jobs SET state = 'finished', output = ?, finished = ?, provenance = ? WHERE id = ?",
                           self.data.rel(video), time.time(),
                           {"watermark": result["watermark"], "summary": result["summary"], "c2pa": "signed"},
                           job["id"])
        self.store.audit(job["user_id"], "job.finish", job["id"], attempt=job["attempts"])
        self.data.remove_tree(job_dir / "work")

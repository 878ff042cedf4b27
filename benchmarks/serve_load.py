"""Load on ``avatarv serve`` (local only): 10x the queue's capacity submitted at once, then a SIGKILL mid-job.

    python benchmarks/serve_load.py [--workers 1] [--queue-size 4] [--factor 10]

1. Starts ``avatarv serve --preset tiny --steps 1`` (a subprocess, local worker processes) on a fresh data
   folder with one user and one avatar whose consent is marked verified in the store (the consent checks are
   ``serve/consent.py``'s, measured elsewhere).
2. Submits ``factor x queue_size`` jobs at once from as many threads: the excess must get 429 (with
   Retry-After) quickly; every accepted job must finish, once (one ``job.finish`` in the audit log each), none
   lost; API latency p50/p99 of the submissions and of status polls made while the queue drains; peak RSS
   of the server and its workers.
3. Submits one more job, SIGKILLs the server while it runs, checks the workers died with it, restarts, and
   checks the job finishes exactly once (two attempts, one finish) and no partial video was ever served.

Writes ``benchmarks/results/serve-load.md`` and prints one JSON line. The helpers (``start_server``,
``seed_user``, ...) are used by ``tests/integration/test_serve_restart.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: Path, port: int, *args: str, log: Path | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "avatarv.cli", "serve", "--data", str(data), "--port", str(port),
           "--preset", "tiny", "--steps", "1", *args]
    out = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    end = time.time() + 60
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} ({log})")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start in 60 s")


def seed_user(data: Path, name: str, **limits) -> tuple[str, str]:
    """A user and one avatar with consent marked verified, written to the store directly → (token, avatar id)."""
    from avatarv.resources import example
    from avatarv.serve.auth import create_user
    from avatarv.serve.files import DataDir
    from avatarv.serve.store import Store

    dirs = DataDir(data)
    store = Store(dirs.db_path)
    row, token = create_user(store, name, "user", limits)
    avatar = uuid.uuid4().hex[:16]
    ref = dirs.avatar_dir(row["id"], avatar) / "reference.mp4"
    ref.parent.mkdir(parents=True)
    shutil.copy(example("ref.mp4"), ref)
    store.run("INSERT INTO avatars (id, user_id, name, state, reference, created) VALUES (?, ?, 'bench', 'verified', "
              "?, ?)", avatar, row["id"], dirs.rel(ref), time.time())
    store.close()
    return token, avatar


def speech_wav(path: Path, seconds: float = 1.0) -> Path:
    import soundfile as sf

    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return path


def submit(url: str, token: str, avatar: str, speech: Path) -> httpx.Response:
    with open(speech, "rb") as f:
        return httpx.post(url + "/api/jobs", headers={"Authorization": f"Bearer {token}"}, data={"avatar_id": avatar},
                          files={"audio": ("speech.wav", f)}, timeout=60)


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc)."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def wait_job(url: str, token: str, job: str, timeout: float, watch=None) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        r = httpx.get(f"{url}/api/jobs/{job}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        if r.status_code != 200:
            raise RuntimeError(f"GET job {job}: {r.status_code} {r.text}")
        row = r.json()
        if watch:
            watch(row)
        if row["state"] in ("finished", "failed"):
            return row
        time.sleep(0.3)
    raise TimeoutError(f"job {job} not done in {timeout} s")


class VideoWatcher:
    """Polls ``/video`` in a thread: every 200 answer is recorded, to compare with the final file."""

    def __init__(self, url: str, token: str, job: str):
        self.url, self.headers, self.job = url, {"Authorization": f"Bearer {token}"}, job
        self.bodies: list[bytes] = []
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                r = httpx.get(f"{self.url}/api/jobs/{self.job}/video", headers=self.headers, timeout=5)
                self.statuses.append(r.status_code)
                if r.status_code == 200:
                    self.bodies.append(r.content)
            except httpx.HTTPError:
                self.statuses.append(0)  # server down
            time.sleep(0.2)

    def stop(self):
        self._stop.set()
        self._thread.join()


def kill_mid_job(data: Path, port: int, token: str, avatar: str, speech: Path, log: Path, timeout: float = 240,
                 at_step: int = 0) -> dict:
    """Start, submit, SIGKILL while the job runs (once its worker reports a phase, or ``at_step`` denoising
    steps), restart, wait: what happened, as a dict."""
    url = f"http://127.0.0.1:{port}"
    proc = start_server(data, port, log=log)
    job = submit(url, token, avatar, speech).json()["id"]
    watcher = VideoWatcher(url, token, job)
    end = time.time() + timeout
    row = None
    while time.time() < end:
        row = httpx.get(f"{url}/api/jobs/{job}", headers={"Authorization": f"Bearer {token}"}).json()
        p = row["progress"] or {}
        if row["state"] == "running" and p.get("phase") not in (None, "starting") and p.get("step", 0) >= at_step:
            break
        time.sleep(0.2)
    workers = children(proc.pid)
    phase = (row["progress"] or {}).get("phase")
    step = (row["progress"] or {}).get("step")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.5)  # the workers' watchdog polls the parent every 0.5 s
    orphans = [p for p in workers if alive(p)]
    for p in orphans:
        os.kill(p, signal.SIGKILL)
    had_video = any(data.glob(f"users/*/jobs/{job}/video.mp4"))
    t0 = time.time()
    proc = start_server(data, port, log=log)
    try:
        done = wait_job(url, token, job, timeout)
        recovered_s = time.time() - t0
        final = httpx.get(f"{url}/api/jobs/{job}/video", headers={"Authorization": f"Bearer {token}"}).content
        time.sleep(0.5)
    finally:
        watcher.stop()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    from avatarv.serve.store import Store

    store = Store(data / "avatarv.sqlite3")
    finishes = store.one("SELECT COUNT(*) AS n FROM audit WHERE action = 'job.finish' AND subject = ?", job)["n"]
    requeues = store.one("SELECT COUNT(*) AS n FROM audit WHERE action = 'job.requeue' AND subject = ?", job)["n"]
    store.close()
    return {"job": job, "killed_in_phase": phase, "killed_at_step": step, "workers_before_kill": len(workers), "orphans": len(orphans),
            "video_before_restart": had_video, "state": done["state"], "attempts": done["attempts"],
            "finishes": finishes, "requeues": requeues, "recovered_s": round(recovered_s, 1),
            "served_bodies": len(watcher.bodies), "partial_served": any(b != final for b in watcher.bodies),
            "final_bytes": len(final)}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--queue-size", type=int, default=4)
    ap.add_argument("--factor", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve-load.md")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="serve-load-"))
    data, port, log = tmp / "data", free_port(), tmp / "server.log"
    token, avatar = seed_user(data, "load", concurrent_jobs=1000, requests_per_minute=100000, burst=100000)
    speech = speech_wav(tmp / "speech.wav")
    url = f"http://127.0.0.1:{port}"
    proc = start_server(data, port, "--workers", str(args.workers), "--queue-size", str(args.queue_size), log=log)
    n = args.factor * args.queue_size
    peak = {"rss": rss_mb([proc.pid, *children(proc.pid)])}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], rss_mb([proc.pid, *children(proc.pid)]))
            time.sleep(0.25)

    threading.Thread(target=sample, daemon=True).start()

    def timed_submit(_):
        t = time.perf_counter()
        r = submit(url, token, avatar, speech)
        return r, time.perf_counter() - t

    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(timed_submit, range(n)))
    burst_s = time.perf_counter() - t0
    accepted = [r.json()["id"] for r, _ in results if r.status_code == 202]
    refused = [(r, dt) for r, dt in results if r.status_code == 429]
    other = [r.status_code for r, _ in results if r.status_code not in (202, 429)]
    submit_lat = [dt for _, dt in results]
    refuse_lat = [dt for _, dt in refused]
    poll_lat: list[float] = []
    end = time.time() + 600
    states: dict[str, str] = {}
    while time.time() < end:
        for job in accepted:
            t = time.perf_counter()
            states[job] = httpx.get(f"{url}/api/jobs/{job}", headers={"Authorization": f"Bearer {token}"}).json()["state"]
            poll_lat.append(time.perf_counter() - t)
        if all(s in ("finished", "failed") for s in states.values()):
            break
        time.sleep(0.5)
    drain_s = time.perf_counter() - t0
    stop.set()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    from avatarv.serve.store import Store

    store = Store(data / "avatarv.sqlite3")
    finishes = {r["subject"]: r["n"] for r in store.all("SELECT subject, COUNT(*) AS n FROM audit WHERE action = "
                                                         "'job.finish' GROUP BY subject")}
    rows = store.one("SELECT COUNT(*) AS n FROM jobs")["n"]
    store.close()
    kill = kill_mid_job(data, port, token, avatar, speech, log, at_step=1)

    result = {
        "bench": "serve_load", "cpu": cpu_name(), "cores": os.cpu_count(), "workers": args.workers,
        "queue_size": args.queue_size, "submitted": n, "accepted": len(accepted), "refused_429": len(refused),
        "other_status": other, "retry_after_present": all("retry-after" in r.headers for r, _ in refused),
        "finished": sum(s == "finished" for s in states.values()), "failed": sum(s == "failed" for s in states.values()),
        "job_rows": rows, "duplicate_finishes": sum(v > 1 for v in finishes.values()),
        "lost": sum(finishes.get(j, 0) == 0 for j in accepted),
        "submit_p50_ms": round(percentile(submit_lat, 50), 1), "submit_p99_ms": round(percentile(submit_lat, 99), 1),
        "refusal_p50_ms": round(percentile(refuse_lat, 50), 1), "refusal_p99_ms": round(percentile(refuse_lat, 99), 1),
        "poll_p50_ms": round(percentile(poll_lat, 50), 1), "poll_p99_ms": round(percentile(poll_lat, 99), 1),
        "burst_s": round(burst_s, 2), "drain_s": round(drain_s, 1), "peak_rss_mb": round(peak["rss"]),
        "kill": kill,
    }
    write_report(args.out, result)
    print(json.dumps(result))
    shutil.rmtree(tmp, ignore_errors=True)


def write_report(path: Path, r: dict) -> None:
    k = r["kill"]
    text = f"""# serve load: {r['submitted']} jobs at once on a queue of {r['queue_size']}, then SIGKILL mid-job

`python benchmarks/serve_load.py --workers {r['workers']} --queue-size {r['queue_size']}` — CPU: {r['cpu']}
({r['cores']} cores, shared), `avatarv serve --preset tiny --steps 1` (random weights, 1 s of speech), local
worker processes.

| | |
|---|---|
| submitted at once | {r['submitted']} ({r['submitted'] // r['queue_size']}x the queue) |
| accepted (202) / refused (429) / other | {r['accepted']} / {r['refused_429']} / {r['other_status'] or 'none'} |
| every 429 with Retry-After | {r['retry_after_present']} |
| accepted jobs finished / failed / lost / finished twice | {r['finished']} / {r['failed']} / {r['lost']} / {r['duplicate_finishes']} |
| submission latency p50 / p99 (all {r['submitted']}, concurrent) | {r['submit_p50_ms']} / {r['submit_p99_ms']} ms |
| 429 latency p50 / p99 | {r['refusal_p50_ms']} / {r['refusal_p99_ms']} ms |
| status poll latency while the queue drains p50 / p99 | {r['poll_p50_ms']} / {r['poll_p99_ms']} ms |
| burst answered in / queue drained in | {r['burst_s']} s / {r['drain_s']} s |
| peak RSS, server + workers | {r['peak_rss_mb']} MB |

SIGKILL of the server mid-job (phase {k['killed_in_phase']!r}, after {k['killed_at_step']} of 2 steps): {k['workers_before_kill']} worker processes
before, {k['orphans']} left alive after (the workers watch their parent); video present before the restart:
{k['video_before_restart']}; after the restart the job is {k['state']} in {k['recovered_s']} s with
{k['attempts']} attempts, {k['finishes']} finish and {k['requeues']} requeue in the audit log;
`/video` answered 200 {k['served_bodies']} times while polled every 0.2 s through the kill and restart,
partial or different content served: {k['partial_served']}.

```json
{json.dumps(r)}
```
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    main()

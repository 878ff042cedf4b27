"""Executors run tasks; the engine decides which. Local process pool (default), in-process, and Ray.

A task is ``run_task(spec, root, payload)``: it rebuilds the stage from its spec (cached per worker, so a
model loads once per process), loads the upstream artifacts from the artifact root (``store.ArtifactStore``:
a local folder or an fsspec URL), calls ``process``, and commits the output atomically. It returns a small
dict (status, seconds, frames, error); big data never travels back to the engine. A task that raises returns
``status="failed"`` with the error text.

Failure handling, the same contract on every executor (the engine applies it, ``engine.py``):

- a worker that dies (segfault, OOM kill, SIGKILL, a lost node) fails only its own task, which the engine
  runs again (up to ``max_attempts``); on Ray, a lost worker or node is first retried by Ray itself
  (``max_retries``), and a ``StoreIOError`` (the artifact filesystem hiccuped) too (``retry_exceptions``:
  safe because tasks are idempotent: commits are atomic and keyed by content);
- every running task sends a heartbeat every ``heartbeat_s`` from a thread of its worker (local: through
  the worker's pipe; Ray: to a small actor on the driver's node). ``progress`` reports, per task, the seconds
  since it started and since its last beat; the engine cancels a task that runs past its timeout (hung) or
  whose beats stopped (a frozen process, a partitioned node) and runs it again. ``cancel`` kills the worker
  process running the task (local) or force-cancels the Ray task, so a hung task never holds a slot;
- ``refresh`` re-reads the capacity (Ray: ``ray.cluster_resources()`` and ``available_resources()``), so
  the engine fills nodes that joined during the run and stops counting on nodes that left.

Ray on a cluster (``avatarv curate run PIPELINE --executor ray --address ADDR --artifacts URL``): connects
to the running cluster at ADDR (``ray start --head`` on one machine, ``ray start --address`` on the others);
without ``--address`` a local Ray is started for the run. Every node needs avatarv installed (the same
version) and must reach the input videos (same path) and the artifact root URL (a shared mount or an object
store such as ``s3://``; see ``store.py``): workers read and write there directly.
"""

from __future__ import annotations

import itertools
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
import traceback
from collections import deque
from pathlib import Path

from avatarv.data.curation.stage import Item, Output, Resources, build_stage
from avatarv.data.curation.store import ArtifactStore, StoreIOError

HEARTBEAT_S = 5.0  # seconds between a running task's heartbeats

_STORES: dict[str, ArtifactStore] = {}


def _store(root: str) -> ArtifactStore:
    store = _STORES.get(root)
    if store is None:
        store = _STORES[root] = ArtifactStore(root)
    return store


def _load_item(store: ArtifactStore, entry: dict) -> Item:
    item = Item(entry["item_id"], Path(entry["source"]), entry["content_hash"])
    for stage, (art_item, key) in entry["upstream"].items():
        item.upstream[stage] = store.load(stage, art_item, key)
    return item


def run_task(spec: dict, root: str, payload: dict, raise_io: bool = False) -> dict:
    """Run one task to a committed artifact. ``payload``: {"item_id", "key", "items": [entry, ...]}.
    ``raise_io``: let a ``StoreIOError`` propagate (Ray retries it) instead of returning a failure."""
    t0 = time.perf_counter()
    try:
        stage = build_stage(spec)
        store = _store(root)
        items = [_load_item(store, e) for e in payload["items"]]
        reason = stage.unavailable()
        if reason is not None:
            out = Output.unavailable(reason)
        else:
            out = stage.process(items if stage.scope == "collection" else items[0])
        store.commit(spec["name"], payload["item_id"], payload["key"], out)
        frames = out.values.get("frames") if isinstance(out.values, dict) else None
        return {"status": "done" if out.status == "ok" else out.status, "reason": out.reason,
                "seconds": time.perf_counter() - t0, "frames": frames}
    except StoreIOError:
        if raise_io:
            raise
        return {"status": "failed", "error": traceback.format_exc(limit=-1).strip().splitlines()[-1],
                "seconds": time.perf_counter() - t0}
    except Exception as err:  # one bad input must not stop the run: the engine records it
        tb = traceback.format_exc(limit=-3)
        return {"status": "failed", "error": f"{type(err).__name__}: {err}", "traceback": tb,
                "seconds": time.perf_counter() - t0}


def _worker_init() -> None:
    # one BLAS/torch thread per task: the pool provides the parallelism
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    import cv2
    from fsspec.implementations.local import LocalFileSystem  # noqa: F401  (the artifact store's, loaded once here)

    cv2.setNumThreads(1)


class _Heartbeat:
    """A daemon thread calling ``beat()`` every ``interval`` seconds while a task runs."""

    def __init__(self, beat, interval: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(beat, interval), daemon=True)

    def _loop(self, beat, interval):
        while not self._stop.wait(interval):
            try:
                beat()
            except Exception:  # a missed beat is what the engine watches for; never kill the task over it
                pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class Executor:
    capacity: float = 1.0  # CPUs the engine may fill with tasks at once

    def submit(self, spec: dict, root: str, payload: dict, resources: Resources):
        raise NotImplementedError

    def wait(self, handles: list, timeout: float | None = None) -> list:
        """Some finished handles (at least one unless ``timeout`` passes)."""
        raise NotImplementedError

    def result(self, handle) -> dict:
        raise NotImplementedError

    def progress(self, handles: list) -> list[tuple[float | None, float | None]]:
        """Per handle: (seconds since the task started, seconds since its last heartbeat); None where not
        known (not started yet, or an executor without heartbeats)."""
        return [(None, None)] * len(handles)

    def cancel(self, handle) -> None:
        """Stop a running task (killing its worker if need be); its result is then never read."""

    def refresh(self) -> float:
        """Re-read the capacity (nodes join and leave); returns it."""
        return self.capacity

    def shutdown(self) -> None:
        pass


class InlineExecutor(Executor):
    """Runs each task in the engine's process when submitted (debugging, tiny inputs, ``memory://`` roots). The
    process's own thread settings are left as they are (``_worker_init`` is for pool workers: setting one torch
    thread here would leak into whatever the caller does next)."""

    capacity = 1.0

    def __init__(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")

    def submit(self, spec, root, payload, resources):
        return run_task(spec, root, payload)

    def wait(self, handles, timeout=None):
        return list(handles)

    def result(self, handle):
        return handle


# -- local process pool -------------------------------------------------------------------------------------
def _worker_main(conn, heartbeat_s: float) -> None:
    """A pool worker: runs tasks sent over ``conn`` one at a time, with a heartbeat while each runs."""
    _worker_init()
    lock = threading.Lock()

    def send(msg):
        with lock:
            conn.send(msg)

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the engine went away
            return
        if msg is None:
            return
        tid, spec, root, payload = msg
        send(("start", tid, None))
        with _Heartbeat(lambda tid=tid: send(("beat", tid, None)), heartbeat_s):
            res = run_task(spec, root, payload)
        send(("done", tid, res))


class _LocalTask:
    __slots__ = ("tid", "msg", "worker", "started", "beat", "result")

    def __init__(self, tid: int, msg: tuple):
        self.tid, self.msg = tid, msg
        self.worker: _Worker | None = None
        self.started: float | None = None
        self.beat: float | None = None
        self.result: dict | None = None


class _Worker:
    def __init__(self, ctx, heartbeat_s: float):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, heartbeat_s), daemon=True)
        self.proc.start()
        child.close()
        self.task: _LocalTask | None = None

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


class LocalExecutor(Executor):
    """A pool of worker processes on this machine (``spawn``: no state inherited from the engine's threads).

    Each worker runs one task at a time and is watched on its own: a worker that dies fails only the task it
    was running and is replaced; ``cancel`` kills exactly the worker of a hung task."""

    def __init__(self, workers: int | None = None, heartbeat_s: float = HEARTBEAT_S):
        self.workers = max(1, workers or (os.cpu_count() or 1))
        self.capacity = float(self.workers)
        self.heartbeat_s = heartbeat_s
        self._ctx = multiprocessing.get_context("spawn")
        self._pool = [_Worker(self._ctx, heartbeat_s) for _ in range(self.workers)]
        self._queue: deque[_LocalTask] = deque()
        self._ids = itertools.count()

    def warm(self, module: str = "avatarv.data.curation.stages.common") -> None:
        """Block until every worker has started and imported ``module`` (benchmarks keep start-up off the
        clock). Each worker gets one task naming a class that is not there: it imports the module and fails."""
        spec = {"class": f"{module}:_warm_up_", "name": "warm", "inputs": [], "config": {}}
        tasks = [self.submit(spec, "", {}, Resources()) for _ in range(self.workers)]
        while pending := [t for t in tasks if t.result is None]:
            self.wait(pending, timeout=1.0)  # (a finished handle passed in would return at once, unpolled)

    def submit(self, spec, root, payload, resources):
        task = _LocalTask(next(self._ids), (spec, root, payload))
        self._queue.append(task)
        self._dispatch()
        return task

    def _dispatch(self) -> None:
        for w in self._pool:
            if not self._queue:
                return
            if w.task is None:
                task = self._queue.popleft()
                w.task, task.worker = task, w
                try:
                    w.conn.send((task.tid, *task.msg))
                except OSError as err:  # died while idle: replaced on the next poll, the task fails once
                    self._died(w, f"worker died before the task started: {err}")

    def _died(self, w: _Worker, error: str) -> None:
        task = w.task
        code = w.proc.exitcode
        w.kill()
        if task is not None and task.result is None:
            task.result = {"status": "failed", "error": f"{error} (exit code {code})", "seconds": 0.0}
            task.worker = None
        self._pool[self._pool.index(w)] = _Worker(self._ctx, self.heartbeat_s)

    def _poll(self, timeout: float | None) -> None:
        busy = [w for w in self._pool if w.task is not None]
        if not busy:
            return
        waitables = {}
        for w in busy:
            waitables[w.conn] = w
            waitables[w.proc.sentinel] = w
        for r in multiprocessing.connection.wait(list(waitables), timeout=timeout):
            w = waitables[r]
            if w.task is None or w not in self._pool:
                continue
            try:
                while w.conn.poll():
                    kind, tid, res = w.conn.recv()
                    if w.task is None or tid != w.task.tid:
                        continue
                    now = time.monotonic()
                    if kind == "start":
                        w.task.started = w.task.beat = now
                    elif kind == "beat":
                        w.task.beat = now
                    else:
                        w.task.result, w.task.worker, w.task = res, None, None
                        break
            except (EOFError, OSError):
                pass
            if w.task is not None and not w.proc.is_alive():
                self._died(w, "worker died")
        self._dispatch()

    def wait(self, handles, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done = [h for h in handles if h.result is not None]
            if done:
                return done
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return []
            self._poll(left if left is not None else 1.0)

    def result(self, handle):
        return handle.result

    def progress(self, handles):
        now = time.monotonic()
        return [(None if h.started is None else now - h.started, None if h.beat is None else now - h.beat)
                for h in handles]

    def cancel(self, handle):
        if handle in self._queue:
            self._queue.remove(handle)
        elif handle.worker is not None:
            w = handle.worker
            w.task = None
            w.kill()
            self._pool[self._pool.index(w)] = _Worker(self._ctx, self.heartbeat_s)
        handle.worker = None
        handle.result = handle.result or {"status": "failed", "error": "cancelled", "seconds": 0.0}
        self._dispatch()

    def shutdown(self):
        for w in self._pool:
            try:
                w.conn.send(None)
            except OSError:
                pass
        for w in self._pool:
            w.proc.join(10)
            w.kill()


# -- Ray ----------------------------------------------------------------------------------------------------
class _Beats:
    """Ray actor: the heartbeats of running tasks, timed by its own clock (no clock skew between nodes)."""

    def __init__(self):
        self.seen: dict[int, list[float]] = {}

    def beat(self, tid: int, start: bool = False) -> None:
        """``start``: a (re)try begins: its age counts from now (Ray's retries each get the whole timeout)."""
        now = time.monotonic()
        if start:
            self.seen[tid] = [now, now]
        else:
            self.seen.setdefault(tid, [now, now])[1] = now

    def ages(self, tids: list[int]) -> list[tuple[float | None, float | None]]:
        now = time.monotonic()
        return [(now - s[0], now - s[1]) if (s := self.seen.get(t)) else (None, None) for t in tids]

    def forget(self, tid: int) -> None:
        self.seen.pop(tid, None)


def _ray_task(spec, root, payload, tid, beats, heartbeat_s):
    _worker_init()
    beats.beat.remote(tid, True)
    with _Heartbeat(lambda: beats.beat.remote(tid), heartbeat_s):
        return run_task(spec, root, payload, raise_io=True)


class RayExecutor(Executor):
    """Ray tasks (``pip install .[scale]``): the same ``run_task``, scheduled by Ray with each stage's
    ``resources`` (``num_cpus``, ``num_gpus``). Connects to the cluster at ``address`` (``"auto"``: the one
    ``ray start`` runs on this machine), else joins a Ray already initialised in this process, else starts a
    local one; shuts down only a Ray it connected or started. ``max_retries``: Ray's own retries of a task
    whose worker or node died (and of a ``StoreIOError``), before the engine sees a failure."""

    def __init__(self, num_cpus: int | None = None, address: str | None = None, max_retries: int = 3,
                 heartbeat_s: float = HEARTBEAT_S):
        try:
            import ray
        except ImportError as err:
            from avatarv.errors import ConfigError

            raise ConfigError("the ray executor needs Ray: pip install 'avatarv[scale]'") from err
        self._ray = ray
        self._started = False
        self.address = address
        self.max_retries = max_retries
        self.heartbeat_s = heartbeat_s
        if not ray.is_initialized():
            env = {"env_vars": {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}}
            if address:
                ray.init(address=address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, runtime_env=env,
                         log_to_driver=False)
            self._started = True
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()  # the beats live with the driver: lost only with it
        self._beats = ray.remote(_Beats).options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote()
        self._remote = ray.remote(_ray_task)
        self._tids: dict = {}  # ObjectRef -> task id
        self._ids = itertools.count()
        self.capacity_log: list[tuple[float, float, float]] = []  # (time, cluster CPUs, available CPUs)
        self.refresh()

    def refresh(self) -> float:
        total = float(self._ray.cluster_resources().get("CPU", 0.0))
        free = float(self._ray.available_resources().get("CPU", 0.0))
        self.capacity = max(total, 1.0)
        if not self.capacity_log or self.capacity_log[-1][1:] != (total, free):
            self.capacity_log.append((time.time(), total, free))
        return self.capacity

    def submit(self, spec, root, payload, resources):
        tid = next(self._ids)
        opts = {"num_cpus": resources.cpu, "num_gpus": resources.gpu, "max_retries": self.max_retries,
                "retry_exceptions": [StoreIOError]}
        ref = self._remote.options(**opts).remote(spec, root, payload, tid, self._beats, self.heartbeat_s)
        self._tids[ref] = tid
        return ref

    def wait(self, handles, timeout=None):
        done, _ = self._ray.wait(list(handles), num_returns=1, timeout=timeout)
        return list(done)

    def result(self, handle):
        tid = self._tids.pop(handle, None)
        if tid is not None:
            self._beats.forget.remote(tid)
        try:
            return self._ray.get(handle)
        except Exception as err:  # a dead worker after Ray's retries, a store that kept failing
            return {"status": "failed", "error": f"{type(err).__name__}: {err}", "seconds": 0.0}

    def progress(self, handles):
        try:
            return self._ray.get(self._beats.ages.remote([self._tids.get(h, -1) for h in handles]), timeout=30)
        except Exception:  # the actor is unreachable: no verdict this round (never a false "hung")
            return [(None, None)] * len(handles)

    def cancel(self, handle):
        tid = self._tids.pop(handle, None)
        if tid is not None:
            self._beats.forget.remote(tid)
        try:
            self._ray.cancel(handle, force=True)  # kills the worker process: a hung task frees its CPU
        except Exception:
            pass

    def shutdown(self):
        if self._started:
            self._ray.shutdown()


def make_executor(name: str = "local", workers: int | None = None, address: str | None = None,
                  heartbeat_s: float = HEARTBEAT_S) -> Executor:
    from avatarv.errors import ConfigError

    if address and name != "ray":
        raise ConfigError(f"--address is for the ray executor (got --executor {name})")
    if name == "local":
        return LocalExecutor(workers, heartbeat_s=heartbeat_s)
    if name == "inline":
        return InlineExecutor()
    if name == "ray":
        return RayExecutor(num_cpus=workers, address=address, heartbeat_s=heartbeat_s)
    raise ConfigError(f"unknown executor {name!r} (expected local, inline or ray)")

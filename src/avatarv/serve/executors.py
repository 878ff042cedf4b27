"""Where jobs run: worker processes on this machine (default) or Ray workers (scale-out), both running
``jobs.run_job`` unchanged. An executor takes a spec and returns a ``concurrent.futures.Future``.

Local workers are spawned processes that keep their loaded model between jobs and exit when the server
does (a watchdog on the parent pid): a SIGKILLed server leaves no worker behind to finish a job twice.
Ray workers need the data folder at the same path on every node (a shared file system); the job's files
are paths, not bytes.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import threading
import time
from typing import Protocol

from avatarv.serve.jobs import JobSpec, run_job


class Executor(Protocol):
    slots: int

    def submit(self, spec: JobSpec) -> cf.Future: ...

    def shutdown(self) -> None: ...


class WorkerLost(RuntimeError):
    """The process running a job died (killed, out of memory): the job is re-run, not failed."""


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.5)


def _worker_init(parent: int) -> None:
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


class LocalExecutor:
    def __init__(self, workers: int = 1):
        self.slots = workers
        self._pool = None
        self._lock = threading.Lock()

    def _get_pool(self) -> cf.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = cf.ProcessPoolExecutor(self.slots, mp_context=multiprocessing.get_context("spawn"),
                                                    initializer=_worker_init, initargs=(os.getpid(),))
            return self._pool

    def submit(self, spec: JobSpec) -> cf.Future:
        out: cf.Future = cf.Future()
        pool = self._get_pool()
        try:
            inner = pool.submit(run_job, spec.to_dict())
        except cf.process.BrokenProcessPool:
            self._reset(pool)
            inner = self._get_pool().submit(run_job, spec.to_dict())

        def relay(f: cf.Future) -> None:
            try:
                out.set_result(f.result())
            except cf.process.BrokenProcessPool as err:
                self._reset(pool)
                out.set_exception(WorkerLost(f"the worker process died ({err})"))
            except BaseException as err:  # noqa: B036 - handed to the scheduler as the job's error
                out.set_exception(err)

        inner.add_done_callback(relay)
        return out

    def _reset(self, broken) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()


class RayExecutor:
    """``ray.init(address)`` (or the Ray already initialised in this process); one CPU per job."""

    def __init__(self, address: str | None = None, workers: int = 1, num_cpus: float = 1.0):
        import ray

        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        self.slots = workers
        self._remote = ray.remote(num_cpus=num_cpus, max_retries=0)(run_job)

    def submit(self, spec: JobSpec) -> cf.Future:
        import ray

        out: cf.Future = cf.Future()
        inner = self._remote.remote(spec.to_dict()).future()

        def relay(f: cf.Future) -> None:
            try:
                out.set_result(f.result())
            except ray.exceptions.RayTaskError as err:
                out.set_exception(err.as_instanceof_cause())
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as err:
                out.set_exception(WorkerLost(str(err).splitlines()[0]))
            except BaseException as err:  # noqa: B036
                out.set_exception(err)

        inner.add_done_callback(relay)
        return out

    def shutdown(self) -> None:
        pass  # the Ray cluster belongs to whoever started it


def make_executor(kind: str, workers: int, address: str | None = None) -> Executor:
    if kind == "ray":
        return RayExecutor(address, workers)
    return LocalExecutor(workers)

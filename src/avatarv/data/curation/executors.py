"""Executors run tasks; the engine decides which. Local process pool (default), in-process, and Ray.

A task is ``run_task(spec, root, payload)``: it rebuilds the stage from its spec (cached per worker, so a
model loads once per process), loads the upstream artifacts from the shared output folder, calls
``process``, and commits the output atomically (``store.commit_output``). It returns a small dict (status,
seconds, frames, error); big data never travels back to the engine. A task that raises returns
``status="failed"`` with the error text; a worker that dies (segfault, OOM kill) fails its task the same way.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
import traceback
from pathlib import Path

from avatarv.data.curation.stage import Item, Resources, build_stage
from avatarv.data.curation.store import commit_output, load_artifact


def _load_item(root: Path, entry: dict) -> Item:
    item = Item(entry["item_id"], Path(entry["source"]), entry["content_hash"])
    for stage, (art_item, key) in entry["upstream"].items():
        item.upstream[stage] = load_artifact(root, stage, art_item, key)
    return item


def run_task(spec: dict, root: str, payload: dict) -> dict:
    """Run one task to a committed artifact. ``payload``: {"item_id", "key", "items": [entry, ...]}."""
    t0 = time.perf_counter()
    try:
        stage = build_stage(spec)
        root_p = Path(root)
        items = [_load_item(root_p, e) for e in payload["items"]]
        reason = stage.unavailable()
        if reason is not None:
            from avatarv.data.curation.stage import Output

            out = Output.unavailable(reason)
        else:
            out = stage.process(items if stage.scope == "collection" else items[0])
        commit_output(root_p, spec["name"], payload["item_id"], payload["key"], out)
        frames = out.values.get("frames") if isinstance(out.values, dict) else None
        return {"status": "done" if out.status == "ok" else out.status, "reason": out.reason,
                "seconds": time.perf_counter() - t0, "frames": frames}
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

    cv2.setNumThreads(1)


class Executor:
    capacity: float = 1.0  # CPUs the engine may fill with tasks at once

    def submit(self, spec: dict, root: str, payload: dict, resources: Resources):
        raise NotImplementedError

    def wait(self, handles: list, timeout: float | None = None) -> list:
        """Some finished handles (at least one unless ``timeout`` passes)."""
        raise NotImplementedError

    def result(self, handle) -> dict:
        raise NotImplementedError

    def shutdown(self) -> None:
        pass


class InlineExecutor(Executor):
    """Runs each task in the engine's process when submitted (debugging, tiny inputs, tests)."""

    capacity = 1.0

    def __init__(self):
        _worker_init()

    def submit(self, spec, root, payload, resources):
        return run_task(spec, root, payload)

    def wait(self, handles, timeout=None):
        return list(handles)

    def result(self, handle):
        return handle


class LocalExecutor(Executor):
    """A process pool on this machine (``spawn``: no state inherited from the engine's threads)."""

    def __init__(self, workers: int | None = None):
        self.workers = max(1, workers or (os.cpu_count() or 1))
        self.capacity = float(self.workers)
        self._pool = self._new_pool()

    def _new_pool(self):
        return cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_worker_init)

    def submit(self, spec, root, payload, resources):
        try:
            return self._pool.submit(run_task, spec, root, payload)
        except cf.process.BrokenProcessPool:
            self._pool = self._new_pool()
            return self._pool.submit(run_task, spec, root, payload)

    def wait(self, handles, timeout=None):
        done, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def result(self, handle):
        try:
            return handle.result()
        except cf.process.BrokenProcessPool as err:
            self._pool = self._new_pool()
            return {"status": "failed", "error": f"worker died: {err}", "seconds": 0.0}
        except Exception as err:
            return {"status": "failed", "error": f"{type(err).__name__}: {err}", "seconds": 0.0}

    def shutdown(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor(Executor):
    """Ray tasks (``pip install .[scale]``): the same ``run_task``, scheduled by Ray with each stage's
    ``resources`` (``num_cpus``, ``num_gpus``, ``memory``). Starts a local Ray unless one is running or
    ``address`` is given; shuts down only the Ray it started."""

    def __init__(self, num_cpus: int | None = None, address: str | None = None):
        try:
            import ray
        except ImportError as err:
            from avatarv.errors import ConfigError

            raise ConfigError("the ray executor needs Ray: pip install 'avatarv[scale]'") from err
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            env = {"env_vars": {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}}
            if address:
                ray.init(address=address, runtime_env=env)
            else:
                ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, runtime_env=env,
                         log_to_driver=False)
            self._started = True
        self.capacity = float(ray.cluster_resources().get("CPU", 1.0))
        self._remote = ray.remote(_ray_task)

    def submit(self, spec, root, payload, resources):
        opts = {"num_cpus": resources.cpu, "num_gpus": resources.gpu, "max_retries": 0}
        return self._remote.options(**opts).remote(spec, root, payload)

    def wait(self, handles, timeout=None):
        done, _ = self._ray.wait(list(handles), num_returns=1, timeout=timeout)
        return list(done)

    def result(self, handle):
        try:
            return self._ray.get(handle)
        except Exception as err:  # a dead worker
            return {"status": "failed", "error": f"{type(err).__name__}: {err}", "seconds": 0.0}

    def shutdown(self):
        if self._started:
            self._ray.shutdown()


def _ray_task(spec, root, payload):
    _worker_init()
    return run_task(spec, root, payload)


def make_executor(name: str = "local", workers: int | None = None) -> Executor:
    if name == "local":
        return LocalExecutor(workers)
    if name == "inline":
        return InlineExecutor()
    if name == "ray":
        return RayExecutor(num_cpus=workers)
    from avatarv.errors import ConfigError

    raise ConfigError(f"unknown executor {name!r} (expected local, inline or ray)")

"""Observe, diff, reconcile: run only the tasks whose committed artifact is missing.

``Engine.plan()`` computes the desired state (task keys, ``pipeline.py``) and compares it with the observed
state (``store.py``): every (stage, item) is ``done``, ``unavailable`` (committed with a reason), ``failed``
(attempts used up; ``--retry-failed`` clears them), ``pending`` (will run) or ``blocked`` (an upstream task
failed). ``Engine.run()`` reconciles: it submits ready tasks to the executor while their declared CPUs fit
its capacity, records each result, retries failures up to ``max_attempts`` and unblocks dependants. A run
killed at any point resumes from the artifacts: a task is either committed (kept, never repeated) or not
(run again). A task committed just before the kill but not yet recorded is adopted, not recomputed.

While tasks run, the engine watches them (``_watch``) every ``poll_s``: a task running longer than its
timeout (``task_timeout``, or the stage's ``timeout_s`` class attribute) is hung, one whose heartbeats
stopped for ``heartbeat_timeout`` is lost (a frozen process, a partitioned node); either is cancelled (its
worker killed) and counted as a failed attempt, so it runs again. Every ``refresh_s`` the executor's capacity
is re-read (``Executor.refresh``: Ray's cluster resources as nodes join and leave) and the engine fills it.
A cancelled task that still commits later does no harm: the commit is idempotent (``store.py``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from avatarv.data.curation.executors import HEARTBEAT_S, Executor, InlineExecutor, make_executor
from avatarv.data.curation.pipeline import InputItem, Pipeline, discover_inputs
from avatarv.data.curation.store import COLLECTION_ITEM, StateStore

RESOLVED = ("done", "unavailable", "failed", "blocked")
USABLE = ("done", "unavailable")


@dataclass
class Task:
    stage: str
    item: str  # item id, or COLLECTION_ITEM
    key: str | None  # None: a collection key not yet known (its upstream is still running)
    status: str  # done | unavailable | failed | pending | blocked
    attempts: int = 0
    error: str | None = None
    reason: str | None = None


@dataclass
class RunReport:
    executed: list[tuple[str, str]] = field(default_factory=list)  # (stage, item) actually run, retries included
    adopted: int = 0
    seconds: float = 0.0
    counts: dict[str, Counter] = field(default_factory=dict)  # stage -> Counter(status)
    failures: list[Task] = field(default_factory=list)
    cancelled: list[tuple[str, str, str]] = field(default_factory=list)  # (stage, item, why) hung or lost
    capacity: list[float] = field(default_factory=list)  # every capacity the executor reported, in order
    max_running: int = 0  # most tasks in flight at once

    def to_json(self) -> dict:
        return {"executed": len(self.executed), "adopted": self.adopted, "seconds": round(self.seconds, 3),
                "counts": {s: dict(c) for s, c in self.counts.items()},
                "cancelled": [list(c) for c in self.cancelled], "capacity": self.capacity,
                "max_running": self.max_running,
                "failures": [{"stage": t.stage, "item": t.item, "error": t.error} for t in self.failures]}


ProgressFn = Callable[[str, Task], None]  # event ("plan" | "start" | "finish"), task


class Engine:
    """``out_dir``: the local folder of the task records; ``artifacts``: the artifact root (a folder or an
    fsspec URL every worker reaches; default ``out_dir``). ``task_timeout`` / ``heartbeat_timeout``: seconds
    (0: off) after which a running task is cancelled and retried (module docstring); ``collection_timeout``
    is the limit of a collection task (one over every item: its time grows with the input, so none by
    default; the heartbeat still catches a lost one). A stage's ``timeout_s`` attribute overrides both."""

    def __init__(self, pipeline: Pipeline, input_dir: str | Path, out_dir: str | Path, max_attempts: int = 2,
                 artifacts: str | None = None, task_timeout: float = 3600.0, heartbeat_timeout: float = 120.0,
                 collection_timeout: float = 0.0, poll_s: float = 0.5, refresh_s: float = 5.0):
        self.pipeline = pipeline
        self.input_dir = Path(input_dir)
        self.store = StateStore(out_dir, artifacts)
        self.max_attempts = max_attempts
        self.task_timeout = task_timeout
        self.heartbeat_timeout = heartbeat_timeout
        self.collection_timeout = collection_timeout
        self.poll_s = poll_s
        self.refresh_s = refresh_s
        self.items: list[InputItem] = discover_inputs(input_dir)

    def close(self) -> None:
        self.store.close()

    # -- observe + diff -------------------------------------------------------------------------------------
    def _observe(self, stage: str, item: str, key: str) -> Task:
        rec = self.store.get(stage, item, key)
        if self.store.has_artifact(stage, item, key):
            if rec is not None and rec["status"] in USABLE:  # the record says what values.json says
                return Task(stage, item, key, rec["status"], rec["attempts"], reason=rec["reason"])
            status, reason = self.store.artifact_status(stage, item, key)  # committed, killed before the record
            status = "done" if status == "ok" else status
            self.store.record(stage, item, key, status, reason=reason, count_attempt=False)
            self._adopted += 1
            return Task(stage, item, key, status, rec["attempts"] if rec else 0, reason=reason)
        if rec is not None and rec["status"] == "failed":
            status = "failed" if rec["attempts"] >= self.max_attempts else "pending"
            return Task(stage, item, key, status, rec["attempts"], rec["error"])
        return Task(stage, item, key, "pending")

    def plan(self) -> dict[tuple[str, str], Task]:
        """The diff: every task of the desired state with its observed status."""
        self._adopted = 0
        tasks: dict[tuple[str, str], Task] = {}
        for stage in self.pipeline.stages:
            if stage.scope == "item":
                for it in self.items:
                    self._plan_item(stage, it, tasks)
            else:
                self._plan_collection(stage, tasks)
        return tasks

    def _upstream(self, stage, item_id: str, tasks) -> list[Task]:
        ups = []
        for u in stage.inputs:
            up_stage = self.pipeline.by_name[u]
            ups.append(tasks[(u, item_id if up_stage.scope == "item" else COLLECTION_ITEM)])
        return ups

    def _plan_item(self, stage, it: InputItem, tasks) -> None:
        ups = self._upstream(stage, it.item_id, tasks)
        if any(u.key is None for u in ups):
            tasks[(stage.name, it.item_id)] = Task(stage.name, it.item_id, None, "pending")
            return
        key = self.pipeline.item_key(stage, it, {u.stage: u.key for u in ups})
        task = self._observe(stage.name, it.item_id, key)
        if task.status == "pending" and any(u.status in ("failed", "blocked") for u in ups):
            task.status = "blocked"
        tasks[(stage.name, it.item_id)] = task

    def _plan_collection(self, stage, tasks) -> None:
        members, unresolved = [], False
        for it in self.items:
            ups = self._upstream(stage, it.item_id, tasks)
            if any(u.status not in RESOLVED for u in ups):
                unresolved = True
            elif all(u.status in USABLE for u in ups):
                members.append((it.item_id, {u.stage: u.key for u in ups}))
        if unresolved:
            tasks[(stage.name, COLLECTION_ITEM)] = Task(stage.name, COLLECTION_ITEM, None, "pending")
            return
        key = self.pipeline.collection_key(stage, members)
        tasks[(stage.name, COLLECTION_ITEM)] = self._observe(stage.name, COLLECTION_ITEM, key)

    # -- reconcile ------------------------------------------------------------------------------------------
    def _payload(self, stage, item_id: str, key: str, tasks) -> dict:
        def entry(it: InputItem) -> dict:
            ups = self._upstream(stage, it.item_id, tasks)
            return {"item_id": it.item_id, "source": str(it.path), "content_hash": it.content_hash,
                    "upstream": {u.stage: (u.item, u.key) for u in ups if u.status in USABLE}}

        if stage.scope == "item":
            items = [entry(next(i for i in self.items if i.item_id == item_id))]
        else:
            items = [entry(it) for it in self.items
                     if all(u.status in USABLE for u in self._upstream(stage, it.item_id, tasks))]
        return {"item_id": item_id, "key": key, "items": items}

    def run(self, executor: Executor | str = "local", workers: int | None = None,
            progress: ProgressFn | None = None, address: str | None = None) -> RunReport:
        """Reconcile. ``executor``: an ``Executor`` or a name for ``make_executor`` (``workers``, ``address``:
        the Ray cluster to connect to)."""
        if "memory" in self.store.artifacts.fs.protocol and executor != "inline" and \
                not isinstance(executor, InlineExecutor):
            from avatarv.errors import ConfigError

            raise ConfigError(f"artifacts on {self.store.artifacts_url} live in this process only: use the inline "
                              "executor, or a filesystem every worker reaches")
        t0 = time.perf_counter()
        report = RunReport()
        self.store.put("pipeline", self.pipeline.specs())  # what `status` lists (a diff does not change it)
        self.store.put("input_dir", str(self.input_dir.resolve()))
        self.store.clear_tmp()
        own = isinstance(executor, str)
        ex = make_executor(executor, workers, address=address) if isinstance(executor, str) else executor
        running: dict = {}  # id(handle) -> (handle, task, cpu)
        used = 0.0
        try:
            report.capacity.append(ex.refresh())
            last_refresh = time.monotonic()
            tasks = self.plan()
            report.adopted = self._adopted
            if progress:
                for t in tasks.values():
                    progress("plan", t)
            changed = True
            while True:
                if changed:
                    for task in self._ready(tasks, running):
                        stage = self.pipeline.by_name[task.stage]
                        cpu = stage.resources.cpu
                        if running and used + cpu > ex.capacity:
                            break
                        payload = self._payload(stage, task.item, task.key, tasks)
                        handle = ex.submit(stage.spec(), self.store.artifacts_url, payload, stage.resources)
                        task.status = "running"
                        running[id(handle)] = (handle, task, cpu)
                        used += cpu
                        report.executed.append((task.stage, task.item))
                        if progress:
                            progress("start", task)
                    report.max_running = max(report.max_running, len(running))
                if not running:
                    break
                changed = False
                for handle in ex.wait([h for h, _, _ in running.values()], timeout=self.poll_s):
                    _, task, cpu = running.pop(id(handle))
                    used -= cpu
                    self._finish(task, ex.result(handle), tasks)
                    changed = True
                    if progress:
                        progress("finish", task)
                for handle, task, cpu, why in self._watch(ex, running):
                    running.pop(id(handle))
                    used -= cpu
                    report.cancelled.append((task.stage, task.item, why))
                    self._finish(task, {"status": "failed", "error": why, "seconds": None}, tasks)
                    changed = True
                    if progress:
                        progress("finish", task)
                if time.monotonic() - last_refresh >= self.refresh_s:
                    cap, last_refresh = ex.refresh(), time.monotonic()
                    if cap != report.capacity[-1]:
                        report.capacity.append(cap)
                        changed = True
            tasks = self.plan()  # final observed state (collection keys are known now)
        finally:
            if own:
                ex.shutdown()
        report.seconds = time.perf_counter() - t0
        for t in tasks.values():
            report.counts.setdefault(t.stage, Counter())[t.status] += 1
            if t.status == "failed":
                report.failures.append(t)
        self.store.put("last_run", {**report.to_json(), "finished": time.time()})
        return report

    def _watch(self, ex: Executor, running: dict) -> list[tuple]:
        """Running tasks past their timeout (hung) or whose heartbeats stopped (lost): cancelled here, returned
        as (handle, task, cpu, why) for the caller to record as failed attempts."""
        if not running or not (self.task_timeout or self.heartbeat_timeout):
            return []
        entries = list(running.values())
        out = []
        # a task is hung when it runs past its limit while still beating; a task without fresh beats is dead
        # (Ray may be retrying it: the retry restarts the clock) or frozen, and the heartbeat rule judges it
        fresh = 3 * (getattr(ex, "heartbeat_s", None) or HEARTBEAT_S)
        for (handle, task, cpu), (age, beat_age) in zip(entries, ex.progress([h for h, _, _ in entries]),
                                                         strict=True):
            stage = self.pipeline.by_name[task.stage]
            limit = getattr(stage, "timeout_s", None)
            if limit is None:
                limit = self.task_timeout if stage.scope == "item" else self.collection_timeout
            why = None
            if limit and age is not None and age > limit and (beat_age is None or beat_age < fresh):
                why = f"timed out: still running after {age:.0f} s (limit {limit:g} s); cancelled"
            elif self.heartbeat_timeout and beat_age is not None and beat_age > self.heartbeat_timeout:
                why = f"lost: no heartbeat for {beat_age:.0f} s (limit {self.heartbeat_timeout:g} s); cancelled"
            if why:
                ex.cancel(handle)
                out.append((handle, task, cpu, why))
        return out

    def _ready(self, tasks, running) -> list[Task]:
        ready = []
        for stage in self.pipeline.stages:
            if stage.scope == "collection" and tasks[(stage.name, COLLECTION_ITEM)].key is None:
                self._plan_collection(stage, tasks)
            for it in ([COLLECTION_ITEM] if stage.scope == "collection" else [i.item_id for i in self.items]):
                task = tasks[(stage.name, it)]
                if task.status != "pending":
                    continue
                if task.key is None and stage.scope == "collection":
                    continue  # its upstream is still running
                if task.key is None:  # an item stage below a collection stage whose key just resolved
                    self._plan_item(stage, next(i for i in self.items if i.item_id == it), tasks)
                    task = tasks[(stage.name, it)]
                    if task.status != "pending" or task.key is None:
                        continue
                ups = self._upstream(stage, it, tasks) if stage.scope == "item" else []
                if any(u.status in ("failed", "blocked") for u in ups):
                    task.status = "blocked"
                elif all(u.status in USABLE for u in ups):
                    ready.append(task)
        return ready

    def _finish(self, task: Task, res: dict, tasks) -> None:
        status = res["status"]
        if status == "failed":
            self.store.record(task.stage, task.item, task.key, "failed", error=res.get("error"),
                              seconds=res.get("seconds"))
            task.attempts += 1
            task.error = res.get("error")
            task.status = "pending" if task.attempts < self.max_attempts else "failed"
        else:
            self.store.record(task.stage, task.item, task.key, status, reason=res.get("reason"),
                              seconds=res.get("seconds"), frames=res.get("frames"))
            task.status, task.reason = status, res.get("reason")

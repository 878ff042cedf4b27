"""Observe, diff, reconcile: run only the tasks whose committed artifact is missing.

``Engine.plan()`` computes the desired state (task keys, ``pipeline.py``) and compares it with the observed
state (``store.py``): every (stage, item) is ``done``, ``unavailable`` (committed with a reason), ``failed``
(attempts used up; ``--retry-failed`` clears them), ``pending`` (will run) or ``blocked`` (an upstream task
failed). ``Engine.run()`` reconciles: it submits ready tasks to the executor while their declared CPUs fit
its capacity, records each result, retries failures up to ``max_attempts`` and unblocks dependants. A run
killed at any point resumes from the artifacts: a task is either committed (kept, never repeated) or not
(run again). A task committed just before the kill but not yet recorded is adopted, not recomputed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from avatarv.data.curation.executors import Executor, make_executor
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

    def to_json(self) -> dict:
        return {"executed": len(self.executed), "adopted": self.adopted, "seconds": round(self.seconds, 3),
                "counts": {s: dict(c) for s, c in self.counts.items()},
                "failures": [{"stage": t.stage, "item": t.item, "error": t.error} for t in self.failures]}


ProgressFn = Callable[[str, Task], None]  # event ("plan" | "start" | "finish"), task


class Engine:
    def __init__(self, pipeline: Pipeline, input_dir: str | Path, out_dir: str | Path, max_attempts: int = 2):
        self.pipeline = pipeline
        self.input_dir = Path(input_dir)
        self.store = StateStore(out_dir)
        self.max_attempts = max_attempts
        self.items: list[InputItem] = discover_inputs(input_dir)

    def close(self) -> None:
        self.store.close()

    # -- observe + diff -------------------------------------------------------------------------------------
    def _observe(self, stage: str, item: str, key: str) -> Task:
        rec = self.store.get(stage, item, key)
        if self.store.has_artifact(stage, item, key):
            art = self.store.load_artifact(stage, item, key)
            status = "done" if art.status == "ok" else art.status
            if rec is None or rec["status"] not in USABLE:  # committed, then killed before the record
                self.store.record(stage, item, key, status, reason=art.reason, count_attempt=False)
                self._adopted += 1
            return Task(stage, item, key, status, rec["attempts"] if rec else 0, reason=art.reason)
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
            progress: ProgressFn | None = None) -> RunReport:
        t0 = time.perf_counter()
        report = RunReport()
        self.store.put("pipeline", self.pipeline.specs())  # what `status` lists (a diff does not change it)
        self.store.put("input_dir", str(self.input_dir.resolve()))
        self.store.clear_tmp()
        own = isinstance(executor, str)
        ex = make_executor(executor, workers) if isinstance(executor, str) else executor
        running: dict = {}  # handle -> (task, cpu)
        used = 0.0
        try:
            tasks = self.plan()
            report.adopted = self._adopted
            if progress:
                for t in tasks.values():
                    progress("plan", t)
            while True:
                ready = self._ready(tasks, running)
                for task in ready:
                    stage = self.pipeline.by_name[task.stage]
                    cpu = stage.resources.cpu
                    if running and used + cpu > ex.capacity:
                        break
                    payload = self._payload(stage, task.item, task.key, tasks)
                    handle = ex.submit(stage.spec(), str(self.store.root), payload, stage.resources)
                    task.status = "running"
                    running[id(handle)] = (handle, task, cpu)
                    used += cpu
                    report.executed.append((task.stage, task.item))
                    if progress:
                        progress("start", task)
                if not running:
                    break
                for handle in ex.wait([h for h, _, _ in running.values()]):
                    _, task, cpu = running.pop(id(handle))
                    used -= cpu
                    self._finish(task, ex.result(handle), tasks)
                    if progress:
                        progress("finish", task)
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

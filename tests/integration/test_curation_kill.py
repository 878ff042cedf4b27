"""Worker failures mid-task: a worker SIGKILLed, a task that hangs, a worker frozen (SIGSTOP, heartbeats stop).
The run completes on the local pool and on local Ray, and the store holds exactly the desired tasks, once each.

The faults are injected by the stage itself on its first attempt at one item (a marker file records that it
fired), so the retry runs clean: like a machine lost once, not a bad input.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from avatarv.data.curation.engine import Engine
from avatarv.data.curation.pipeline import Pipeline
from avatarv.data.curation.stage import Item, Output, Stage
from avatarv.data.curation.store import COLLECTION_ITEM, safe_item_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
ITEMS = 4


class Faulty(Stage):
    """Records each attempt; on its first attempt at an item named in ``faults`` ("item=mode,...") kills
    (SIGKILL), hangs or freezes (SIGSTOP: alive, but its heartbeats stop) its own worker process."""

    name = "faulty"

    @dataclass(frozen=True)
    class Config:
        marker_dir: str = ""
        faults: str = ""

    def process(self, item: Item) -> Output:
        d = Path(self.config.marker_dir)
        (d / f"attempt-{safe_item_dir(item.item_id)}-{os.getpid()}-{uuid.uuid4().hex[:6]}").touch()
        mode = dict(f.split("=") for f in self.config.faults.split(",") if f).get(item.item_id)
        if mode is not None:
            try:
                with open(d / f"fired-{item.item_id}", "x"):
                    pass
            except FileExistsError:
                mode = None  # the retry runs clean
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif mode == "hang":
            time.sleep(600)
        elif mode == "freeze":
            os.kill(os.getpid(), signal.SIGSTOP)
        return Output(values={"item": item.item_id, "hash": item.content_hash},
                      arrays={"code": np.frombuffer(item.content_hash.encode(), np.uint8)})


class Gather(Stage):
    """A collection stage below the faulty one: reads every upstream array."""

    name = "gather"
    inputs = ("faulty",)
    scope = "collection"

    def process(self, items: list[Item]) -> Output:
        codes = [bytes(i.upstream["faulty"].array("code")).decode() for i in items]
        return Output(values={"items": sorted(i.item_id for i in items), "codes": codes})


def _inputs(d: Path) -> Path:
    d.mkdir()
    for i in range(ITEMS):  # the stages never decode: any bytes make an input
        (d / f"v_{i:03d}.mp4").write_bytes(f"video {i}".encode() * 100)
    return d


def _run(tmp_path: Path, executor, faults: dict[str, str], **engine_kw):
    markers = tmp_path / "markers"
    markers.mkdir(parents=True)
    inp = _inputs(tmp_path / "in")
    pipe = Pipeline([Faulty(marker_dir=str(markers), faults=",".join(f"{k}={v}" for k, v in faults.items())),
                     Gather()])
    engine = Engine(pipe, inp, tmp_path / "out", max_attempts=2, poll_s=0.2, **engine_kw)
    report = engine.run(executor)
    return engine, report, markers


def _check_exactly_once(engine: Engine, report, markers: Path, engine_attempts: dict[str, int]) -> None:
    """Every desired task committed once, none extra; ``engine_attempts``: the engine's attempts per faulty
    item (others: 1); the stage ran twice on each faulty item (the fault, then the retry), once elsewhere."""
    assert report.failures == [], [(t.item, t.error) for t in report.failures]
    fired = sorted(p.name[len("fired-"):] for p in markers.glob("fired-*"))
    assert fired == sorted(engine_attempts), "a fault never fired"
    plan = engine.plan()
    desired = {(t.stage, safe_item_dir(t.item), t.key) for t in plan.values()}
    assert len(desired) == ITEMS + 1 and all(t.status == "done" for t in plan.values())
    committed = engine.store.artifacts.committed()
    assert len(committed) == len(set(committed))
    assert set(committed) == desired  # nothing lost, nothing extra (one key directory per task)
    rows = engine.store.rows()
    assert sorted((r["stage"], r["item"]) for r in rows) == sorted(
        [("faulty", f"v_{i:03d}.mp4") for i in range(ITEMS)] + [("gather", COLLECTION_ITEM)])
    assert all(r["status"] == "done" for r in rows)
    assert {r["item"]: r["attempts"] for r in rows if r["stage"] == "faulty"} == {
        f"v_{i:03d}.mp4": engine_attempts.get(f"v_{i:03d}.mp4", 1) for i in range(ITEMS)}
    attempts = Counter(p.name.split("-")[1] for p in markers.glob("attempt-*"))
    assert attempts == {f"v_{i:03d}.mp4": 2 if f"v_{i:03d}.mp4" in engine_attempts else 1 for i in range(ITEMS)}
    gather = engine.store.load_artifact("gather", COLLECTION_ITEM, next(k for s, _, k in committed if s == "gather"))
    assert gather.values["items"] == [f"v_{i:03d}.mp4" for i in range(ITEMS)]
    tmp = Path(engine.store.artifacts.root) / "tmp"
    assert not tmp.exists() or not any(tmp.rglob("*"))


@pytest.mark.slow
def test_local_pool_killed_hung_and_frozen_workers(tmp_path):
    from avatarv.data.curation.executors import LocalExecutor

    faults = {"v_000.mp4": "kill", "v_001.mp4": "hang", "v_002.mp4": "freeze"}
    ex = LocalExecutor(2, heartbeat_s=0.2)
    try:
        engine, report, markers = _run(tmp_path, ex, faults, task_timeout=3.0, heartbeat_timeout=2.0)
    finally:
        ex.shutdown()
    # each fault cost the engine one failed attempt; the retry succeeded
    _check_exactly_once(engine, report, markers, {k: 2 for k in faults})
    assert Counter(report.executed)[("faulty", "v_000.mp4")] == 2
    why = {i: w for _, i, w in report.cancelled}
    assert sorted(why) == ["v_001.mp4", "v_002.mp4"]  # the killed worker is seen dead, not cancelled
    assert "timed out" in why["v_001.mp4"] and "no heartbeat" in why["v_002.mp4"]
    kill = next(r for r in engine.store.rows() if r["item"] == "v_000.mp4")
    assert kill["error"] is None  # the record of the successful retry (the failure was logged before it)


@pytest.mark.slow
def test_ray_worker_sigkilled_and_hung_task(tmp_path):
    ray = pytest.importorskip("ray", reason="the ray executor needs: pip install 'avatarv[scale]'")
    from avatarv.data.curation.executors import RayExecutor

    # workers import this module by name: give them the repository on their path
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}})
    try:
        ex = RayExecutor(heartbeat_s=0.5, max_retries=2)
        assert ex.capacity == 2.0
        engine, report, markers = _run(tmp_path, ex, {"v_000.mp4": "kill", "v_001.mp4": "hang"}, task_timeout=3.0)
    finally:
        ray.shutdown()
    # the lost worker is retried by Ray itself (max_retries): the engine saw one attempt, which succeeded;
    # the hung task is cancelled by the engine (its worker killed) and run again: two attempts
    _check_exactly_once(engine, report, markers, {"v_000.mp4": 1, "v_001.mp4": 2})
    assert Counter(report.executed)[("faulty", "v_000.mp4")] == 1
    assert [(s, i) for s, i, _ in report.cancelled] == [("faulty", "v_001.mp4")]
    assert report.capacity == [2.0]

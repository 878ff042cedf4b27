"""Engine: desired-vs-observed diff, config change reruns only the affected stages, failures are recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from avatarv.data.curation.engine import Engine
from avatarv.data.curation.pipeline import Pipeline, load_pipeline
from avatarv.data.curation.stage import Item, Output, Stage
from avatarv.data.curation.stages.normalise import Normalise
from avatarv.data.curation.stages.prefilter import Prefilter
from avatarv.data.curation.worldset import make_bad_inputs, make_clip_set
from avatarv.errors import ConfigError


class Brightness(Stage):
    """A cheap stage downstream of normalise only (a sibling of prefilter)."""

    name = "brightness"
    inputs = ("normalise",)

    @dataclass(frozen=True)
    class Config:
        gain: float = 1.0

    def process(self, item: Item) -> Output:
        from avatarv.data.curation.stages.common import load_video

        v = load_video(item)
        return Output(values={"mean": round(float(v.frames.mean()) * self.config.gain, 4)})


class Count(Stage):
    """A collection stage over prefilter + brightness."""

    name = "count"
    inputs = ("prefilter", "brightness")
    scope = "collection"

    @dataclass(frozen=True)
    class Config:
        pass

    def process(self, items: list[Item]) -> Output:
        return Output(values={"items": sorted(i.item_id for i in items)},
                      arrays={"frames": np.array([i.upstream["prefilter"].values["frames"] for i in items])})


def _pipeline(prefilter_window=13, gain=1.0, crf=18):
    return Pipeline([Normalise(crf=crf), Prefilter(window=prefilter_window), Brightness(gain=gain), Count()])


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    make_clip_set(d, n=3, seconds=1.2, size=64)
    return d


def _executed(report):
    return sorted({s for s, _ in report.executed}), len(report.executed)


def test_config_change_reruns_only_affected_stages(clips, tmp_path):
    out = tmp_path / "out"
    e = Engine(_pipeline(), clips, out)
    r = e.run("inline")
    assert _executed(r) == (["brightness", "count", "normalise", "prefilter"], 3 * 3 + 1)
    assert e.run("inline").executed == []  # nothing to do: observed == desired
    # prefilter's config: prefilter and the collection stage below it, not normalise nor brightness
    r = Engine(_pipeline(prefilter_window=9), clips, out).run("inline")
    assert _executed(r) == (["count", "prefilter"], 3 + 1)
    # brightness's config: brightness and count
    r = Engine(_pipeline(prefilter_window=9, gain=2.0), clips, out).run("inline")
    assert _executed(r) == (["brightness", "count"], 3 + 1)
    # the first stage: everything
    r = Engine(_pipeline(prefilter_window=9, gain=2.0, crf=20), clips, out).run("inline")
    assert _executed(r) == (["brightness", "count", "normalise", "prefilter"], 10)
    # going back to an earlier config finds its artifacts: nothing runs
    r = Engine(_pipeline(), clips, out).run("inline")
    assert r.executed == []


def test_new_input_runs_only_its_tasks(clips, tmp_path):
    import shutil

    inp = tmp_path / "in"
    shutil.copytree(clips, inp)
    out = tmp_path / "out"
    Engine(_pipeline(), inp, out).run("inline")
    make_clip_set(tmp_path / "more", n=4, seconds=1.2, size=64)
    shutil.copy(tmp_path / "more" / "clip_003.mp4", inp / "clip_003.mp4")
    r = Engine(_pipeline(), inp, out).run("inline")
    assert sorted(r.executed) == sorted([(s, "clip_003.mp4") for s in ("normalise", "prefilter", "brightness")]
                                        + [("count", "_all")])


def test_bad_inputs_are_recorded_and_the_run_completes(clips, tmp_path):
    import shutil

    inp = tmp_path / "in"
    shutil.copytree(clips, inp)
    make_bad_inputs(inp)
    out = tmp_path / "out"
    e = Engine(_pipeline(), inp, out, max_attempts=2)
    r = e.run("local", workers=2)
    failed = {t.item: t.error for t in r.failures}
    assert set(failed) == {"bad_corrupt.mp4", "bad_truncated.mp4", "bad_no_audio.mp4"}
    assert "no audio" in failed["bad_no_audio.mp4"]
    assert all(failed.values())
    assert r.counts["normalise"]["done"] == 3 and r.counts["prefilter"]["blocked"] == 3
    assert r.counts["count"]["done"] == 1
    count = json.loads(next((out / "artifacts" / "count").rglob("values.json")).read_text())
    assert count["values"]["items"] == ["clip_000.mp4", "clip_001.mp4", "clip_002.mp4"]
    # bounded retries: each bad file was tried max_attempts times, and a new run does not try again
    assert sum(1 for s, i in r.executed if i.startswith("bad_")) == 3 * 2
    r2 = Engine(_pipeline(), inp, out, max_attempts=2).run("inline")
    assert r2.executed == []
    rows = [row for row in e.store.rows() if row["status"] == "failed"]
    assert {row["attempts"] for row in rows} == {2}


def test_toml_pipeline_and_errors(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('[[stage]]\nuse = "normalise"\nconfig = { max_side = 320 }\n\n[[stage]]\nuse = "prefilter"\n')
    pipe = load_pipeline(p)
    assert [s.name for s in pipe.stages] == ["normalise", "prefilter"]
    assert pipe.stages[0].config.max_side == 320
    assert pipe.dependants("normalise") == ["prefilter"]
    with pytest.raises(ConfigError, match="unknown config"):
        Normalise(max_sid=3)
    with pytest.raises(ConfigError, match="needs"):
        Pipeline([Prefilter()])
    p.write_text('[[stage]]\nuse = "nosuch"\n')
    with pytest.raises(ConfigError, match="unknown stage"):
        load_pipeline(p)


class Nap(Stage):
    """Sleeps, then returns the item's content hash (the capacity test watches how many nap at once)."""

    name = "nap"

    @dataclass(frozen=True)
    class Config:
        seconds: float = 0.3

    def process(self, item: Item) -> Output:
        import time

        time.sleep(self.config.seconds)
        return Output(values={"hash": item.content_hash}, arrays={"n": np.arange(3)})


class Total(Stage):
    """A collection stage that reads every upstream array (through the artifact store's local copies)."""

    name = "total"
    inputs = ("nap",)
    scope = "collection"

    def process(self, items: list[Item]) -> Output:
        return Output(values={"sum": int(sum(i.upstream["nap"].array("n").sum() for i in items)),
                              "items": sorted(i.item_id for i in items)})


def _dummy_inputs(d, n):
    d.mkdir()
    for i in range(n):  # nap never decodes: any bytes make an input
        (d / f"v{i}.mp4").write_bytes(bytes([i]) * 64)
    return d


class Elastic:
    """A thread-pool executor whose capacity grows from 1 to 3 CPUs on the third ``refresh`` (a node joins)."""

    def __init__(self):
        import concurrent.futures as cf
        import threading

        from avatarv.data.curation.executors import run_task

        self._run, self._pool, self._lock = run_task, cf.ThreadPoolExecutor(4), threading.Lock()
        self.capacity, self.refreshes, self.now, self.peak_before = 1.0, 0, 0, 0
        self.peak = 0

    def _task(self, spec, root, payload):
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            if self.capacity == 1.0:
                self.peak_before = max(self.peak_before, self.now)
        try:
            return self._run(spec, root, payload)
        finally:
            with self._lock:
                self.now -= 1

    def submit(self, spec, root, payload, resources):
        return self._pool.submit(self._task, spec, root, payload)

    def wait(self, handles, timeout=None):
        import concurrent.futures as cf

        return list(cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)[0])

    def result(self, handle):
        return handle.result()

    def progress(self, handles):
        return [(None, None)] * len(handles)

    def cancel(self, handle):
        handle.cancel()

    def refresh(self):
        self.refreshes += 1
        if self.refreshes >= 3:
            self.capacity = 3.0
        return self.capacity

    def shutdown(self):
        self._pool.shutdown()


def test_capacity_is_reread_during_the_run(tmp_path):
    inp = _dummy_inputs(tmp_path / "in", 9)
    ex = Elastic()
    engine = Engine(Pipeline([Nap(seconds=0.3)]), inp, tmp_path / "out", refresh_s=0.1, poll_s=0.05)
    r = engine.run(ex)
    ex.shutdown()
    assert r.failures == [] and r.counts["nap"]["done"] == 9
    assert r.capacity == [1.0, 3.0]  # re-read, and the change recorded
    assert ex.peak_before == 1 and ex.peak == 3 and r.max_running == 3  # it filled what joined, never more


def test_artifacts_on_an_fsspec_url(tmp_path, capsys):
    """The store writes and reads through fsspec (memory:// here; s3:// on a cluster): nothing lands in the
    local output folder but the task records, and a later StateStore finds the URL again."""
    import fsspec

    from avatarv.data.curation.store import StateStore

    url = f"memory://curation-{tmp_path.name}"
    inp = _dummy_inputs(tmp_path / "in", 3)
    out = tmp_path / "out"
    engine = Engine(Pipeline([Nap(seconds=0.0), Total()]), inp, out, artifacts=url)
    r = engine.run("inline")
    assert r.failures == [] and len(r.executed) == 4
    fs = fsspec.filesystem("memory")
    committed = engine.store.artifacts.committed()
    assert {(s, i) for s, i, _ in committed} == {("nap", "v0.mp4"), ("nap", "v1.mp4"), ("nap", "v2.mp4"),
                                                 ("total", "_all")}
    for s, i, k in committed:  # values.json is the commit marker; the arrays beside it
        assert fs.isfile(f"/curation-{tmp_path.name}/artifacts/{s}/{i}/{k}/values.json")
    assert not (out / "artifacts").exists() and (out / "state.sqlite").is_file()
    engine.close()
    store = StateStore(out)
    assert store.artifacts_url == url
    total = next(k for s, _, k in committed if s == "total")
    assert store.load_artifact("total", "_all", total).values == {"sum": 9, "items": ["v0.mp4", "v1.mp4", "v2.mp4"]}
    store.close()
    assert Engine(Pipeline([Nap(seconds=0.0), Total()]), inp, out).run("inline").executed == []  # all observed
    from avatarv.cli import main

    with pytest.raises(ConfigError, match="live in this process only"):  # workers could not see it
        Engine(Pipeline([Nap(seconds=0.0), Total()]), inp, out).run("local", workers=1)
    assert main(["curate", "status", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"artifacts: {url}" and any(ln.split()[:3] == ["nap", "done", "3"] for ln in lines)
    fs.rm(f"/curation-{tmp_path.name}", recursive=True)


def test_cli_address_needs_ray(tmp_path, capsys):
    from avatarv.cli import main

    inp = _dummy_inputs(tmp_path / "in", 1)
    rc = main(["curate", "run", "prefilter", "--input", str(inp), "--out", str(tmp_path / "out"),
               "--address", "10.0.0.1:6379", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "--address is for --executor ray" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_object_store_commit_marker_and_io_errors(tmp_path, monkeypatch):
    """Without a rename, values.json is uploaded last: files without it are not a commit, and the retry
    overwrites them. An I/O failure of the store is a StoreIOError: Ray retries it, others record it."""
    import fsspec

    from avatarv.data.curation.executors import run_task
    from avatarv.data.curation.stage import Output
    from avatarv.data.curation.store import ArtifactStore, StoreIOError

    url = f"memory://commit-{tmp_path.name}"
    store = ArtifactStore(url)
    fs = fsspec.filesystem("memory")
    part = store.path("nap", "a/b.mp4", "k1")
    fs.pipe_file(f"{part}/n.npy", b"half an upload")  # a worker killed mid-upload
    assert not store.exists("nap", "a/b.mp4", "k1") and store.committed() == []
    out = Output(values={"x": 1}, arrays={"n": np.arange(4)})
    store.commit("nap", "a/b.mp4", "k1", out)
    assert store.committed() == [("nap", "a__b.mp4", "k1")]
    art = store.load("nap", "a/b.mp4", "k1")  # through the local cache
    assert art.values == {"x": 1} and np.array_equal(art.array("n"), np.arange(4))
    local = ArtifactStore(tmp_path / "local")
    local.commit("nap", "a/b.mp4", "k1", out)
    for name in ("values.json", "n.npy"):  # the same bytes on every filesystem
        assert (Path(local.path("nap", "a/b.mp4", "k1")) / name).read_bytes() == fs.cat_file(f"{part}/{name}")

    def broken(*a, **k):
        raise ConnectionError("connection reset by peer")

    monkeypatch.setattr(fs, "pipe_file", broken)
    with pytest.raises(StoreIOError, match="cannot commit nap/a/b.mp4/k2"):
        store.commit("nap", "a/b.mp4", "k2", out)
    spec = Nap(seconds=0.0).spec()
    payload = {"item_id": "v.mp4", "key": "k3", "items": [{"item_id": "v.mp4", "source": "/nonexistent",
                                                           "content_hash": "h", "upstream": {}}]}
    res = run_task(spec, url, payload)
    assert res["status"] == "failed" and "StoreIOError" in res["error"] and "connection reset" in res["error"]
    with pytest.raises(StoreIOError):
        run_task(spec, url, payload, raise_io=True)
    fs.rm(f"/commit-{tmp_path.name}", recursive=True)

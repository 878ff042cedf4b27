"""Engine: desired-vs-observed diff, config change reruns only the affected stages, failures are recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass

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

"""The world cross-scene benchmark end to end: make-bench (3 cases), the runner with the passthrough system and
every metric (world SyncNet, world identity, classical quality, behaviour), the HTML report."""

from __future__ import annotations

import json

import pytest

from avatarv.cli import main
from avatarv.eval.benchmark import Manifest
from avatarv.eval.world_bench import SPLIT_70, split


def test_split_follows_the_three_conditions():
    assert {s: split(70).count(s) for s in SPLIT_70} == SPLIT_70
    assert split(3) == ["same", "cross", "generated"]


@pytest.mark.slow
def test_world_bench_passthrough_end_to_end(tmp_path, capsys):
    bench, out = tmp_path / "bench", tmp_path / "out"
    assert main(["eval", "make-bench", "--out", str(bench), "--cases", "3", "--seconds", "3"]) == 0
    m = Manifest.load(bench)
    assert [c.scene for c in m.cases] == ["same", "cross", "generated"]
    assert m.eval_options["world"] and m.eval_options["min_face_size"] < 40
    traits = json.loads((bench / "traits" / "c001.json").read_text())
    assert traits["reference_scene"] != traits["target_scene"]
    capsys.readouterr()
    assert main(["eval", "run", "--bench", str(bench), "--system", "passthrough", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) >= {"sync_c", "sync_d", "sync_offset", "face_sim", "quality", "behaviour"}
    for case in ("c000", "c001", "c002"):
        c = json.loads((out / "cases" / f"{case}.json").read_text())
        assert not c["meta"].get("errors"), c["meta"]
        assert c["meta"]["face_backend"] == "world" and c["metrics"]["face_sim"] > 0.6
        assert c["metrics"]["sync_c"] > 1.0 and abs(c["metrics"]["sync_offset"]) <= 4  # ground truth: in sync
    page = (out / "report" / "index.html").read_text()
    assert "Sync-C ↑" in page and "Face Sim ↑" in page and "generated-scene" in page
    assert (out / "report" / "distributions.png").stat().st_size > 5000
    assert len(list((out / "report" / "thumbs").glob("*.jpg"))) == 9

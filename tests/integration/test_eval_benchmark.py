"""The benchmark manifest and runner on a 2-case benchmark made of real clips (passthrough system)."""

from __future__ import annotations

import json
import shutil

import pytest

from avatarv.cli import main
from avatarv.errors import InputError
from avatarv.eval.benchmark import BenchmarkCase, Manifest


def _bench(tmp_path, real_clips):
    woman, man = real_clips[2], real_clips[0]  # woman_glasses_red_jacket (4.9 s), man_suit_office
    root = tmp_path / "bench"
    (root / "clips").mkdir(parents=True)
    for clip in (woman, man):
        shutil.copy(clip, root / "clips" / clip.name)  # a temporary copy inside the test's folder only
    cases = [
        BenchmarkCase("c000", "woman", "same", root / "clips" / woman.name, root / "clips" / woman.name),
        # the reference is somebody else: face similarity of the (passthrough) output must drop
        BenchmarkCase("c001", "mismatch", "cross", root / "clips" / man.name, root / "clips" / woman.name),
    ]
    Manifest("real-2", cases, root).save()
    return root


def test_manifest_round_trip_and_validation(tmp_path, real_clips):
    root = _bench(tmp_path, real_clips)
    m = Manifest.load(root)
    assert [c.case_id for c in m.cases] == ["c000", "c001"] and m.cases[1].scene == "cross"
    data = json.loads((root / "manifest.json").read_text())
    assert data["cases"][0]["reference"] == "clips/woman_glasses_red_jacket.mp4"  # relative paths
    data["cases"][1]["scene"] = "elsewhere"
    (root / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="c001: scene 'elsewhere'"):
        Manifest.load(root)
    data["cases"][1]["scene"] = "generated"
    (root / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="needs its scene_image"):
        Manifest.load(root)
    data["cases"][1].update(scene="cross", driving="clips/missing.mp4")
    (root / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="driving file missing"):
        Manifest.load(root)


def test_runner_passthrough_writes_cases_and_summary(tmp_path, real_clips, capsys):
    root = _bench(tmp_path, real_clips)
    out = tmp_path / "out"
    assert main(["eval", "run", "--bench", str(root), "--system", "passthrough", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    c0 = json.loads((out / "cases" / "c000.json").read_text())
    c1 = json.loads((out / "cases" / "c001.json").read_text())
    assert c0["metrics"]["face_sim"] > 0.95 > c1["metrics"]["face_sim"]
    assert len(c0["per_frame"]["face_sim"]) == 10  # 4.88 s at 2 fps
    assert c0["meta"]["quality_backend"] == "classical-nr" and 1 <= c0["metrics"]["quality"] <= 5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["system"] == "passthrough" and summary["cases"] == ["c000", "c001"]
    assert summary["summary"]["face_sim"]["n"] == 2 and set(summary["by_scene"]) == {"same", "cross"}
    assert printed["face_sim"]["mean"] == pytest.approx(summary["summary"]["face_sim"]["mean"])

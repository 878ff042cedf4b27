"""``avatarv world`` end to end on tiny configurations."""

from __future__ import annotations

import json

import cv2
import numpy as np

from avatarv.world.cli import app


def _run(args):
    # the world group alone (the top-level CLI imports every part of the project)
    from avatarv.cli import main

    return main(["world", *args])


def test_world_make_writes_clips_and_manifest(tmp_path):
    out = tmp_path / "ds"
    rc = _run(["make", "--identities", "2", "--scenes", "2", "--clips", "4", "--seconds", "1", "--size", "64",
               "--seed", "3", "--desync", "0.5", "--out", str(out)])
    assert rc == 0
    doc = json.loads((out / "manifest.json").read_text())
    assert len(doc["clips"]) == 4 and set(doc["identities"]) == {"0", "1"}
    assert doc["cross_scene_pairs"], "every identity appears in two scenes"
    for c in doc["clips"]:
        for key in ("video", "labels", "meta"):
            assert (out / c[key]).is_file()
        with np.load(out / c["labels"]) as lab:
            assert lab["landmarks"].shape == (25, 68, 2)
    from avatarv.media import read_video

    video = read_video(out / doc["clips"][0]["video"])
    assert video.frames.shape[0] == 25 and video.frames.shape[1:3] == (64, 64)
    assert video.audio is not None and abs(len(video.audio) - 16000) < 1600


def test_world_sheet_and_errors(tmp_path, capsys):
    png = tmp_path / "sheet.png"
    assert _run(["sheet", "--identities", "2", "--scenes", "3", "--cell", "64", "--out", str(png)]) == 0
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 2 * 64 and img.shape[1] > 3 * 64
    assert _run(["sheet", "--out", str(tmp_path / "sheet.jpg")]) == 2
    assert _run(["make", "--size", "65", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "avatarv:" in err and "65" in err
    assert not (tmp_path / "x" / "manifest.json").exists()


def test_world_raw_cli(tmp_path):
    out = tmp_path / "raw"
    assert _run(["raw", "--seconds", "8", "--size", "64", "--identities", "3", "--scenes", "3", "--out", str(out)]) == 0
    index = json.loads((out / "raw_index.json").read_text())
    assert index[0]["video"] == "raw_000.mp4" and (out / "raw_000.json").is_file()


def test_app_is_a_typer_group():
    import typer

    assert isinstance(app, typer.Typer)

"""Content filter: the world's labelled screencast, game and photo shots are told apart from talking shots
(through an h264 round trip), none of the five real clips is flagged, and the VLM path is an honest interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatarv.data.curation.stage import Artifact, Item
from avatarv.data.curation.stages import content
from avatarv.data.curation.stages.content import KINDS, Content, parse_vlm_answer

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "real" / "clips"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from avatarv.world.raw import make_raw

    raw = make_raw(seconds=24.0, size=96, seed=3, index=1, identities=4, scenes=4,
                   defects=("screencast", "game", "photo", "static"), duplicates=())
    out = tmp_path_factory.mktemp("content")
    path = raw.save(out, "raw_000")
    shots = [[s["start"], s["end"]] for s in raw.shots]
    return raw, path, Content().process(_item(path, shots))


def _item(path: Path, shots: list[list[int]]) -> Item:
    return Item(path.name, path, "0", {"scenes": Artifact("scenes", path.parent, {"shots": shots})})


def test_world_content_shots_are_labelled_as_made(world):
    raw, path, out = world
    assert out.status == "ok"
    labels = {s["start"]: s["label"] for s in out.values["shots"]}
    kinds = [k for k in ("screencast", "game", "photo", "static") if any(s["defect"] == k for s in raw.shots)]
    assert len(kinds) == 4, f"the world video lacks a kind: {[s['defect'] for s in raw.shots]}"
    for s in raw.shots:
        want = s["defect"] if s["defect"] in KINDS else "camera"
        assert labels[s["start"]] == want, (s, out.values["shots"])
    # the flags are the labelled frames exactly (whole shots)
    for k in KINDS:
        truth = np.zeros(len(raw.frames), bool)
        for s in raw.shots:
            if s["defect"] == k:
                truth[s["start"] : s["end"]] = True
        flagged = np.zeros(len(raw.frames), bool)
        for a, b in out.values[k]:
            flagged[a:b] = True
        assert (flagged == truth).all(), k


def test_photo_needs_the_whole_shot_still(world):
    """A frozen stretch inside a talking shot (the prefilter's static) is not a photo: still for a part only."""
    raw, _, out = world
    static = next(i for i in raw.intervals if i.type == "static")
    shot = next(s for s in out.values["shots"] if s["start"] <= static.start < s["end"])
    assert shot["label"] == "camera"
    assert 0.2 < shot["still_fraction"] < 0.9


def test_faces_veto_graphics_and_a_faceless_photo(world, tmp_path):
    """With a faces artifact: a rigid still without a face is not a photo (an empty room under a pan is the
    faces stage's "no person"), and a screen or game shot showing one face throughout is neither."""
    raw, path, _ = world
    n = len(raw.frames)
    np.save(tmp_path / "n_faces.npy", raw.n_faces)  # the world's truth: 0 on screen / game, 1 elsewhere
    shots = [[s["start"], s["end"]] for s in raw.shots]
    item = _item(path, shots)
    item.upstream["faces"] = Artifact("faces", tmp_path, {})
    labels = [s["label"] for s in Content().process(item).values["shots"]]
    assert labels == [s["defect"] if s["defect"] in KINDS else "camera" for s in raw.shots]  # truth: unchanged
    np.save(tmp_path / "n_faces.npy", np.where(raw.n_faces == 1, 0, 1)[:n])  # faces swapped
    labels = [s["label"] for s in Content().process(item).values["shots"]]
    assert "photo" not in labels and "screencast" not in labels and "game" not in labels


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/real/clips not present (real fixtures live outside the repo)")
def test_no_real_clip_is_flagged(monkeypatch):
    """The first 4 s of each real clip (the rules are per shot: 4 s is a whole shot to them)."""
    from avatarv.media import read_video

    clips = sorted(REAL.glob("*.mp4"))
    assert len(clips) == 5
    for clip in clips:
        video = read_video(clip, fps=25.0)
        video.frames = video.frames[:100]
        monkeypatch.setattr(content, "load_video", lambda item, v=video: v)
        out = Content().process(Item(clip.name, clip, "0"))
        assert [s["label"] for s in out.values["shots"]] == ["camera"], (clip.name, out.values["shots"])


def test_vlm_interface(tmp_path):
    assert parse_vlm_answer("Game.") == "game"
    assert parse_vlm_answer("It looks like a screencast, not a photo") == "screencast"
    assert parse_vlm_answer("I don't know") == "camera"
    stage = Content(vlm_path=str(tmp_path / "missing"))
    assert "does not exist" in stage.unavailable()
    out = stage.process(Item("x.mp4", tmp_path / "x.mp4", "0"))
    assert out.status == "unavailable" and "missing" in out.reason
    (tmp_path / "empty").mkdir()
    assert "config.json" in Content(vlm_path=str(tmp_path / "empty")).unavailable()
    assert Content().unavailable() is None


def test_vlm_answers_become_shot_flags(world, monkeypatch):
    """With a model folder, each shot's middle frame is asked and the answer sets the shot's flag."""
    raw, path, _ = world
    asked = []

    class FakeVLM:
        def __init__(self, folder):
            pass

        def ask(self, frame):
            asked.append(frame.shape)
            return ["camera", "A video game.", "photo"][len(asked) % 3]

    monkeypatch.setattr(content, "LocalVLM", FakeVLM)
    monkeypatch.setattr(content, "vlm_missing", lambda p: None)
    shots = [[0, 50], [50, 100], [100, 150]]
    out = Content(vlm_path="/models/vlm").process(_item(path, shots))
    assert out.values["method"] == "vlm" and len(asked) == 3
    assert out.values["game"] == [[0, 50]] and out.values["photo"] == [[50, 100]] and out.values["screencast"] == []

"""The world cross-scene benchmark end to end: make-bench (3 cases), the runner with the passthrough system and
every metric (world SyncNet, world identity, classical quality, behaviour), the HTML report."""

from __future__ import annotations

import json

import pytest

from avatarv.cli import main
from avatarv.config import get_preset
from avatarv.eval.benchmark import Manifest
from avatarv.eval.world_bench import SPLIT_70, split


def test_split_follows_the_three_conditions():
    assert {s: split(70).count(s) for s in SPLIT_70} == SPLIT_70
    assert split(3) == ["same", "cross", "generated"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    bench = tmp_path_factory.mktemp("world") / "bench"
    assert main(["eval", "make-bench", "--out", str(bench), "--cases", "3", "--seconds", "3"]) == 0
    return bench


def test_pipeline_adapter_image_reference_ablation(bench, tmp_path):
    """Our pipeline (random tiny weights, 0.6 s) through the runner, with the reference cut to one frame."""
    from avatarv.eval.benchmark import get_system, run_benchmark
    from avatarv.media import read_video

    m = Manifest.load(bench)
    m.cases = m.cases[:2]  # same, cross
    system = get_system("avatarv-image-ref", preset="tiny", steps=1, max_seconds=0.6)
    summary = run_benchmark(m, system, tmp_path / "out", metrics=[], progress=False)
    video = read_video(tmp_path / "out" / "videos" / "c000.mp4", fps=25.0, require_audio=True)
    assert summary["system"] == "avatarv-image-ref" and video.num_frames == 15 and len(video.audio) == 9600
    meta = json.loads((tmp_path / "out" / "cases" / "c000.json").read_text())["meta"]
    assert meta["reference_frames"] == 1 and meta["scene_image_used"] is False  # same scene: the reference's
    meta = json.loads((tmp_path / "out" / "cases" / "c001.json").read_text())["meta"]
    assert meta["scene_image_used"] is True  # cross scene: the target scene is given as the scene image
    assert (tmp_path / "out" / "report" / "index.html").is_file()


def test_pipeline_system_writes_its_motion_stream(bench, tmp_path, monkeypatch):
    """A generated stream beside the video is what ``motion_behaviour`` reads (not the video's pixels)."""
    from dataclasses import replace

    import torch

    from avatarv.eval.benchmark import behaviour_metric, get_system, run_benchmark
    from avatarv.models.dit import VideoRefDiT
    from avatarv.pipelines import generate as gen
    from avatarv.pipelines.motion_track import load_motion_track

    def random16(cls, preset="tiny", seed=0, refiner=False):  # tiny, with a stream wide enough for behaviour
        cfg = get_preset(preset)
        cfg = replace(cfg, dit=replace(cfg.dit, motion_dim=16))
        torch.manual_seed(seed)
        return cls(cfg, gen._live(VideoRefDiT(cfg.dit)), gen.VideoVAE(cfg.vae), random_weights=True)

    monkeypatch.setattr(gen.AvatarPipeline, "random", classmethod(random16))
    m = Manifest.load(bench)
    m.cases = m.cases[:2]
    system = get_system("avatarv", preset="tiny", steps=1, max_seconds=2.0)
    summary = run_benchmark(m, system, tmp_path / "out", metrics=[behaviour_metric()], progress=False, report=False)
    assert summary["motion_behaviour_identification"]["trials"] == 2
    for case in ("c000", "c001"):
        c = json.loads((tmp_path / "out" / "cases" / f"{case}.json").read_text())
        assert not c["meta"].get("errors"), c["meta"]
        assert c["meta"]["motion_behaviour_source"] == "generated stream"
        track, _ = load_motion_track(tmp_path / "out" / "videos" / f"{case}.motion.npz")
        assert len(track["pitch"]) == 50
        assert c["meta"]["motion_behaviour_stats"] != c["meta"]["behaviour_stats"]


def test_run_resumes_finished_cases(bench, tmp_path):
    """A rerun keeps the videos the same system finished and scores them again; another system (here: other
    sampling steps) or a damaged case file generates again; ``resume=False`` generates everything."""
    from avatarv.eval.benchmark import get_system, run_benchmark

    m = Manifest.load(bench)
    m.cases = m.cases[:2]
    scored = []

    def metric(case, video, result):
        scored.append(case.case_id)
        result.metrics["frames_bytes"] = float(video.stat().st_size)

    def run(steps=1, **kw):
        system = get_system("avatarv", preset="tiny", steps=steps, max_seconds=0.6)
        made = []
        generate = system.generate
        system.generate = lambda case, d: made.append(case.case_id) or generate(case, d)
        run_benchmark(m, system, tmp_path / "out", metrics=[metric], progress=False, report=False, **kw)
        return made

    assert run() == ["c000", "c001"]
    video = tmp_path / "out" / "videos" / "c000.mp4"
    stamp = video.stat().st_mtime_ns
    scored.clear()
    assert run() == [] and scored == ["c000", "c001"]  # nothing generated, everything scored
    assert video.stat().st_mtime_ns == stamp
    c = json.loads((tmp_path / "out" / "cases" / "c000.json").read_text())
    assert c["meta"]["reference_frames"] > 1 and c["meta"]["video"] == str(video)  # the system's meta kept
    (tmp_path / "out" / "cases" / "c001.json").write_text("{broken")
    assert run() == ["c001"]
    assert run(steps=2) == ["c000", "c001"]  # another run of the system: its cases are not ours to keep
    assert run(steps=2, resume=False) == ["c000", "c001"]


def test_behaviour_identification_of_a_run(tmp_path):
    from pathlib import Path

    from avatarv.eval.benchmark import behaviour_identification_of_run
    from avatarv.eval.protocol import CaseResult

    refs = {Path("a.mp4"): {"blink_rate": 0.1, "nod_amp": 1.0}, Path("b.mp4"): {"blink_rate": 0.5, "nod_amp": 4.0}}
    results = [CaseResult("c0", meta={"behaviour_stats": {"blink_rate": 0.12, "nod_amp": 1.1},
                                      "behaviour_reference": "a.mp4"}),
               CaseResult("c1", meta={"behaviour_stats": {"blink_rate": 0.11, "nod_amp": 0.9},
                                      "behaviour_reference": "b.mp4"})]
    out = behaviour_identification_of_run(results, refs)
    # c0 ranks a first (hit, percentile 1), c1 ranks its own b last (miss, percentile 0)
    assert out == pytest.approx({"accuracy": 0.5, "chance": 0.5, "k": 2, "trials": 2, "mean_percentile": 0.5,
                                 "mean_margin": (results[0].meta["behaviour_rank"]["margin"]
                                                 + results[1].meta["behaviour_rank"]["margin"]) / 2})
    assert results[0].meta["behaviour_rank"]["hit"] == 1.0 and results[0].meta["behaviour_rank"]["margin"] > 0
    assert results[1].meta["behaviour_rank"]["percentile"] == 0.0 and results[1].meta["behaviour_rank"]["margin"] < 0
    assert behaviour_identification_of_run(results, {Path("a.mp4"): refs[Path("a.mp4")]}) is None


@pytest.mark.slow
def test_world_bench_passthrough_end_to_end(bench, tmp_path, capsys):
    out = tmp_path / "out"
    m = Manifest.load(bench)
    assert [c.scene for c in m.cases] == ["same", "cross", "generated"]
    assert m.eval_options["world"] and m.eval_options["min_face_size"] < 40
    traits = json.loads((bench / "traits" / "c001.json").read_text())
    assert traits["reference_scene"] != traits["target_scene"]
    capsys.readouterr()
    assert main(["eval", "run", "--bench", str(bench), "--system", "passthrough", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) >= {"sync_c", "sync_d", "sync_offset", "face_sim", "quality", "behaviour", "motion_behaviour"}
    summary = json.loads((out / "summary.json").read_text())
    for key in ("behaviour_identification", "motion_behaviour_identification"):
        ident = summary[key]
        assert ident["k"] == 3 and ident["trials"] == 3 and 0 <= ident["accuracy"] <= 1
    for case in ("c000", "c001", "c002"):
        c = json.loads((out / "cases" / f"{case}.json").read_text())
        assert not c["meta"].get("errors"), c["meta"]
        # no generated motion stream beside ground truth: its pixels are read through the stream's representation
        assert c["meta"]["motion_behaviour_source"] == "pixels" and "motion_behaviour_rank" in c["meta"]
        # the mouth's level in both spaces: a world person opens 0.45–1.35 × 0.75 per unit of loudness
        for space in ("behaviour_stats", "motion_behaviour_stats"):
            assert 0.2 < c["meta"][space]["mouth_level"] < 1.5, c["meta"][space]
        # same identity across scenes: held-out frame pairs average 0.79, different identities 0.00
        assert c["meta"]["face_backend"] == "world" and c["metrics"]["face_sim"] > 0.4
        assert c["metrics"]["sync_c"] > 1.0 and abs(c["metrics"]["sync_offset"]) <= 4  # ground truth: in sync
    page = (out / "report" / "index.html").read_text()
    assert "Sync-C ↑" in page and "Face Sim ↑" in page and "generated-scene" in page
    assert "Behaviour (motion stream) ↑" in page
    assert (out / "report" / "distributions.png").stat().st_size > 5000
    assert len(list((out / "report" / "thumbs").glob("*.jpg"))) == 9


@pytest.mark.slow
def test_driving_boxes_measure_an_output_the_detector_misses(bench, tmp_path):
    """A blurred output (as our small VAE decodes faces) loses its face to dlib HOG; with the driving clip's
    boxes identity and SyncNet still score it, lower than the sharp clip. On the driving clip itself both ways
    give the same numbers."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    from avatarv.errors import InputError
    from avatarv.eval.benchmark import face_metric, sync_metric
    from avatarv.eval.identity import get_identity_embedder
    from avatarv.eval.protocol import CaseResult
    from avatarv.eval.world_syncnet import load_sync_model
    from avatarv.media import read_video, write_mp4

    case = Manifest.load(bench).cases[1]
    clip = read_video(case.driving, fps=25.0, require_audio=True)
    blurred = np.stack([gaussian_filter(f, (6, 6, 0)) for f in clip.frames])  # HOG finds no face at sigma 6
    out = tmp_path / "blurred.mp4"
    write_mp4(out, blurred, 25.0, clip.audio)
    embedder, model = get_identity_embedder("world"), load_sync_model(None)
    mfs = Manifest.load(bench).eval_options["min_face_size"]

    def score(video, boxes):
        r = CaseResult("c", meta={})
        for metric in (face_metric(embedder, boxes=boxes), sync_metric(model, boxes=boxes, min_face_size=mfs)):
            try:
                metric(case, video, r)
            except InputError as err:  # the detect path raises when it finds no face track
                r.meta.setdefault("errors", []).append(str(err))
        return r

    sharp_detect, sharp_driving = score(case.driving, "detect"), score(case.driving, "driving")
    for key in ("face_sim", "sync_c"):
        assert sharp_detect.metrics[key] == pytest.approx(sharp_driving.metrics[key], abs=1e-6), key
    blur_detect, blur_driving = score(out, "detect"), score(out, "driving")
    assert "sync_c" not in blur_detect.metrics and blur_detect.meta["errors"]  # the detector lost the face
    assert np.isfinite(blur_driving.metrics["face_sim"]) and "sync_c" in blur_driving.metrics
    assert blur_driving.metrics["face_sim"] < sharp_driving.metrics["face_sim"]
    assert blur_driving.meta["face_boxes"] == "driving" and blur_driving.meta["sync_boxes"] == "driving"
    with pytest.raises(InputError, match="face boxes"):
        face_metric(embedder, boxes="labels")

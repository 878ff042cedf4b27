"""benchmarks/thesis.py: the tables behind the thesis figure (the statistics themselves, bootstrap CI, paired
sign-flip test, r: ``avatarv.eval.stats``, tested in test_eval_stats.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def thesis():
    return load_benchmark("thesis")


def test_load_run_ranks_each_case_against_all_references(thesis, tmp_path):
    refs = {"/r/a.mp4": {"blink_rate": 0.0, "nod_amp": 1.0}, "/r/b.mp4": {"blink_rate": 30.0, "nod_amp": 4.0}}
    cases = tmp_path / "cases"
    cases.mkdir()
    motion_refs = {"/r/a.mp4": {"blink_rate": 0.0}, "/r/b.mp4": {"blink_rate": 2.0}}  # motion-stream space
    for cid, ref, stats in (("c0", "/r/a.mp4", {"blink_rate": 1.0, "nod_amp": 1.0}),
                            ("c1", "/r/b.mp4", {"blink_rate": 2.0, "nod_amp": 1.0})):
        (cases / f"{cid}.json").write_text(json.dumps({"case_id": cid, "metrics": {"sync_c": 5.0, "face_sim": None},
                                                       "meta": {"behaviour_stats": stats, "behaviour_reference": ref,
                                                                "motion_behaviour_stats": {"blink_rate": 1.9}}}))
    run = thesis.load_run(thesis.read_cases(tmp_path), refs, motion_refs)
    assert run["c0"]["hit"] == 1.0 and run["c1"]["hit"] == 0.0
    # each space ranks against its own references: the stream's blink rate 1.9 is b's, not a's
    assert run["c0"]["motion_hit"] == 0.0 and run["c1"]["motion_hit"] == 1.0
    assert run["c1"]["motion_margin"] > 0 > run["c0"]["motion_margin"]
    assert np.isnan(run["c0"]["motion_behaviour"])  # not in the case's metrics: NaN, not an error
    assert np.isnan(run["c0"]["face_sim"]) and run["c0"]["sync_c"] == 5.0
    table = thesis.summarise({"x": run})
    assert table["x"]["percentile"]["mean"] == 0.5 and table["x"]["face_sim"]["n"] == 0
    diff = thesis.paired({"a": run, "b": run}, "a", "b")
    assert diff["margin"]["mean_diff"] == 0.0
    thesis.plot(table, 2, tmp_path / "thesis.png")  # pixel and motion-stream panels, NaN bars included
    assert (tmp_path / "thesis.png").stat().st_size > 5000


def test_face_sim_over_time_pads_short_cases(thesis, tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    for cid, vals in (("c0", [0.5, 0.4, None]), ("c1", [0.9]), ("c2", [0.1, 0.1, 0.1, 0.1])):
        (cases / f"{cid}.json").write_text(json.dumps({"case_id": cid, "per_frame": {"face_sim": vals}}))
    curves = thesis.face_sim_over_time(tmp_path, {"c0", "c1"})
    assert curves.shape == (2, 3)
    assert curves[0, 1] == 0.4 and np.isnan(curves[0, 2]) and np.isnan(curves[1, 1])
    thesis.plot_drift({"x": curves}, tmp_path / "drift.png")
    assert (tmp_path / "drift.png").stat().st_size > 2000


def test_per_statistic_correlates_outputs_with_their_own_references(thesis, tmp_path):
    """r = 1 where outputs follow their references exactly, NaN where the output never varies."""
    cases = tmp_path / "cases"
    cases.mkdir()
    refs = {f"/r/{i}.mp4": {"nod_amp": float(i), "blink_rate": 10.0 + i} for i in range(4)}
    for i in range(4):
        stats = {"nod_amp": 2.0 * i + 1, "blink_rate": 0.0}  # nods follow the reference, blinks never happen
        (cases / f"c{i}.json").write_text(json.dumps({"case_id": f"c{i}", "meta": {
            "motion_behaviour_stats": stats, "behaviour_reference": f"/r/{i}.mp4"}}))
    records = thesis.read_cases(tmp_path)
    out = thesis.per_statistic(thesis.statistic_pairs(records, {"c0", "c1", "c2", "c3"}, refs, "motion_behaviour"))
    assert out["nod_amp"]["r"] == pytest.approx(1.0) and out["nod_amp"]["output_mean"] == 4.0
    assert out["nod_amp"]["lo"] == pytest.approx(1.0)  # every resample with a spread is exactly linear too
    assert np.isnan(out["blink_rate"]["r"]) and out["blink_rate"]["reference_mean"] == 11.5
    assert out["nod_amp"]["n"] == 4 and out["smile_rate"]["n"] == 0
    assert thesis.statistic_pairs(records, {"c0"}, refs, "behaviour") == {}  # no such stats
    text = thesis.statistics_markdown({"motion_behaviour": {"x": out}})
    assert "motion behaviour space" in text and "+1.00 [+1.00, +1.00] (4.00 / 1.50)" in text


def test_paired_statistic_differences_of_r_over_shared_cases(thesis, tmp_path):
    """A system that follows its references (r 1) minus one that ignores them: r difference ~1 with an interval
    clear of 0; a system against itself: exactly 0; only the cases both have count."""
    rng = np.random.default_rng(0)
    ref = rng.normal(size=24)
    follows = {f"c{i}": ({"mouth_level": 2 * ref[i] + 1}, {"mouth_level": ref[i]}) for i in range(24)}
    ignores = {f"c{i}": ({"mouth_level": rng.normal()}, {"mouth_level": ref[i]}) for i in range(20)}
    d = thesis.paired_statistic(follows, ignores)["mouth_level"]
    assert d["n"] == 20 and 0.6 < d["diff"] < 1.4 and d["lo"] > 0.2
    rare = {c: ({"mouth_level": float(c == "c0")}, r) for c, (_, r) in follows.items()}  # one case moves
    assert np.isfinite(thesis.per_statistic(rare)["mouth_level"]["r"])
    assert np.isnan(thesis.per_statistic(rare)["mouth_level"]["lo"])  # most resamples never see it move
    same = thesis.paired_statistic(follows, follows)["mouth_level"]
    assert same["diff"] == 0.0 and same["lo"] == same["hi"] == 0.0
    text = thesis.statistics_markdown({"motion_behaviour": {"a": thesis.per_statistic(follows)}},
                                      {"motion_behaviour": {("a", "b"): thesis.paired_statistic(follows, ignores)}})
    assert "Paired r(a) − r(b), motion behaviour space" in text
    thesis.plot_statistics({"motion_behaviour": {"a": thesis.per_statistic(follows), "b": thesis.per_statistic(rare)}},
                           tmp_path / "stats.png")
    assert (tmp_path / "stats.png").stat().st_size > 5000


def test_remeasure_scores_a_run_with_the_current_statistics(thesis, tmp_path, monkeypatch):
    """``--remeasure``: statistics come from the saved video (here a stub measurement), similarities to the own
    reference are recomputed from them, ranks follow; a case without its video is a clear error."""
    import avatarv.eval.benchmark as benchmark
    from avatarv.eval.behaviour import behaviour_similarity

    cases, videos = tmp_path / "cases", tmp_path / "videos"
    cases.mkdir()
    videos.mkdir()
    refs = {"/r/a.mp4": {"mouth_level": 0.5}, "/r/b.mp4": {"mouth_level": 1.0}}
    for cid, ref in (("c0", "/r/a.mp4"), ("c1", "/r/b.mp4")):
        (videos / f"{cid}.mp4").write_bytes(b"x")
        (cases / f"{cid}.json").write_text(json.dumps({  # stored stats from before mouth_level existed
            "case_id": cid, "metrics": {"behaviour": 0.1, "motion_behaviour": 0.1},
            "meta": {"behaviour_stats": {"blink_rate": 3.0}, "motion_behaviour_stats": {"blink_rate": 3.0},
                     "behaviour_reference": ref, "video": "/nowhere/moved.mp4"}}))
    levels = {"c0": 0.55, "c1": 0.6}  # c1 opens like a, not like its own reference b
    monkeypatch.setattr(benchmark, "output_behaviour", lambda video, analyzer=None: (
        {"mouth_level": levels[video.stem]}, {"mouth_level": levels[video.stem] + 0.3}, "generated stream"))
    stored = thesis.load_run(thesis.read_cases(tmp_path), refs, refs)
    assert stored["c0"]["behaviour"] == 0.1 and stored["c1"]["margin"] == 0.0  # no shared statistic to rank by
    run = thesis.load_run(thesis.read_cases(tmp_path, remeasure=True), refs, refs)
    assert run["c0"]["behaviour"] == pytest.approx(behaviour_similarity({"mouth_level": 0.55}, refs["/r/a.mp4"]))
    assert run["c0"]["hit"] == 1.0 and run["c1"]["hit"] == 0.0
    assert run["c0"]["motion_hit"] == 0.0 and run["c1"]["motion_hit"] == 1.0  # 0.85 / 0.9: nearer b
    assert (cases / "c0.json").read_text().count("mouth_level") == 0  # the eval folder is not touched
    (videos / "c1.mp4").unlink()
    with pytest.raises(FileNotFoundError, match="c1 has no video"):
        thesis.read_cases(tmp_path, remeasure=True)

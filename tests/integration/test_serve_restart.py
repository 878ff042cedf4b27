"""SIGKILL ``avatarv serve`` mid-job, restart: the job completes exactly once, and no partial video is ever
served (a real server process with its worker processes, the tiny random-weights preset)."""

from __future__ import annotations

import pytest

from tests.conftest import load_benchmark

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


@pytest.mark.slow
def test_sigkill_mid_job_then_restart_completes_the_job_once(tmp_path):
    bench = load_benchmark("serve_load")
    data = tmp_path / "data"
    token, avatar = bench.seed_user(data, "restart", requests_per_minute=100000, burst=100000)
    speech = bench.speech_wav(tmp_path / "speech.wav")
    log = tmp_path / "server.log"
    result = bench.kill_mid_job(data, bench.free_port(), token, avatar, speech, log)
    assert result["workers_before_kill"] >= 1 and result["orphans"] == 0, (result, log.read_text()[-2000:])
    assert result["killed_in_phase"] not in (None, "done"), result
    assert not result["video_before_restart"]
    assert result["state"] == "finished" and result["attempts"] == 2, (result, log.read_text()[-2000:])
    assert result["finishes"] == 1 and result["requeues"] == 1
    assert not result["partial_served"] and result["final_bytes"] > 1000
    leftovers = [p.name for p in data.glob("users/*/jobs/*/*")]
    assert sorted(leftovers) == ["audio.input", "video.mp4"]

"""The same job code on a Ray worker: the server with ``RayExecutor`` against a local Ray (one CPU) runs a
tiny job to a finished, watermarked, signed video."""

from __future__ import annotations

import pytest

from tests.unit.test_serve_api import Harness

ray = pytest.importorskip("ray")
pytest.importorskip("fastapi")


@pytest.mark.slow
def test_job_runs_on_a_local_ray_worker(tmp_path):
    from avatarv.provenance.watermark import detect_file
    from avatarv.serve.executors import RayExecutor

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        h = Harness(tmp_path, executor=RayExecutor(workers=1))
        try:
            alice = h.user("alice")
            job = h.job(alice, h.avatar(alice)).json()["id"]
            done = h.wait(alice, job, timeout=240)
            assert done["state"] == "finished" and done["attempts"] == 1, done
            out = tmp_path / "out.mp4"
            out.write_bytes(h.client.get(f"/api/jobs/{job}/video", headers=alice).content)
            assert detect_file(out).hex == job
        finally:
            h.close()
    finally:
        ray.shutdown()

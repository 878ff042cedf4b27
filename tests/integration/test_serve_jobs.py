"""The worker's job function on the paths the API tests do not run: speech from text (the voice engine) on the
world pipeline, and the InfiniteTalk mode (``--weights``) on a tiny weights folder; both end watermarked with the
job's payload and signed, and the live stream carries the watermark while it is written."""

from __future__ import annotations

import numpy as np

from avatarv.media import read_video
from avatarv.media.write import write_mp4
from avatarv.provenance.c2pa import generate_key, read_manifest
from avatarv.provenance.watermark import detect_file
from avatarv.resources import example
from avatarv.serve.jobs import JobSpec, run_job


def _reference(path, size):
    rng = np.random.default_rng(0)
    write_mp4(path, rng.integers(0, 255, (10, *size, 3), dtype=np.uint8), 25)
    return path


def _check(result: dict, payload: str):
    out = result["file"]
    assert detect_file(out).hex == payload or read_video(out).frames.shape[1] < 256  # small videos cannot carry it
    manifest = read_manifest(out)
    assert manifest["ai_generated"] and manifest["validation_state"] == "Valid"
    assert read_video(out).audio is not None


def test_text_job_on_the_world_pipeline(tmp_path):
    keys = tmp_path / "keys"
    generate_key(keys)
    spec = JobSpec(job_id="a1b2c3d4e5f60718", attempt=1, work_dir=str(tmp_path / "work"),
                   reference=str(example("ref.mp4")), watermark="a1b2c3d4e5f60718", key_dir=str(keys),
                   text="Hello there.", preset="tiny", steps=1, seconds=0.6)
    result = run_job(spec)
    _check(result, spec.watermark)
    assert result["summary"]["frames"] >= 10
    assert (tmp_path / "work" / "progress.json").is_file()
    # the live stream was marked chunk by chunk as it was written: the same frames as the published file
    live = tmp_path / "work" / "live.mp4"
    assert detect_file(live).hex == spec.watermark == detect_file(result["file"]).hex
    assert np.array_equal(read_video(live).frames, read_video(result["file"]).frames)  # no second encode


def test_infinitetalk_job_from_a_weights_folder(tmp_path):
    import json

    import soundfile as sf

    from tests.infinitetalk_weights import write_weights

    weights = write_weights(tmp_path / "weights")
    keys = tmp_path / "keys"
    generate_key(keys)
    speech = tmp_path / "speech.wav"
    t = np.arange(4800) / 16000
    sf.write(speech, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    spec = JobSpec(job_id="0011223344556677", attempt=1, work_dir=str(tmp_path / "work"),
                   reference=str(_reference(tmp_path / "ref.mp4", (80, 120))), watermark="0011223344556677",
                   key_dir=str(keys), audio=str(speech), weights=str(weights), steps=1,
                   infinitetalk={"resolution": [64, 96], "frame_num": 9, "motion_frames": 5})
    result = run_job(spec)
    _check(result, spec.watermark)
    assert result["summary"]["resolution"] == [64, 96] and result["summary"]["frames"] == 7
    progress = json.loads((tmp_path / "work" / "progress.json").read_text())
    assert progress["phase"] == "done" and progress["step"] >= 1

"""The seed's protocol: 2 fps frame sampling, 10 % trimmed means, per-case JSON and the summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from avatarv.eval.protocol import CaseResult, sample_frame_indices, summarize, trimmed_mean, write_summary


def test_two_fps_at_25_fps():
    idx = sample_frame_indices(250, 25.0)  # 10 s
    assert len(idx) == 20
    np.testing.assert_array_equal(idx[:5], [0, 12, 25, 37, 50])  # frames shown at 0, 0.5, 1, 1.5, 2 s
    assert idx[-1] == 237
    times = idx / 25.0
    assert np.all(np.abs(times - np.arange(20) * 0.5) < 1 / 25.0)  # each sample is the frame on screen then


def test_two_fps_other_rates_and_edges():
    np.testing.assert_array_equal(sample_frame_indices(90, 30.0), [0, 15, 30, 45, 60, 75])
    np.testing.assert_array_equal(sample_frame_indices(251, 25.0)[-2:], [237, 250])  # 10.04 s: a sample at 10 s
    np.testing.assert_array_equal(sample_frame_indices(5, 2.0), [0, 1, 2, 3, 4])  # as slow as the rate: all
    np.testing.assert_array_equal(sample_frame_indices(3, 1.0), [0, 1, 2])  # slower: each frame once
    assert len(sample_frame_indices(0, 25.0)) == 0
    np.testing.assert_array_equal(sample_frame_indices(13, 25.0), [0, 12])
    np.testing.assert_array_equal(sample_frame_indices(100, 29.97), np.floor(np.arange(7) * 14.985 + 1e-6))
    with pytest.raises(ValueError):
        sample_frame_indices(10, 0.0)


def test_trimmed_mean_cuts_ten_percent_from_each_end():
    x = np.arange(20, dtype=float)
    x[0], x[19] = -1000.0, 1000.0  # outliers: 2 of 20 values are cut from each end
    assert trimmed_mean(x) == pytest.approx(np.arange(2, 18).mean())
    assert trimmed_mean(np.r_[np.ones(9), 100.0]) == pytest.approx(1.0)  # 10 values: one cut per end
    assert trimmed_mean([1.0, 2.0, 30.0]) == pytest.approx(11.0)  # int(0.1 * 3) = 0 cut
    assert trimmed_mean([5.0, float("nan"), 7.0]) == pytest.approx(6.0)  # undefined frames left out
    assert math.isnan(trimmed_mean([]))
    assert math.isnan(trimmed_mean([float("nan")]))


def test_case_json_round_trip_and_summary(tmp_path):
    a = CaseResult("case_001", meta={"system": "gt"})
    a.add_per_frame("face_sim", [0.8, 0.9, float("nan"), 0.85])
    a.metrics["sync_c"] = 7.5
    b = CaseResult("case_002")
    b.add_per_frame("face_sim", [0.6, 0.7])
    b.metrics["sync_c"] = float("nan")  # e.g. no face track
    path = a.write(tmp_path / "cases")
    data = json.loads(path.read_text())
    assert data["per_frame"]["face_sim"][2] is None  # NaN is null in JSON
    assert data["meta"]["undefined_frames"]["face_sim"] == 1
    back = CaseResult.read(path)
    assert back.metrics["face_sim"] == pytest.approx(0.85)
    assert math.isnan(back.per_frame["face_sim"][2])
    summary = summarize([a, b])
    assert summary["face_sim"]["mean"] == pytest.approx((0.85 + 0.65) / 2)
    assert summary["sync_c"]["n"] == 1 and summary["sync_c"]["n_cases"] == 2
    assert summary["sync_c"]["mean"] == pytest.approx(7.5)
    written = write_summary([a, b], tmp_path / "summary.json", extra={"system": "gt"})
    assert json.loads((tmp_path / "summary.json").read_text()) == written
    assert written["cases"] == ["case_001", "case_002"]


def test_weights_digest_changes_with_any_file(tmp_path):
    """A resumed eval run keeps a case only for the same weights: the digest sees contents and names."""
    from avatarv.eval.systems import weights_digest

    (tmp_path / "dit").mkdir()
    (tmp_path / "dit" / "model.safetensors").write_bytes(b"abc")
    (tmp_path / "pipeline.json").write_text("{}")
    first = weights_digest(tmp_path)
    assert weights_digest(tmp_path) == first
    (tmp_path / "dit" / "model.safetensors").write_bytes(b"abd")
    assert weights_digest(tmp_path) != first
    (tmp_path / "dit" / "model.safetensors").write_bytes(b"abc")
    assert weights_digest(tmp_path) == first
    (tmp_path / "dit" / "model.safetensors").rename(tmp_path / "dit" / "other.safetensors")
    assert weights_digest(tmp_path) != first

"""Loss-curve figures: one panel per run, runs without a log skipped."""

from __future__ import annotations

import json

from avatarv.training.plot import plot_runs


def test_plot_runs_writes_one_png_and_skips_missing_logs(tmp_path):
    for name, keys in (("stage1", ("loss", "loss_video")), ("vae", ("loss", "l1"))):
        (tmp_path / name).mkdir()
        lines = [json.dumps({"step": s, **{k: 1.0 / s for k in keys}, "lr": 1e-3}) for s in range(1, 120)]
        (tmp_path / name / "log.jsonl").write_text("\n".join(lines) + "\n")
    out = plot_runs({"vae": tmp_path / "vae", "stage1": tmp_path / "stage1", "stage2": tmp_path / "nope"},
                    tmp_path / "fig" / "curves.png")
    assert out is not None and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    w, h = Image.open(out).size
    assert w > 1.5 * h  # two panels side by side
    assert plot_runs({"x": tmp_path / "nope"}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()

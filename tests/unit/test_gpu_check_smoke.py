"""benchmarks/gpu_check.py does not rot: ``--smoke`` runs on CPU in seconds and prints the JSON the GPU run prints."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT, load_benchmark


def test_smoke_run_prints_the_json_line(tmp_path):
    out_file = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "gpu_check.py"), "--smoke", "--device", "cpu",
         "--out", str(out_file)],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert json.loads(out_file.read_text()) == record
    assert record["errors"] == [], {k: record[k].get("error") for k in record["errors"]}
    assert {"benchmark", "smoke", "device", "capability", "parity", "offload_exact", "step", "seconds"} <= set(record)
    assert record["smoke"] is True and record["device"] == "cpu"
    assert {"cpu_model", "bf16_native", "dtype"} <= set(record["capability"])

    for speakers in (1, 2):
        p = record["parity"][f"speakers_{speakers}"]
        assert p["cpu_fp32_vs_reference"] <= 1e-5 * max(1.0, p["output_max_abs"])
        assert p["device_fp32_vs_cpu"] == 0.0  # the "device" is the CPU here
        assert 0.0 < p["device_bf16_vs_device_fp32"] < 0.1 * p["output_max_abs"]  # bf16 really ran, and is close

    for prefetch in (1, 2):
        assert record["offload_exact"][f"prefetch_{prefetch}"]["bitwise_equal"] is True
    assert record["offload_exact"]["prefetch_2"]["resident_after"] == [0, 1]

    step = record["step"]
    keys = {"seconds_per_step", "peak_gib", "offload_blocks", "flops_per_forward", "peak_bf16_flops", "mfu",
            "cfg_included", "tokens", "params"}
    assert keys <= set(step)
    assert step["cfg_included"] is False and step["seconds_per_step"] > 0
    assert step["offload_blocks"]["bitwise_equal"] is True
    assert step["peak_gib"] is None and step["mfu"] is None  # no CUDA: no memory counter, no known peak
    # the analytic FLOPs are what torch's FLOP counter sees in the same forward (matmuls, convolutions, attention)
    assert abs(step["flops_analytic_over_counted"] - 1.0) < 1e-6


def test_peak_table_and_a_failing_part_is_recorded():
    gc = load_benchmark("gpu_check")
    assert gc.peak_bf16_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert gc.peak_bf16_flops("NVIDIA H200") == 989e12
    assert gc.peak_bf16_flops("NVIDIA H100 PCIe") == 756e12
    assert gc.peak_bf16_flops("Some GPU") is None and gc.peak_bf16_flops(None) is None
    record = {"errors": []}
    gc.run_part(record, "broken", lambda: 1 / 0)
    gc.run_part(record, "fine", lambda: {"ok": True})
    assert record["errors"] == ["broken"] and "ZeroDivisionError" in record["broken"]["error"]
    assert record["fine"] == {"ok": True}


def test_flops_of_wan_13b_at_480p():
    """The analytic count at the benchmark's size, written out: 30 blocks × (linears + attention) + the rest."""
    gc = load_benchmark("gpu_check")
    cfg = gc.infinitetalk_config("wan-1.3b")
    f = gc.forward_flops(cfg, 21, 60, 104)
    n, d = 21 * 30 * 52, 1536
    assert f["tokens"] == n == 32760
    assert f["attention"] == 30 * 4 * n * d * (n + 512 + 257 + 32)
    block_linear = 2 * (n * (6 * d * d + 2 * d * 8960) + 512 * 2 * d * d + 257 * 2 * d * d
                        + n * 2 * d * d + 21 * 32 * 768 * 2 * d)
    assert f["linear"] > 30 * block_linear  # plus patch embedding, head, text / CLIP / audio embeddings
    assert f["linear"] - 30 * block_linear < 0.01 * f["linear"]

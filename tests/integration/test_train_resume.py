"""Exact resume: 2N steps straight == N steps, SIGKILL, resume to 2N (losses and weights, bitwise on CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from avatarv.cli import main

CONFIG = """
preset = "tiny"
steps = 6
batch_size = 2
grad_accum = 2
ckpt_every = 2
warmup_steps = 3
seed = 5
out_dir = "{out}"
[method]
name = "personality"
[data]
size = 5
"""


def losses(out: Path) -> dict[int, float]:
    recs = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in recs]
    assert len(steps) == len(set(steps)), "a step was logged twice"
    return {r["step"]: r["loss"] for r in recs}


def test_kill_and_resume_is_exact(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for out in (straight, killed):
        (tmp_path / f"{out.name}.toml").write_text(CONFIG.format(out=out))
    assert main(["train", "run", "--config", str(tmp_path / "straight.toml")]) == 0

    # the same run in a subprocess, killed with SIGKILL once its second checkpoint exists
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "avatarv.cli", "train", "run", "--config",
                             str(tmp_path / "killed.toml")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        latest = killed / "checkpoints" / "latest"
        if latest.is_file() and latest.read_text().strip() >= "step_0000002":
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (killed / "checkpoints" / "latest").read_text().strip() < "step_0000006", "killed too late to test"
    assert main(["train", "run", "--config", str(tmp_path / "killed.toml"), "--resume"]) == 0

    assert losses(straight) == losses(killed)  # every step exactly once, identical losses
    a = load_file(str(straight / "model" / "model.safetensors"))
    b = load_file(str(killed / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ema_a = load_file(str(straight / "checkpoints" / "step_0000006" / "ema.safetensors"))
    ema_b = load_file(str(killed / "checkpoints" / "step_0000006" / "ema.safetensors"))
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


def test_plot_command(tmp_path):
    (tmp_path / "c.toml").write_text(CONFIG.format(out=tmp_path / "run").replace("steps = 6", "steps = 1"))
    assert main(["train", "run", "--config", str(tmp_path / "c.toml")]) == 0
    assert main(["train", "plot", str(tmp_path / "run" / "log.jsonl")]) == 0
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000

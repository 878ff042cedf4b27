"""``pip install .`` (a wheel, not the editable checkout) works: the package finds its assets and examples
through importlib.resources and needs no repository beside it. The wheel is installed into a fresh venv that
sees this environment's packages (torch, diffusers, … are not downloaded again: the network is not needed) and
run from an empty folder outside the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_wheel_installs_and_runs_outside_the_repository(tmp_path):
    wheels, venv, work, project = tmp_path / "wheels", tmp_path / "venv", tmp_path / "work", tmp_path / "project"
    work.mkdir()
    # build from a copy of the working tree's package (setuptools writes build/ beside the sources, and a stale
    # build/lib in the checkout could put removed modules into the wheel)
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, project / name)
    build = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                  str(project)], cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    wheel = next(wheels.glob("avatarv-*.whl"))
    assert _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=tmp_path).returncode == 0
    py = venv / "bin" / "python"
    install = _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd=tmp_path)
    assert install.returncode == 0, install.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AVATARV_CHECKPOINTS")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")  # no bundled checkpoint anywhere on the search path

    where = _run([str(py), "-c", "import avatarv, avatarv.resources as r; print(avatarv.__file__); "
                  "print(r.example('ref.mp4'))"], cwd=work, env=env)
    assert where.returncode == 0, where.stderr
    module, example = where.stdout.split()
    assert Path(module).is_relative_to(venv) and not Path(module).is_relative_to(REPO)  # the wheel, not the checkout
    assert Path(example).is_file() and Path(example).is_relative_to(venv)

    info = _run([str(py), "-m", "avatarv.cli", "info", "--preset", "tiny"], cwd=work, env=env)
    assert info.returncode == 0 and "bf16_native" in info.stdout, info.stderr

    out = work / "tiny.mp4"
    gen = _run([str(py), "-m", "avatarv.cli", "generate", "--ref", example, "--audio",
                str(Path(example).with_name("speech.wav")), "--out", str(out), "--preset", "tiny", "--seconds",
                "0.3", "--steps", "1"], cwd=work, env=env)
    assert gen.returncode == 0, gen.stderr
    assert json.loads(gen.stdout.strip().splitlines()[-1])["frames"] == 8 and out.is_file()

    # no --checkpoint and no bundled one on the search path: a clear error, not random weights
    missing = _run([str(py), "-m", "avatarv.cli", "generate", "--ref", example, "--audio",
                    str(Path(example).with_name("speech.wav")), "--out", str(work / "x.mp4")], cwd=work, env=env)
    assert missing.returncode == 2 and "checkpoint 'world-small' not found" in missing.stderr
    assert not (work / "x.mp4").exists()

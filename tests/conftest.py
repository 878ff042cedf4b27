"""Shared fixtures. Real media live in ../shared/real beside the repository (fixtures, never copied here)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DIR = REPO_ROOT.parent / "shared" / "real"


def _real(sub: str) -> Path:
    path = REAL_DIR / sub
    if not path.is_dir():
        pytest.skip(f"real fixtures not found at {path} (expected ../shared/real beside the repository)")
    return path


@pytest.fixture(scope="session")
def real_clips() -> list[Path]:
    """The five real talking-head clips (mp4, h264 + aac)."""
    return sorted(_real("clips").glob("*.mp4"))


@pytest.fixture(scope="session")
def real_speech() -> list[Path]:
    """The three real speech recordings (wav, 16/48 kHz stereo)."""
    return sorted(_real("speech").glob("*.wav"))


def load_benchmark(name: str):
    """A script of ``benchmarks/`` imported as a module (they are scripts, not a package)."""
    import importlib.util

    path = REPO_ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class ChunkRecorder:
    """``generate(..., on_chunk=recorder)``: records each chunk the pipeline samples as
    ``({"known_motion": carried motion or None}, generated motion)``, in order (raw features)."""

    def __init__(self):
        self.calls: list[tuple[dict, object]] = []

    def __call__(self, chunk, known_motion, motion) -> None:
        self.calls.append(({"known_motion": known_motion}, None if motion is None else motion.clone()))


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Each test starts with the process's torch thread count, whatever the previous one set (trainers called
    in-process set one thread, as their command lines do). Results of the bitwise tests depend on it: a resumed
    subprocess (default threads) must match an in-process run with the same count."""
    import torch

    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)

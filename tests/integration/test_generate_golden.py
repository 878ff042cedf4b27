"""Golden outputs of ``AvatarPipeline.generate`` on the tiny random pipeline, fixed seeds, one case per path
through the generation walk (reference + anchor, no anchor, SR refiner, no motion continuity, a prompt through
a text encoder, multi-condition guidance with dropped conditions, the image engine's scene).

Two checks per case, against ``tests/golden/generate_tiny.json``:
- exact: the SHA-256 of the written frames (decoded back from the mp4), recorded per CPU kind (fp32 kernels
  round differently on AVX2 and AVX-512/AMX), compared where this machine's kind has a record;
- everywhere: a 4×4 thumbnail per frame within 1 grey level of the recorded one (mean |Δ|), so a machine of
  another kind still catches a changed walk.

Refresh after an intended change: ``AVATARV_UPDATE_GOLDEN=1 pytest tests/integration/test_generate_golden.py``
(adds this machine's hashes and thumbnails; say in the commit why the frames changed).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from avatarv.media import read_audio, read_video
from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "generate_tiny.json"
UPDATE = os.environ.get("AVATARV_UPDATE_GOLDEN") == "1"


def machine_kind() -> str:
    from avatarv.precision import cpu_bf16_native

    return f"{torch.backends.cpu.get_cpu_capability()}{'-bf16' if cpu_bf16_native() else ''}-torch{torch.__version__}"


def _with_text(pipe: AvatarPipeline) -> AvatarPipeline:
    from avatarv.models.encoders.text import TextEncoder

    pipe.text_encoder = TextEncoder.tiny(pipe.cfg.dit.text_dim, max_length=8, seed=0)
    return pipe


# case -> (pipeline builder, options)
CASES = {
    "anchor": (lambda: AvatarPipeline.random("tiny", seed=0), dict(seconds=1.4, steps=2, seed=3)),
    "no_anchor": (lambda: AvatarPipeline.random("tiny", seed=0), dict(seconds=1.4, steps=2, seed=3, anchor=False)),
    "refiner": (lambda: AvatarPipeline.random("tiny", seed=0, refiner=True), dict(seconds=0.6, steps=2, seed=1)),
    "no_motion_continuity": (lambda: AvatarPipeline.random("tiny", seed=0),
                             dict(seconds=1.4, steps=2, seed=3, motion_continuity=False)),
    "text": (lambda: _with_text(AvatarPipeline.random("tiny", seed=0)),
             dict(seconds=0.6, steps=2, seed=2, prompt="a man in an office")),
    "guidance": (lambda: AvatarPipeline.random("tiny", seed=0), dict(seconds=0.6, steps=2, seed=4, guidance="audio=2,ref=1.5")),
    "scene_engine": (lambda: AvatarPipeline.random("tiny", seed=0), dict(seconds=0.6, steps=2, seed=5, scene_engine=True)),
}


@pytest.fixture(scope="module")
def inputs(real_clips, real_speech):
    ref = next(p for p in real_clips if p.name == "man_suit_office.mp4")
    speech = next(p for p in real_speech if p.name == "en_male_radio.wav")
    return read_video(ref), read_audio(speech)


def thumbnails(frames: np.ndarray) -> np.ndarray:
    """[T, H, W, 3] uint8 → [T, 4, 4, 3] block means."""
    t, h, w, c = frames.shape
    return frames.reshape(t, 4, h // 4, 4, w // 4, c).astype(np.float64).mean(axis=(2, 4))


@pytest.fixture
def recorded_threads():
    """The golden hashes were recorded with 2 torch threads; the bytes depend on how work is split over threads,
    and other tests in the same process may have changed the count (e.g. a Ray driver, an inline executor)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("case", sorted(CASES))
def test_generate_matches_golden(tmp_path, inputs, case, recorded_threads):
    from avatarv.diffusion import GuidanceScales

    build, options = CASES[case]
    options = dict(options)
    if "guidance" in options:
        options["guidance"] = GuidanceScales.parse(options["guidance"])
    out = tmp_path / f"{case}.mp4"
    build().generate(*inputs, out, GenerationOptions(**options))
    frames = read_video(out).frames
    digest = hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()
    thumbs = thumbnails(frames)
    records = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
    if UPDATE:
        entry = records.setdefault(case, {"sha256": {}})
        entry["shape"] = list(frames.shape)
        entry["sha256"][machine_kind()] = digest
        entry["thumbnails"] = np.round(thumbs, 2).tolist()
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")
        return
    assert case in records, f"no golden record for {case!r}: run with AVATARV_UPDATE_GOLDEN=1"
    want = records[case]
    assert list(frames.shape) == want["shape"]
    gap = np.abs(thumbs - np.array(want["thumbnails"])).mean()
    assert gap < 1.0, f"{case}: thumbnails moved by {gap:.3f} grey levels"
    kind = machine_kind()
    if kind in want["sha256"]:
        assert digest == want["sha256"][kind], f"{case}: frames differ from the golden ones recorded on {kind}"

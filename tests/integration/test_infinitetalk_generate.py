"""The InfiniteTalk mode end to end on a tiny random weights folder in the published layouts: one and two
speakers to an mp4 with sound, the DiT passes InfiniteTalk's loop makes, and the command line with each part
missing (one line, non-zero exit, no output file)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from avatarv.media import read_video
from avatarv.media.read import Video
from avatarv.pipelines.infinitetalk import InfiniteTalkOptions, InfiniteTalkPipeline
from tests.infinitetalk_weights import PARTS, write_weights

OPTS = dict(resolution=(32, 48), frame_num=9, motion_frames=5, steps=1)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_weights(tmp_path_factory.mktemp("infinitetalk-weights"))


def _speech(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * hz * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _reference(frames: int = 12) -> Video:
    rng = np.random.default_rng(0)
    return Video(frames=rng.integers(0, 255, (frames, 40, 60, 3), dtype=np.uint8), fps=25.0, audio=None)


def _pipeline(weights, offload: str = "none") -> InfiniteTalkPipeline:
    return InfiniteTalkPipeline.from_paths(weights / "wan", weights / "audio" / "infinitetalk.safetensors",
                                           weights / "wav2vec", weights / "t5", weights / "clip", weights / "vae",
                                           offload=offload)


def test_one_and_two_speakers_to_mp4_with_sound(weights, tmp_path):
    pipe = _pipeline(weights)
    calls = []
    hook = pipe.dit.register_forward_hook(lambda m, a, kw, out: calls.append(kw.get("audio")), with_kwargs=True)
    out1 = tmp_path / "one.mp4"
    summary = pipe.generate(_reference(), [_speech(0.48, 200)], out1, InfiniteTalkOptions(**OPTS))
    # 12 frames: chunk 0 gives 9, chunk 1 four new frames (9 − 5 motion frames), cut to 12 → 2 chunks,
    # each step 3 passes (cond, drop text, uncond); the unconditional-audio passes get audio None
    assert summary["frames"] == 12 and summary["chunks"] == 2 and summary["passes_per_step"] == 3
    assert len(calls) == 2 * 3 and sum(a is None for a in calls) == 2
    video = read_video(out1)
    assert video.frames.shape[1:3] == (32, 48) and abs(len(video.frames) - 12) <= 1
    assert video.audio is not None and np.abs(video.audio).max() > 0.05

    calls.clear()
    out2 = tmp_path / "two.mp4"
    summary = pipe.generate(_reference(), [_speech(0.36, 200), _speech(0.3, 330)], out2,
                            InfiniteTalkOptions(**OPTS, text_scale=1.0))
    hook.remove()
    assert summary["speakers"] == 2 and summary["passes_per_step"] == 2  # text scale 1: cond, drop audio
    assert all(a is None or a.shape[1] == 2 for a in calls)
    two = read_video(out2).frames.astype(float)
    assert np.abs(two[:9] - video.frames[:9].astype(float)).mean() > 0.5  # the second speaker changes it


def test_same_seed_same_frames_with_and_without_offload(weights, tmp_path):
    """The same seed gives the same frames in separate runs, with offloading (whole models, or the DiT's blocks
    streamed) or without: offloading is exact."""
    runs = []
    for name, offload in (("a.mp4", "none"), ("c.mp4", "blocks"), ("d.mp4", "model")):
        pipe = _pipeline(weights, offload)
        pipe.generate(_reference(), [_speech(0.36, 200)], tmp_path / name,
                      InfiniteTalkOptions(**OPTS, video_ref=True, anchor=True))
        runs.append(read_video(tmp_path / name).frames)
    for other in runs[1:]:
        assert np.array_equal(runs[0], other)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "avatarv.cli", "generate", *args], capture_output=True, text=True,
                          timeout=300)


def test_cli_weights_folder(weights, tmp_path):
    from avatarv.media.write import write_mp4

    ref = tmp_path / "ref.mp4"
    speech = tmp_path / "speech.wav"
    write_mp4(ref, _reference(12).frames, 25)
    import soundfile as sf

    sf.write(speech, _speech(0.4, 220), 16000)
    speech2 = tmp_path / "speech2.wav"
    sf.write(speech2, _speech(0.3, 330), 16000)
    out = tmp_path / "out.mp4"
    common = ["--ref", str(ref), "--audio", str(speech), "--resolution", "32x48", "--frame-num", "9",
              "--motion-frames", "5", "--steps", "1"]
    # the memory options go through to the pipeline (on the CPU: exact offload, weight-only fp8)
    done = _cli("--weights", str(weights), "--out", str(out), "--audio2", str(speech2), "--offload", "model",
                "--device", "cpu", "--fp8", *common)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"speakers": 2' in done.stdout
    bad = _cli("--weights", str(weights), "--out", str(tmp_path / "bad.mp4"), "--offload", "disk", *common)
    assert bad.returncode == 2 and "--offload" in bad.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "bad.mp4").exists()
    assert read_video(out).audio is not None

    for part in ("clip", "audio"):  # each missing part: one line naming it, exit 2, nothing written
        broken = tmp_path / f"no-{part}"
        shutil.copytree(weights, broken)
        if part == "audio":
            shutil.rmtree(broken / "audio")
        else:
            shutil.rmtree(broken / part)
        bad_out = tmp_path / f"no-{part}.mp4"
        done = _cli("--weights", str(broken), "--out", str(bad_out), *common)
        assert done.returncode == 2, done.stderr[-2000:]
        last = done.stderr.strip().splitlines()[-1]
        assert part in last.lower() and "Traceback" not in done.stderr
        assert not bad_out.exists() and not list(tmp_path.glob(f"no-{part}*.mp4"))
    assert set(PARTS) >= {"clip", "audio"}
    torch.manual_seed(0)

"""The generated motion stream written beside the video (``--motion-out``): one row per output frame, the
chunks' own predictions, deterministic; refused by a DiT without a motion stream."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from avatarv.cli import main
from avatarv.config import get_preset
from avatarv.errors import InputError
from avatarv.media import read_audio, read_video
from avatarv.models.dit import VideoRefDiT
from avatarv.models.dit.motion_codec import MOTION_SIGNALS, MotionCodec, motion_signals
from avatarv.models.vae import VideoVAE
from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions, _live
from avatarv.pipelines.motion_track import load_motion_track
from avatarv.resources import example
from tests.conftest import ChunkRecorder

EXAMPLES = example("ref.mp4").parent


def _pipeline(motion_dim: int) -> AvatarPipeline:
    import torch

    cfg = get_preset("tiny")
    cfg = replace(cfg, dit=replace(cfg.dit, motion_dim=motion_dim))
    torch.manual_seed(0)
    return AvatarPipeline(cfg, _live(VideoRefDiT(cfg.dit)), VideoVAE(cfg.vae), random_weights=True)


@pytest.fixture(scope="module")
def inputs():
    return read_video(EXAMPLES / "ref.mp4"), read_audio(EXAMPLES / "speech.wav")


def test_motion_track_holds_the_generated_stream(tmp_path, inputs):
    ref, speech = inputs
    pipe = _pipeline(16)
    recorder = ChunkRecorder()
    calls = recorder.calls
    track = tmp_path / "a.motion.npz"
    summary = pipe.generate(ref, speech, tmp_path / "a.mp4", GenerationOptions(seconds=0.6, steps=2, motion_path=str(track)),
                            on_chunk=recorder)
    signals, fps = load_motion_track(track)
    seen = [motion for _, motion in calls]
    assert fps == 25 and list(signals) == list(MOTION_SIGNALS) and len(seen) == summary["chunks"] == 1
    assert all(len(v) == summary["frames"] == 15 for v in signals.values())
    expected = motion_signals(seen[0], 4 * (seen[0].shape[0] - 1) + 1)
    for name in MOTION_SIGNALS:  # one chunk: the track is that chunk's prediction, frame by frame, except the
        want = expected[name][:15].copy()  # scene frame (given, not generated), which holds the first generated
        want[0] = want[1]
        np.testing.assert_allclose(signals[name], want, atol=1e-5, err_msg=name)
    assert np.ptp(signals["yaw"]) > 0  # random weights still move: the stream is not a constant

    # same seed, same bytes; longer runs stitch several chunks into one row per frame
    again = tmp_path / "b.motion.npz"
    pipe.generate(ref, speech, tmp_path / "b.mp4", GenerationOptions(seconds=0.6, steps=2, motion_path=str(again)))
    assert track.read_bytes() == again.read_bytes()
    long = tmp_path / "c.motion.npz"
    summary = pipe.generate(ref, speech, tmp_path / "c.mp4", GenerationOptions(seconds=2.0, steps=1, motion_path=str(long)))
    assert summary["chunks"] > 1 and len(load_motion_track(long)[0]["blink"]) == summary["frames"] == 50


def test_motion_track_needs_a_motion_stream(tmp_path, inputs):
    ref, speech = inputs
    out = tmp_path / "x.mp4"
    with pytest.raises(InputError, match="no motion stream"):
        _pipeline(0).generate(ref, speech, out, GenerationOptions(seconds=0.6, steps=1,
                                                                  motion_path=str(tmp_path / "x.motion.npz")))
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_generate_cli_motion_out(tmp_path):
    out, track = tmp_path / "o.mp4", tmp_path / "o.npz"
    assert main(["generate", "--ref", str(EXAMPLES / "ref.mp4"), "--audio", str(EXAMPLES / "speech.wav"),
                 "--out", str(out), "--seconds", "0.6", "--steps", "1", "--motion-out", str(track), "--preset", "tiny"]) == 0
    signals, _ = load_motion_track(track)
    assert list(signals) == list(MOTION_SIGNALS[: get_preset("tiny").dit.motion_dim])  # what a 6-dim stream holds
    assert len(signals["smile"]) == read_video(out).num_frames == 15


def test_motion_continues_across_chunks(tmp_path, inputs):
    """Each later chunk starts from the previous chunk's motion (the overlap's features); off, it does not."""
    ref, speech = inputs
    pipe = _pipeline(16)
    recorder = ChunkRecorder()
    calls = recorder.calls
    pipe.generate(ref, speech, tmp_path / "a.mp4", GenerationOptions(seconds=2.0, steps=2), on_chunk=recorder)
    assert len(calls) >= 3 and calls[0][0]["known_motion"] is None
    for (_, before), (kwargs, after) in zip(calls, calls[1:], strict=False):
        given = kwargs["known_motion"]
        torch_close(given, MotionCodec(16).carry(before, 2))
        torch_close(after[:2], given)  # the known frames keep it
    calls.clear()
    pipe.generate(ref, speech, tmp_path / "b.mp4", GenerationOptions(seconds=2.0, steps=2, motion_continuity=False),
                  on_chunk=recorder)
    assert all(kwargs["known_motion"] is None for kwargs, _ in calls)


def torch_close(a, b):
    import torch

    torch.testing.assert_close(a, b)


def test_guidance_feeds_dropped_conditions_as_training_does(tmp_path, inputs):
    """``audio=3`` evaluates 3 passes per step ({ref}, {ref, audio}, all); the pass without audio gets zero
    audio tokens (training's dropout: ``batch.audio * 0``), not None, and the passes without the reference get
    no reference."""
    from avatarv.diffusion import GuidanceScales

    ref, speech = inputs
    pipe = _pipeline(6)
    calls = []
    forward = pipe.dit.forward

    def spy(*args, **kwargs):
        calls.append({"audio": kwargs["audio"], "ref": kwargs["ref"]})
        return forward(*args, **kwargs)

    pipe.dit.forward = spy
    opts = GenerationOptions(seconds=0.4, steps=2, guidance=GuidanceScales({"ref": 1.0, "audio": 3.0, "text": 1.0}))
    pipe.generate(ref, speech, tmp_path / "g.mp4", opts)
    assert len(calls) == 2 * 3  # one chunk, 2 steps, 3 passes
    for step in range(2):
        no_audio, with_audio, full = calls[3 * step : 3 * step + 3]
        assert no_audio["audio"] is not None and not no_audio["audio"].any()
        assert with_audio["audio"].abs().sum() > 0 and full["audio"].abs().sum() > 0
        assert all(c["ref"] is not None for c in (no_audio, with_audio, full))
    calls.clear()
    opts = GenerationOptions(seconds=0.4, steps=1, guidance=GuidanceScales({"ref": 2.0, "audio": 1.0, "text": 1.0}))
    pipe.generate(ref, speech, tmp_path / "h.mp4", opts)
    # weights ∅ −1, {ref} +1, {ref, audio} 0 (skipped), all +1
    assert [c["ref"] is None for c in calls] == [True, False, False]
    assert not calls[0]["audio"].any() and not calls[1]["audio"].any() and calls[2]["audio"].abs().sum() > 0

"""The generated motion stream: features ↔ per-frame signals, chunk stitching, the track file, behaviour in
motion-stream space."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarv.data.shards import MOTION_SIGNALS, motion_features, motion_signals
from avatarv.errors import InputError
from avatarv.pipelines.motion_track import (
    MotionTrack,
    load_motion_track,
    motion_track_path,
    save_motion_track,
)


def _latent_constant(rng, frames: int, latents: int) -> np.ndarray:
    return rng.normal(size=latents)[(np.arange(frames) + 3) // 4]


def test_motion_signals_inverts_motion_features():
    rng = np.random.default_rng(0)
    t, latents = 33, 9
    signals = {n: _latent_constant(rng, t, latents) * (20 if n in ("yaw", "pitch", "roll") else 1)
               for n in MOTION_SIGNALS}
    signals["mouth_open"] = rng.uniform(0, 1, t)  # any per-frame mouth comes back exactly
    back = motion_signals(motion_features(signals, latents, 16), t)
    assert set(back) == set(MOTION_SIGNALS)
    for n in MOTION_SIGNALS:
        np.testing.assert_allclose(back[n], signals[n], atol=1e-5, err_msg=n)
    # a shorter video than the latents cover (the last latent frame partly used)
    back = motion_signals(motion_features(signals, latents, 16), 30)
    np.testing.assert_allclose(back["yaw"], signals["yaw"][:30], atol=1e-5)


def test_motion_signals_small_dim_and_bad_sizes():
    feats = torch.randn(3, 6)
    back = motion_signals(feats, 9)
    assert list(back) == list(MOTION_SIGNALS[:6])  # signals cut off by the dim are left out
    np.testing.assert_allclose(back["smile"], feats[:, 2].numpy()[[0, 1, 1, 1, 1, 2, 2, 2, 2]], atol=1e-6)
    with pytest.raises(ValueError, match="do not fit"):
        motion_signals(feats, 10)  # 3 latent frames hold at most 9 frames
    with pytest.raises(ValueError, match="shape"):
        motion_signals(torch.randn(3), 1)


def test_motion_track_keeps_each_frame_once_and_known_frames_from_their_makers():
    """Rows line up with the video's frames (``AvatarPipeline._emit``: one per output frame); a chunk's known
    leading frames (untrained motion) take the previous chunk's generated tail, the first chunk's scene frame
    its first generated frame's."""
    from avatarv.pipelines.chunks import ChunkPlan
    from avatarv.pipelines.generate import AvatarPipeline

    plan = ChunkPlan.for_duration(3.0, chunk_latents=9, overlap_latents=2, fps=25, sample_rate=16000)
    chunks = plan.chunks()
    assert len(chunks) > 2
    rng = np.random.default_rng(1)

    class Writer:
        def __init__(self):
            self.frames = []

        def append(self, frames, audio):
            self.frames.append(frames)

    writer, track = Writer(), MotionTrack(["a"], plan.overlap_frames, plan.total_frames)
    pending, written, expected, prev = None, 0, [], None
    speech = np.zeros(plan.total_samples(), np.float32)
    for chunk in chunks:
        n = 4 * (chunk.num_latents - 1) + 1
        values = rng.normal(size=n)
        frames = np.zeros((n, 2, 2, 3), np.uint8)
        last = chunk.index == len(chunks) - 1
        known = 1 if chunk.index == 0 else plan.overlap_frames
        kept = AvatarPipeline._emit(writer, frames, pending, last, plan, written, speech)
        pending = None if last else frames[n - plan.overlap_frames :]
        assert track.add({"a": values}, last, known=known) == kept
        want = values.copy()
        want[:known] = values[1] if prev is None else prev[len(prev) - known :]
        expected.append(want[:kept])
        written, prev = written + kept, values
    stitched = track.signals()["a"]
    assert len(stitched) == sum(len(f) for f in writer.frames) == plan.total_frames == track.written
    np.testing.assert_allclose(stitched, np.concatenate(expected).astype(np.float32))
    bad = MotionTrack(["a"], plan.overlap_frames, plan.total_frames)
    bad.add({"a": np.zeros(33)}, last=False, known=1)
    with pytest.raises(ValueError, match="overlap"):
        bad.add({"a": np.zeros(33)}, last=False, known=3)


def test_motion_track_file_roundtrip_and_errors(tmp_path):
    path = motion_track_path(tmp_path / "out.mp4")
    assert path.name == "out.motion.npz"
    signals = {"yaw": np.arange(5, dtype=np.float32), "blink": np.ones(5, np.float32)}
    save_motion_track(path, signals, 25.0)
    back, fps = load_motion_track(path)
    assert fps == 25.0 and set(back) == {"yaw", "blink"}
    np.testing.assert_array_equal(back["yaw"], signals["yaw"])
    assert [p.name for p in tmp_path.iterdir()] == ["out.motion.npz"]  # no temp file left behind
    bad = tmp_path / "bad.motion.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="bad.motion.npz: not a motion track"):
        load_motion_track(bad)


def test_behaviour_in_stream_space():
    from avatarv.eval.motion_stream import stream_behaviour, through_stream, video_stream_behaviour
    from avatarv.world.analyzer import behaviour_stats

    t, fps = 250, 25
    time = np.arange(t) / fps
    blink = np.zeros(t)
    for start in (20, 90, 160, 230):
        blink[start : start + 8] = 1.0  # 8-frame blinks: still closed after averaging over 4 frames
    signals = {"pitch": 6 * np.sin(2 * np.pi * 0.5 * time), "yaw": 4 * np.sin(2 * np.pi * 0.3 * time),
               "blink": blink, "smile": np.where(time > 5, 0.6, 0.0), "mouth_open": 0.5 + 0.5 * np.sin(time * 9)}
    stream = through_stream(signals)
    assert set(stream) == set(MOTION_SIGNALS) and len(stream["pitch"]) == t
    np.testing.assert_allclose(stream["mouth_open"], signals["mouth_open"], atol=1e-6)  # per-frame mouth kept
    # a latent frame's mean is held over its 4 frames: at most 1.5 frames from the mean's centre
    slope = 6 * 2 * np.pi * 0.5 / fps  # the nod's steepest change, degrees per frame
    assert np.abs(stream["pitch"] - signals["pitch"]).max() <= 1.5 * slope + 1e-6
    pixel, motion = behaviour_stats(signals, None, fps), video_stream_behaviour(signals, None, fps)
    assert motion["blink_rate"] == pixel["blink_rate"] == pytest.approx(4 / (t / fps / 60))
    assert motion["nod_amp"] == pytest.approx(pixel["nod_amp"], rel=0.05)
    assert motion["nod_freq"] == pytest.approx(pixel["nod_freq"], rel=0.05)
    assert motion["smile_rate"] == pytest.approx(pixel["smile_rate"], abs=0.01)
    with pytest.raises(ValueError, match="lacks pitch, yaw"):
        stream_behaviour({"blink": blink, "smile": blink, "mouth_open": blink}, None, fps)


def test_known_motion_is_the_overlaps_features():
    """The next chunk's known latent frames encode the previous chunk's last 5 frames: their motion features
    are those frames' features, computed as ``motion_features`` computes a clip's."""
    from avatarv.models.dit.motion_codec import MotionCodec

    rng = np.random.default_rng(2)
    t, latents = 33, 9
    signals = {n: _latent_constant(rng, t, latents) for n in MOTION_SIGNALS}
    signals["mouth_open"] = rng.uniform(0, 1, t)
    previous = motion_features(signals, latents, 16)
    tail = {n: v[t - 5 :] for n, v in signals.items()}
    torch.testing.assert_close(MotionCodec(16).carry(previous, 2), motion_features(tail, 2, 16))
    # a narrow stream: latent 0 is frame 28 alone (held at its latent frame's mean), latent 1 the last latent
    narrow = previous[:, :6]
    got = MotionCodec(6).carry(narrow, 2)
    torch.testing.assert_close(got[1], narrow[-1])
    torch.testing.assert_close(got[0], narrow[-2])
    with pytest.raises(ValueError, match="known latent frames"):
        MotionCodec(16).carry(previous, 10)

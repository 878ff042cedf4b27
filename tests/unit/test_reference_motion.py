"""Reference motion tokens: what the shards give in training and what the pipeline reads at inference agree."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from avatarv.config import get_preset
from avatarv.data.shards import MOTION_SIGNALS, REFERENCE_SIGNALS, motion_features, reference_motion_features
from avatarv.errors import ConfigError
from avatarv.media import Video
from avatarv.training.world_shards import label_signals
from avatarv.world import make_clip


@pytest.fixture(scope="module")
def analyzer():
    from avatarv.world.analyzer import WorldAnalyzer

    return WorldAnalyzer.load()


def test_reference_features_keep_the_readable_signals_only():
    r = np.random.default_rng(0)
    signals = {n: r.uniform(0, 1, 21) for n in MOTION_SIGNALS}
    full, ref = motion_features(signals, 6, 16), reference_motion_features(signals, 6, 16)
    for k, n in enumerate(MOTION_SIGNALS):
        if n in REFERENCE_SIGNALS:
            assert torch.equal(ref[:, k], full[:, k]), n
        else:
            assert not ref[:, k].any() and full[:, k].any(), n
    assert torch.equal(ref[:, len(MOTION_SIGNALS):], full[:, len(MOTION_SIGNALS):])  # the per-frame mouth slots


def test_analyzer_reads_the_reference_motion_the_shards_hold(analyzer):
    """The pipeline's reading (world analyzer on the face crops it encodes, every 4th frame) against the exact
    labels the stage-3 shards hold for the same reference, over three held-out identities."""
    from avatarv.pipelines.generate import AvatarPipeline
    from avatarv.pipelines.reference import prepare_reference

    vae = AvatarPipeline.random("tiny", seed=0).vae
    read, labelled = [], []
    for ident in (10001, 10002, 10003):
        clip = make_clip(ident, 3, seconds=84 / 25, size=128, seed=0)
        prepared = prepare_reference(Video(clip.frames, 25, clip.audio), vae, 128, 6, stride=4, motion_dim=16,
                                     analyzer=analyzer)
        assert prepared.ref.motion.shape == (1, 6, 16)
        read.append(prepared.ref.motion[0].numpy())
        labelled.append(reference_motion_features({k: v[::4][:21] for k, v in label_signals(clip.labels).items()},
                                                  6, 16).numpy())
    a, b = np.concatenate(read), np.concatenate(labelled)
    floor = {"mouth_open": 0.85, "smile": 0.9, "blink": 0.7, "yaw": 0.9, "pitch": 0.4, "roll": 0.85}
    for k, n in enumerate(MOTION_SIGNALS):
        if n in REFERENCE_SIGNALS:
            assert np.corrcoef(a[:, k], b[:, k])[0, 1] > floor[n], n
        else:
            assert not a[:, k].any() and not b[:, k].any(), n
    assert np.abs(a - b).mean() < 0.05


def test_model_config_needs_a_motion_stream_for_reference_motion():
    cfg = get_preset("tiny")
    assert replace(cfg, ref_motion=True).ref_motion
    with pytest.raises(ConfigError, match="motion stream"):
        replace(cfg, dit=replace(cfg.dit, motion_dim=0), ref_motion=True)


def test_pipeline_feeds_reference_motion_when_its_checkpoint_was_trained_with_it(tmp_path, analyzer):
    """ref_motion on: the DiT's reference stream gets the analyzer's reading, in the stream's normalised space,
    and the output changes; off: no motion tokens. The flag survives save / from_checkpoint."""
    from avatarv.media import read_video
    from avatarv.models.dit.motion_norm import normalize_motion
    from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions
    from avatarv.pipelines.reference import reference_motion

    clip = make_clip(10004, 2, seconds=1.0, size=128, seed=0)
    reference, speech = Video(clip.frames, 25, clip.audio), clip.audio
    outs, seen = {}, {}
    for flag in (False, True):
        pipe = AvatarPipeline.random("tiny", seed=0)
        pipe.cfg = replace(pipe.cfg, ref_motion=flag)
        dit = pipe.dit
        dit.cfg = replace(dit.cfg, motion_mean=(0.1,) * dit.cfg.motion_dim, motion_std=(0.5,) * dit.cfg.motion_dim)
        original = dit.ref_tokens
        dit.ref_tokens = lambda ref, f=flag, o=original: (seen.setdefault(f, ref.motion), o(ref))[1]
        out = tmp_path / f"o{flag}.mp4"
        pipe.generate(reference, speech, out, GenerationOptions(seconds=0.6, steps=2, seed=1))
        outs[flag] = read_video(out).frames
    assert seen[False] is None
    n = seen[True].shape[1]
    cfg = pipe.cfg
    from avatarv.pipelines.reference import prepare_reference

    crops = prepare_reference(reference, pipe.vae, cfg.resolution, cfg.max_ref_latent_frames).frames
    want = normalize_motion(reference_motion(crops, n, dit.cfg.motion_dim, analyzer), dit.cfg)
    assert torch.allclose(seen[True].float(), want, atol=1e-6)
    assert not np.array_equal(outs[False], outs[True])
    pipe.save(tmp_path / "ckpt")
    assert AvatarPipeline.from_checkpoint(tmp_path / "ckpt").cfg.ref_motion

"""Reference behaviour (``DiTConfig.ref_behaviour``, ``models/dit/behaviour.py``): the reference's motion pooled
over time (per-channel mean and std) as a global adaLN condition. Zero at init; an image reference (one frame)
has no spread; a dropped reference adds nothing; the trainer grows a DiT with it and trains it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from avatarv.config import get_preset
from avatarv.errors import ConfigError
from avatarv.models.dit import RefInputs, VideoRefDiT
from avatarv.models.dit.behaviour import behaviour_statistics, pool_behaviour
from avatarv.training.config import DataConfig, TrainConfig
from avatarv.training.methods.base import MethodConfig
from avatarv.training.motion_stats import dataset_behaviour_statistics
from avatarv.training.trainer import Trainer


def test_pool_is_the_masked_mean_and_population_std():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(2, 5, 3, generator=g)
    mask = torch.tensor([[True, False, True, True, False], [False] * 5])
    feats, valid = pool_behaviour(m, mask)
    x = m[0, [0, 2, 3]].numpy()
    want = np.concatenate([x.mean(0), x.std(0)])  # numpy's std is the population std (ddof 0)
    assert np.allclose(feats[0].numpy(), want, atol=1e-6)
    assert valid.tolist() == [True, False] and not feats[1].any()
    one, _ = pool_behaviour(m[:, :1])  # an image reference: one frame, its values and no spread
    assert torch.allclose(one[:, :3], m[:, 0]) and not one[:, 3:].any()


def test_statistics_leave_constant_features_as_they_are():
    rows = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 2.0]])
    mean, std = behaviour_statistics(rows)
    assert mean == (2.0, 0.0, 0.0) and std == (1.0, 1.0, 1.0)


def _dit(seed: int = 0, **cfg) -> VideoRefDiT:
    torch.manual_seed(seed)
    return VideoRefDiT(replace(get_preset("tiny").dit, **cfg)).eval()


def _inputs(cfg, ref_frames: int = 4):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, cfg.latent_channels, 3, 4, 4, generator=g)
    audio = torch.randn(1, 3, cfg.audio_tokens_per_frame, cfg.audio_dim, generator=g)
    motion = torch.randn(1, 3, cfg.motion_dim, generator=g)
    ref = RefInputs(torch.randn(1, cfg.latent_channels, ref_frames, 4, 4, generator=g),
                    motion=torch.randn(1, ref_frames, cfg.motion_dim, generator=g))
    return x, torch.tensor([0.5]), audio, motion, ref


def _out(model, x, t, audio, motion, ref):
    with torch.no_grad():
        out = model(x, t, audio=audio, motion=motion, ref=ref)
    return torch.cat([out.video.flatten(), out.motion.flatten()])


def _live(model: VideoRefDiT) -> VideoRefDiT:
    with torch.no_grad():  # every zero-initialised output made live
        for p in model.parameters():
            if p.ndim >= 2 and not p.any():
                p.normal_(std=0.3)
    return model


def test_grown_behaviour_starts_as_the_model_without_it():
    base = _live(_dit())
    dim = 2 * base.cfg.motion_dim
    grown = base.with_ref_behaviour((0.1,) * dim, (2.0,) * dim)
    assert grown.behaviour_embedding is not None and base.behaviour_embedding is None
    assert grown.with_ref_behaviour((0.0,) * dim, (1.0,) * dim) is grown
    inputs = _inputs(base.cfg)
    assert torch.equal(_out(base, *inputs), _out(grown, *inputs))


def test_behaviour_reads_the_spread_over_time_and_a_dropped_reference_adds_nothing():
    model = _live(_dit(ref_behaviour=True))
    x, t, audio, motion, ref = _inputs(model.cfg)
    base = _out(model, x, t, audio, motion, ref)
    # the same frames in another order: every per-frame token is still there, the statistics are the same
    shuffled = replace(ref, motion=ref.motion[:, [2, 0, 3, 1]], latents=ref.latents[:, :, [2, 0, 3, 1]])
    spread = replace(ref, motion=ref.motion.mean(1, keepdim=True) + 2.0 * (ref.motion - ref.motion.mean(1, keepdim=True)))
    assert not torch.allclose(base, _out(model, x, t, audio, motion, spread))
    emb = model.behaviour_embedding
    assert torch.allclose(emb(ref), emb(shuffled), atol=1e-6)
    # every reference frame masked (training's reference dropout): the behaviour term is zero
    dropped = replace(ref, frame_mask=torch.zeros(1, 4, dtype=torch.bool))
    assert not emb(dropped).any()
    without = _live(_dit(ref_behaviour=True))
    without.load_state_dict(model.state_dict())
    with torch.no_grad():
        without.behaviour_embedding.mlp[-1].weight.zero_()
        without.behaviour_embedding.mlp[-1].bias.zero_()
    assert torch.equal(_out(model, x, t, audio, motion, dropped), _out(without, x, t, audio, motion, dropped))
    # no reference motion, or no reference: nothing to pool
    assert emb(replace(ref, motion=None)) is None and emb(None) is None


def test_config_checks():
    dit = get_preset("tiny").dit
    with pytest.raises(ConfigError, match="motion stream"):
        replace(dit, motion_dim=0, ref_behaviour=True)
    with pytest.raises(ConfigError, match="2·motion_dim"):
        replace(dit, ref_behaviour=True, behaviour_mean=(0.0,), behaviour_std=(1.0,))
    cfg = get_preset("tiny")
    with pytest.raises(ConfigError, match="ref_motion"):
        replace(cfg, dit=replace(dit, ref_behaviour=True))
    d = replace(dit, ref_behaviour=True, behaviour_mean=(0.5,) * 2 * dit.motion_dim,
                behaviour_std=(2.0,) * 2 * dit.motion_dim)
    assert type(d).from_dict(d.to_dict()) == d


@pytest.mark.parametrize("ref_frames", [0, 1])
def test_trainer_grows_the_behaviour_condition_and_trains_it(tmp_path, ref_frames):
    """Statistics from the references the stage sees (one frame for the image ablation: no spread), the
    condition moves with training and survives save/load."""
    base = _dit()
    base.save_pretrained(tmp_path / "init")
    cfg = TrainConfig(preset="tiny", steps=3, batch_size=2, precision="fp32", ema_decay=None,
                      out_dir=str(tmp_path / "run"), init_from=str(tmp_path / "init"), ref_behaviour=True,
                      data=DataConfig(kind="synthetic", size=4, frames=3, latent_hw=4),
                      method=MethodConfig(name="personality", drop_audio=0.0, drop_ref=0.0,
                                          ref_latent_frames=ref_frames))
    trainer = Trainer(cfg)
    model = trainer.model
    d = model.cfg.motion_dim
    mean, std = dataset_behaviour_statistics(trainer.dataset, ref_frames, model.cfg)
    assert model.cfg.behaviour_mean == mean and model.cfg.behaviour_std == std
    if ref_frames == 1:
        assert mean[d:] == (0.0,) * d and std[d:] == (1.0,) * d
    else:
        assert all(s != 1.0 for s in std[d:])
    for _ in range(3):
        trainer.train_step()
    assert model.behaviour_embedding.mlp[-1].weight.abs().sum() > 0
    model.save_pretrained(tmp_path / "out")
    loaded = VideoRefDiT.from_pretrained(tmp_path / "out")
    assert loaded.cfg.ref_behaviour and loaded.cfg.behaviour_std == std
    assert torch.equal(loaded.behaviour_embedding.mlp[-1].weight, model.behaviour_embedding.mlp[-1].weight)


def test_pipeline_conditions_on_the_reference_behaviour(tmp_path):
    """A checkpoint with the condition: the pipeline pools the motion it reads from the reference (every frame
    valid), the output depends on the condition, and the flag survives save / from_checkpoint."""
    from avatarv.media import Video, read_video
    from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions
    from avatarv.world import make_clip

    clip = make_clip(10004, 2, seconds=1.0, size=128, seed=0)
    reference, speech = Video(clip.frames, 25, clip.audio), clip.audio
    outs, seen = {}, []
    for live in (False, True):
        pipe = AvatarPipeline.random("tiny", seed=0)
        d = pipe.dit.cfg.motion_dim
        pipe.dit = pipe.dit.with_ref_behaviour((0.0,) * 2 * d, (0.5,) * 2 * d)
        pipe.cfg = replace(pipe.cfg, dit=pipe.dit.cfg, ref_motion=True)
        emb = pipe.dit.behaviour_embedding
        if live:
            with torch.no_grad():
                emb.mlp[-1].weight.normal_(std=0.5)
            features = emb.features
            emb.features = lambda ref, f=features: (seen.append(f(ref)), seen[-1])[1]
        out = tmp_path / f"o{live}.mp4"
        pipe.generate(reference, speech, out, GenerationOptions(seconds=0.6, steps=2, seed=1))
        outs[live] = read_video(out).frames
    feats, valid = seen[0]
    assert feats.shape == (1, 2 * d) and bool(valid.all()) and feats[:, d:].abs().sum() > 0
    assert not np.array_equal(outs[False], outs[True])
    pipe.save(tmp_path / "ckpt")
    loaded = AvatarPipeline.from_checkpoint(tmp_path / "ckpt")
    assert loaded.cfg.ref_motion and loaded.dit.cfg.ref_behaviour and loaded.dit.behaviour_embedding is not None

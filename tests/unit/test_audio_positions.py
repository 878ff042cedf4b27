"""Audio window positions (``DiTConfig.audio_positions``): attention over a frame's audio window is blind to
the order of its keys, so without positions the DiT cannot tell which audio token belongs to which video
frame; with them it can. Zero at init: adding them to a trained DiT changes nothing until they are trained."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from avatarv.config import get_preset
from avatarv.models.dit import VideoRefDiT
from avatarv.training.config import DataConfig, TrainConfig
from avatarv.training.methods.base import MethodConfig
from avatarv.training.trainer import Trainer


def _dit(positions: bool, seed: int = 0) -> VideoRefDiT:
    cfg = replace(get_preset("tiny").dit, audio_positions=positions)
    torch.manual_seed(seed)
    model = VideoRefDiT(cfg).eval()
    with torch.no_grad():  # live audio attention and heads (they start at zero)
        for p in model.parameters():
            if p.ndim >= 2 and not p.any():
                p.normal_(std=0.3)
    return model


def _inputs(cfg, frames: int = 3):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, cfg.latent_channels, frames, 4, 4, generator=g)
    audio = torch.randn(1, frames, cfg.audio_tokens_per_frame, cfg.audio_dim, generator=g)
    motion = torch.randn(1, frames, cfg.motion_dim, generator=g)
    return x, torch.tensor([0.5]), audio, motion


def _out(model, x, t, audio, motion):
    with torch.no_grad():
        out = model(x, t, audio=audio, motion=motion)
    return torch.cat([out.video.flatten(), out.motion.flatten()])


def test_without_positions_the_audio_order_within_a_frame_is_invisible():
    model = _dit(False)
    x, t, audio, motion = _inputs(model.cfg)
    shuffled = audio[:, :, [3, 1, 0, 2]]  # the same sounds, in another order inside each latent frame
    torch.testing.assert_close(_out(model, x, t, audio, motion), _out(model, x, t, shuffled, motion))


def test_with_positions_the_audio_order_within_a_frame_matters():
    model = _dit(True)
    x, t, audio, motion = _inputs(model.cfg)
    shuffled = audio[:, :, [3, 1, 0, 2]]
    diff = (_out(model, x, t, audio, motion) - _out(model, x, t, shuffled, motion)).abs().max()
    assert diff > 1e-3


def test_zero_positions_are_the_model_without_them():
    base = _dit(False)
    grown = base.with_audio_positions()
    assert grown.cfg.audio_positions and grown.audio_position is not None and not grown.audio_position.any()
    x, t, audio, motion = _inputs(base.cfg)
    assert torch.equal(_out(base, x, t, audio, motion), _out(grown.eval(), x, t, audio, motion))
    assert grown.with_audio_positions() is grown


def test_positions_check_the_tokens_per_frame():
    model = _dit(True)
    x, t, audio, motion = _inputs(model.cfg)
    with pytest.raises(ValueError, match="tokens per latent frame"):
        model(x, t, audio=audio[:, :, :2], motion=motion)


def test_positions_round_trip_and_train(tmp_path):
    """The trainer adds them to a starting DiT without them; they move with training and survive save/load."""
    base = _dit(False)
    base.save_pretrained(tmp_path / "init")
    cfg = TrainConfig(preset="tiny", steps=3, batch_size=2, precision="fp32", ema_decay=None, out_dir=str(tmp_path / "run"),
                      init_from=str(tmp_path / "init"), audio_positions=True,
                      data=DataConfig(kind="synthetic", size=4, frames=3, latent_hw=4),
                      method=MethodConfig(name="personality", drop_audio=0.0, drop_ref=0.0))
    trainer = Trainer(cfg)
    assert trainer.model.audio_position is not None
    for _ in range(3):
        trainer.train_step()
    assert trainer.model.audio_position.abs().sum() > 0
    trainer.model.save_pretrained(tmp_path / "out")
    loaded = VideoRefDiT.from_pretrained(tmp_path / "out")
    assert loaded.cfg.audio_positions and torch.equal(loaded.audio_position, trainer.model.audio_position)

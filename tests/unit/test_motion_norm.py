"""The motion stream's per-channel normalisation: formula, config round trip, the loss in the normalised
space, the trainer writing the data's statistics into the DiT it trains, and generation reading them back."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from avatarv.config import DiTConfig, get_preset
from avatarv.errors import ConfigError
from avatarv.models.dit import VideoRefDiT
from avatarv.models.dit.motion_norm import denormalize_motion, motion_statistics, normalize_motion
from avatarv.resources import example
from avatarv.training.batch import Batch
from avatarv.training.config import DataConfig, TrainConfig
from avatarv.training.data import SyntheticLatents
from avatarv.training.methods import MethodConfig, make_method
from avatarv.training.motion_stats import dataset_motion_statistics
from avatarv.training.trainer import Trainer
from tests.conftest import ChunkRecorder


def _tiny_with_stats(mean, std) -> DiTConfig:
    return replace(get_preset("tiny").dit, motion_mean=tuple(mean), motion_std=tuple(std))


def test_statistics_formula_and_inverse():
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(500, 6, generator=g) * torch.tensor([0.1, 0.2, 0.3, 1.0, 2.0, 0.0]) + torch.arange(6.0)
    mean, std = motion_statistics(rows)
    torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), rows.double().mean(0), atol=1e-6, rtol=0)
    want = rows.double().std(0, unbiased=False)
    torch.testing.assert_close(torch.tensor(std[:5], dtype=torch.float64), want[:5], atol=1e-6, rtol=0)
    assert std[5] == 1.0 and mean[5] == 5.0  # a constant channel is shifted, not blown up
    cfg = _tiny_with_stats(mean, std)
    x = normalize_motion(rows, cfg)
    assert x[:, :5].std(0, unbiased=False).sub(1).abs().max() < 1e-4 and x.mean(0).abs().max() < 1e-4
    torch.testing.assert_close(denormalize_motion(x, cfg), rows, atol=1e-5, rtol=0)
    plain = get_preset("tiny").dit  # no statistics: the identity (checkpoints trained before)
    assert normalize_motion(rows, plain) is rows and denormalize_motion(rows, plain) is rows


def test_config_round_trip_and_validation():
    cfg = _tiny_with_stats([0.1] * 6, [0.5] * 6)
    back = DiTConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and isinstance(back.motion_std, tuple)
    with pytest.raises(ConfigError, match="6 values each"):
        _tiny_with_stats([0.0] * 5, [1.0] * 5)
    with pytest.raises(ConfigError, match="positive"):
        _tiny_with_stats([0.0] * 6, [1.0] * 5 + [0.0])
    legacy = get_preset("tiny").dit.to_dict()
    del legacy["motion_mean"], legacy["motion_std"]  # a checkpoint written before the fields existed
    assert DiTConfig.from_dict(legacy).motion_std == ()


def test_loss_runs_on_normalised_motion():
    """A DiT with statistics (m, s) scores raw motion exactly as the same weights without statistics score
    (motion − m) / s: the flow and its target live in the normalised space."""
    plain = get_preset("tiny").dit
    g = torch.Generator().manual_seed(1)
    mean, std = torch.rand(6, generator=g), 0.1 + torch.rand(6, generator=g)
    torch.manual_seed(0)
    model = VideoRefDiT(plain)
    torch.nn.init.normal_(model.motion_head.weight, std=0.1)  # zero-initialised: make the motion output count
    items = [SyntheticLatents(plain, size=2)[i] for i in range(2)]
    raw = Batch.collate(items)
    norm = Batch.collate([{**it, "motion": (it["motion"] - mean) / std, "ref_motion": (it["ref_motion"] - mean) / std}
                          for it in items])
    method = make_method(MethodConfig(name="personality", drop_text=0, drop_audio=0, drop_ref=0))
    loss_plain, logs_plain = method.loss(model, norm, 0, torch.Generator().manual_seed(5))
    model.cfg = replace(plain, motion_mean=tuple(mean.tolist()), motion_std=tuple(std.tolist()))
    loss_stats, logs_stats = method.loss(model, raw, 0, torch.Generator().manual_seed(5))
    torch.testing.assert_close(loss_stats, loss_plain, atol=1e-5, rtol=1e-5)
    assert logs_stats["loss_motion"] == pytest.approx(logs_plain["loss_motion"], rel=1e-5)
    model.cfg = plain  # and without statistics the raw motion gives another loss
    assert abs(method.loss(model, raw, 0, torch.Generator().manual_seed(5))[1]["loss_motion"]
               - logs_plain["loss_motion"]) > 1e-3


def test_trainer_writes_the_datas_statistics_into_the_dit(tmp_path):
    data = DataConfig(size=4)
    cfg = TrainConfig(steps=2, out_dir=str(tmp_path), batch_size=2, data=data, ema_decay=None, precision="fp32",
                      motion_norm=True, method=MethodConfig(name="personality"))
    trainer = Trainer(cfg)
    want = dataset_motion_statistics(SyntheticLatents(get_preset("tiny").dit, size=4))
    assert (trainer.model.cfg.motion_mean, trainer.model.cfg.motion_std) == want
    trainer.fit(progress=False)
    saved = VideoRefDiT.from_pretrained(tmp_path / "model")
    assert (saved.cfg.motion_mean, saved.cfg.motion_std) == want
    # a DiT that already has statistics keeps them (continued training normalises as it was trained)
    again = Trainer(replace(cfg, out_dir=str(tmp_path / "b"), init_from=str(tmp_path / "model"), data=DataConfig(size=2)))
    assert again.model.cfg.motion_std == want[1]
    off = Trainer(replace(cfg, out_dir=str(tmp_path / "c"), motion_norm=False))
    assert off.model.cfg.motion_std == ()


def test_generation_reads_motion_back_in_raw_units(tmp_path):
    """One chunk: the same weights with statistics (m, s) generate s·x + m where they generated x without."""

    from avatarv.media import read_audio, read_video
    from avatarv.models.vae import VideoVAE
    from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions, _live

    examples = example("ref.mp4").parent
    ref, speech = read_video(examples / "ref.mp4"), read_audio(examples / "speech.wav")
    cfg = get_preset("tiny")
    cfg = replace(cfg, dit=replace(cfg.dit, motion_dim=16))
    torch.manual_seed(0)
    dit, vae = _live(VideoRefDiT(cfg.dit)), VideoVAE(cfg.vae)
    g = torch.Generator().manual_seed(2)
    mean, std = (torch.rand(16, generator=g) - 0.5).tolist(), (0.05 + torch.rand(16, generator=g)).tolist()

    def run(c) -> torch.Tensor:
        dit.cfg = c.dit
        pipe = AvatarPipeline(c, dit, vae, random_weights=True)
        recorder = ChunkRecorder()
        calls = recorder.calls
        pipe.generate(ref, speech, tmp_path / f"{len(mean)}-{id(c)}.mp4", GenerationOptions(seconds=0.6, steps=2),
                      on_chunk=recorder)
        assert len(calls) == 1
        return calls[0][1]

    plain = run(cfg)
    scaled = run(replace(cfg, dit=replace(cfg.dit, motion_mean=tuple(mean), motion_std=tuple(std))))
    torch.testing.assert_close(scaled, plain * torch.tensor(std) + torch.tensor(mean), atol=1e-4, rtol=1e-4)

"""Trainer pieces: the Muon/AdamW split, each stage overfits a fixed batch, aux-loss schedule, configs."""

from __future__ import annotations

import json

import pytest
import torch

from avatarv.config import get_preset
from avatarv.errors import ConfigError
from avatarv.models.dit import VideoRefDiT
from avatarv.training.config import DataConfig, TrainConfig
from avatarv.training.methods import MethodConfig, make_method
from avatarv.training.methods.aux_losses import FeatureMatchingLoss
from avatarv.training.optim import MuonAdamW, OptimConfig, split_parameters
from avatarv.training.trainer import Trainer


def test_muon_adamw_split_covers_every_parameter_once():
    model = VideoRefDiT(get_preset("small").dit)
    muon, adamw = split_parameters(model)
    names = [n for n, _ in model.named_parameters()]
    assert sorted(muon + adamw) == sorted(names) and not set(muon) & set(adamw)
    params = dict(model.named_parameters())
    assert all(params[n].ndim == 2 and n.startswith("blocks.") for n in muon)
    assert "blocks.0.self_attn.q.weight" in muon and "blocks.0.ffn.fc1.weight" in muon
    for n in ("patch_embedding.weight", "text_embedding.0.weight", "head.proj.weight", "blocks.0.modulation",
              "blocks.0.self_attn.norm_q.weight", "blocks.0.self_attn.q.bias", "ref_embedding"):
        assert n in adamw, n
    opt = MuonAdamW(model, OptimConfig())
    in_opts = [id(p) for o in opt.optimizers.values() for g in o.param_groups for p in g["params"]]
    assert sorted(in_opts) == sorted(id(p) for p in model.parameters())  # each exactly once
    assert isinstance(opt.optimizers["muon"], torch.optim.Muon)  # (ShardedMuon under FSDP)


@pytest.mark.parametrize("stage", ["t2v", "a2v", "personality"])
def test_each_stage_overfits_a_fixed_batch(tmp_path, stage):
    cfg = TrainConfig(steps=20, out_dir=str(tmp_path), batch_size=2, data=DataConfig(size=2), ema_decay=None,
                      method=MethodConfig(name=stage, drop_text=0, drop_audio=0, drop_ref=0),
                      optim=OptimConfig(lr=1e-2), precision="fp32")
    trainer = Trainer(cfg)
    losses = []
    for _ in range(20):  # the same items, noise and timesteps every step: a pure overfit
        trainer.step = 0  # the step seeds the noise and timesteps
        trainer.cursor.position = 0
        losses.append(trainer.train_step()["loss"])
    assert losses[-1] < 0.25 * losses[0], losses
    if stage == "personality":
        rec = trainer.train_step()
        assert "loss_motion" in rec  # the motion stream is trained jointly


def test_personality_uses_reference_and_audio():
    method = make_method(MethodConfig(name="personality"))
    assert method.uses_ref and method.uses_audio and method.uses_motion
    assert not make_method(MethodConfig(name="t2v")).uses_audio


def test_aux_loss_switches_on_by_schedule(tmp_path):
    torch.manual_seed(0)
    decoder = torch.nn.Conv3d(4, 3, 1)
    extractor = torch.nn.Sequential(torch.nn.Flatten(1), torch.nn.LazyLinear(8))
    aux = {"feat": FeatureMatchingLoss(lambda z: torch.tanh(decoder(z)), extractor)}
    cfg = MethodConfig(name="personality", aux=(("feat", 0.5, 2, 2),))
    method = make_method(cfg, aux)
    model = VideoRefDiT(get_preset("tiny").dit)
    from avatarv.training.data import DataCursor, SyntheticLatents, load_batch

    data = SyntheticLatents(model.cfg, size=2)
    weights = []
    for step in range(5):
        batch = load_batch(data, DataCursor(2), 2)
        loss, logs = method.loss(model, batch, step, torch.Generator().manual_seed(step))
        weights.append(logs["aux_feat_weight"])
        if step >= 3:
            assert "aux_feat" in logs and logs["aux_feat"] >= 0
    assert weights == [0.0, 0.0, 0.0, 0.25, 0.5]  # off, then a linear ramp over 2 steps to 0.5
    with pytest.raises(ConfigError, match="not provided"):
        make_method(cfg, {})


def test_feature_matching_is_zero_on_the_target():
    extract = torch.nn.Sequential(torch.nn.Flatten(1), torch.nn.Linear(3 * 2 * 4 * 4, 5))
    loss = FeatureMatchingLoss(lambda z: z[:, :3], extract)
    x = torch.randn(2, 4, 2, 4, 4)
    assert loss(x, x, None).abs() < 1e-6 and loss(x + torch.randn_like(x), x, None) > 1e-3


def test_config_from_toml_and_errors(tmp_path):
    path = tmp_path / "stage3.toml"
    path.write_text('preset = "tiny"\nsteps = 7\n[method]\nname = "personality"\nknown_frames = [1, 2]\n'
                    'curriculum = [[0, 2, 4], [5, 3, 8]]\n[optim]\nlr = 0.002\n')
    cfg = TrainConfig.load(path)
    assert cfg.steps == 7 and cfg.method.name == "personality" and cfg.optim.lr == 0.002
    assert cfg.method.known_frames == (1, 2) and cfg.method.curriculum == ((0, 2, 4), (5, 3, 8))
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    path.write_text("steps = 3\nbogus = 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        TrainConfig.load(path)
    with pytest.raises(ConfigError, match="unknown training method"):
        make_method(MethodConfig(name="stage9"))
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp8")


def test_curriculum_crops_duration_and_resolution():
    from avatarv.training.data import DataCursor, SyntheticLatents, load_batch

    method = make_method(MethodConfig(name="a2v", curriculum=((0, 2, 4), (10, 3, 8))))
    data = SyntheticLatents(get_preset("tiny").dit, size=2, frames=3, latent_hw=8)
    batch = load_batch(data, DataCursor(2), 2)
    early = method.crop(batch, 0)
    assert early.latents.shape[2:] == (2, 4, 4) and early.audio.shape[1] == 2
    assert method.crop(batch, 12).latents.shape[2:] == (3, 8, 8)


def test_parse_stage_steps():
    import pytest

    from avatarv.errors import ConfigError
    from avatarv.training.cli import parse_stage_steps

    assert parse_stage_steps("3000,3000,1500") == (3000, 3000, 1500)
    for bad in ("3000,3000", "a,b,c", "1,0,2"):
        with pytest.raises(ConfigError, match="--stage-steps"):
            parse_stage_steps(bad)
    assert parse_stage_steps("0,0,400", continued=True) == (0, 0, 400)  # --init: stages 1–2 do not run
    for bad in ("0,0,0", "-1,0,5"):
        with pytest.raises(ConfigError, match="0,0,N with --init"):
            parse_stage_steps(bad, continued=True)


def test_parse_aux_schedule():
    import pytest

    from avatarv.errors import ConfigError
    from avatarv.training.cli import parse_aux_schedule

    assert parse_aux_schedule("500,250") == (500, 250) and parse_aux_schedule("0,1") == (0, 1)
    for bad in ("500", "a,1", "-1,5", "5,0", "1,2,3"):
        with pytest.raises(ConfigError, match="--identity-aux"):
            parse_aux_schedule(bad)


def test_known_noise_perturbs_a_generated_prefix_but_not_the_scene_image():
    from avatarv.training.data import DataCursor, SyntheticLatents, load_batch

    torch.manual_seed(0)
    model = VideoRefDiT(get_preset("tiny").dit)
    batch = load_batch(SyntheticLatents(model.cfg, size=2), DataCursor(2), 2)
    seen = {}

    def conds(known: int, noise: float) -> torch.Tensor:
        def hook(_module, args, kwargs):
            seen["cond"] = kwargs["cond"]

        handle = model.register_forward_pre_hook(hook, with_kwargs=True)
        cfg = MethodConfig(name="a2v", known_frames=(known,), known_noise=noise)
        make_method(cfg).loss(model, batch, 0, torch.Generator().manual_seed(0))
        handle.remove()
        return seen["cond"][:, 4:]  # [B, z, F, h, w]: the condition latents (after the 4 mask channels)

    x0 = batch.latents
    clean2, noisy2 = conds(2, 0.0), conds(2, 0.5)
    assert torch.equal(clean2[:, :, :2], x0[:, :, :2]) and not clean2[:, :, 2:].any()
    moved = (noisy2[:, :, :2] - x0[:, :, :2]).flatten(1).norm(dim=1) / x0[:, :, :2].flatten(1).norm(dim=1)
    assert (moved > 0).all() and (moved < 1.0).all()  # s ~ U(0, 0.5): partly noise, never only noise
    assert not noisy2[:, :, 2:].any()  # unknown frames stay zero
    assert torch.equal(conds(1, 0.5), conds(1, 0.0))  # the scene image alone is never perturbed

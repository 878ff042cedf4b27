"""Stage 4: CFG distillation converges to the teacher's guided velocity; DMD's generator gradient is the DMD
formula on a toy Gaussian case with closed-form scores; both stages alternate, export and resume exactly; LoRA
training merges back into plain weights."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from avatarv.diffusion import GuidanceScales
from avatarv.diffusion.guidance import combine_nested
from avatarv.models.dit import VideoRefDiT
from avatarv.training.batch import Batch
from avatarv.training.config import DataConfig, TrainConfig
from avatarv.training.data import load_batch
from avatarv.training.methods.base import MethodConfig, make_method
from avatarv.training.methods.cfg_distill import teacher_guided
from avatarv.training.methods.dmd import DMD, GeneratorCritic, dmd_gradient, dmd_loss
from avatarv.training.trainer import Trainer


def test_combine_nested_is_the_guidance_formula():
    g = torch.Generator().manual_seed(0)
    preds = [torch.randn(2, 3, generator=g) for _ in range(4)]
    scales = GuidanceScales({"ref": 1.5, "audio": 3.0, "text": 2.0})
    by_set = {frozenset(scales.order[:k]): preds[k] for k in range(4)}
    expected = scales.combine({p: by_set[p] for p in scales.passes()})
    got = combine_nested(preds, torch.tensor([[1.5, 3.0, 2.0]]).expand(2, -1))
    assert torch.allclose(got, expected, atol=1e-6)
    # written out: v∅ + s1(v_r − v∅) + s2(v_ra − v_r) + s3(v_rat − v_ra)
    manual = preds[0] + 1.5 * (preds[1] - preds[0]) + 3.0 * (preds[2] - preds[1]) + 2.0 * (preds[3] - preds[2])
    assert torch.allclose(got, manual, atol=1e-6)


def _cfg(out, name, steps, **method):
    return TrainConfig(preset="tiny", steps=steps, batch_size=2, ckpt_every=2, seed=3, out_dir=str(out),
                       ema_decay=None, data=DataConfig(size=2), method=MethodConfig(name=name, **method))


def _live_tiny(seed=0) -> VideoRefDiT:
    from avatarv.config import get_preset

    torch.manual_seed(seed)
    model = VideoRefDiT(get_preset("tiny").dit)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2 and not p.any():
                p.normal_(std=0.05)
    return model


def test_cfg_distillation_student_converges_to_the_guided_teacher(tmp_path):
    """On a fixed batch, the student's one pass approaches the teacher's 3-scale guided velocity."""
    cfg = _cfg(tmp_path, "cfg_distill", 30, guidance_range=((1.5, 1.5), (3.0, 3.0), (2.0, 2.0)), known_frames=(0,),
               drop_ref=0.0, drop_audio=0.0, drop_text=0.0)
    cfg.optim.lr = 3e-3
    trainer = Trainer(cfg, model=_live_tiny())
    student, teacher = trainer.model, trainer.method.teacher
    assert student.cfg.num_guidance_scales == 3 and teacher.cfg.num_guidance_scales == 0
    batch = load_batch(trainer.dataset, trainer.cursor.__class__(2, seed=0), 2)

    def error() -> float:
        g = torch.Generator().manual_seed(11)
        d = trainer.method.draw(student, batch, 0, g)
        scales = torch.tensor([[1.5, 3.0, 2.0]]).expand(2, -1)
        with torch.no_grad():
            v_t, _ = teacher_guided(teacher, d.x_t, d.t, d.conditions, scales, d.motion_t)
            v_s = student(d.x_t, d.t, motion=d.motion_t, guidance=scales, **d.conditions.dit_kwargs()).video
        return float(((v_s - v_t) ** 2).mean() / (v_t**2).mean())

    before = error()
    records = trainer.fit(progress=False)
    after = error()
    assert before > 0.05  # guidance moves the teacher's velocity away from its conditional one
    assert after < 0.35 * before, (before, after)
    assert records[-1]["loss"] < records[0]["loss"]


class GaussianScore(nn.Module):
    """The exact flow velocity of data x0 ~ N(mu, var) elementwise: x_t = (1 − t)x0 + tε, v = (x_t − E[x0|x_t])/t."""

    def __init__(self, mu: float, var: float):
        super().__init__()
        self.mu, self.var = mu, var
        self.cfg = SimpleNamespace(cond_channels=0, motion_dim=0, num_guidance_scales=0)
        self.calls = []

    def x0(self, x, t):
        a, b = 1 - t.view(-1, 1, 1, 1, 1), t.view(-1, 1, 1, 1, 1)
        return self.mu + a * self.var / (a**2 * self.var + b**2) * (x - a * self.mu)

    def forward(self, x, t, motion=None, **kw):
        self.calls.append((x.clone(), t.clone()))
        return SimpleNamespace(video=(x - self.x0(x, t)) / t.view(-1, 1, 1, 1, 1), motion=None)


class DirectGenerator(nn.Module):
    """A generator whose clean estimate x̂0 = x_σ − σ·v is its parameter θ, whatever its input."""

    def __init__(self, shape):
        super().__init__()
        self.theta = nn.Parameter(torch.randn(shape, generator=torch.Generator().manual_seed(4)))
        self.cfg = SimpleNamespace(cond_channels=0, motion_dim=0, num_guidance_scales=0)

    def forward(self, x, t, motion=None, **kw):
        return SimpleNamespace(video=(x - self.theta) / t.view(-1, 1, 1, 1, 1), motion=None)


@pytest.mark.parametrize("normalize", [True, False])
def test_dmd_generator_gradient_is_the_dmd_formula_on_gaussians(normalize):
    cfg = MethodConfig(name="dmd", known_frames=(0,), critic_steps=1, dmd_regression=0.0, dmd_normalize=normalize,
                       drop_ref=0.0, drop_audio=0.0, drop_text=0.0)
    method = DMD(cfg)
    real, fake = GaussianScore(0.5, 0.8), GaussianScore(-0.3, 1.6)
    method.teacher = real
    gen = DirectGenerator((2, 3, 2, 4, 4))
    pair = GeneratorCritic(gen, fake)
    batch = Batch(latents=torch.randn(2, 3, 2, 4, 4, generator=torch.Generator().manual_seed(1)))
    assert not method.is_critic_step(1)
    loss, logs = method.loss(pair, batch, 1, torch.Generator().manual_seed(2))
    loss.backward()
    x_t, t = real.calls[-1]  # the real score was evaluated once (guidance passes of a conditionless batch reused)
    assert len(real.calls) == 1 and torch.equal(fake.calls[-1][0], x_t)
    theta = gen.theta.detach()
    x0_real, x0_fake = real.x0(x_t, t), fake.x0(x_t, t)
    g = x0_fake - x0_real
    if normalize:
        g = g / (theta - x0_real).abs().flatten(1).mean(1).view(-1, 1, 1, 1, 1)
    expected = g / theta.numel()
    assert torch.allclose(gen.theta.grad, expected, rtol=1e-4, atol=1e-9)
    # and the update moves x̂0 towards the real distribution: the mean goes from θ's towards mu_real
    assert float((expected * (theta - 0.5)).sum()) > 0


def test_dmd_gradient_masks_known_frames():
    g = torch.Generator().manual_seed(0)
    x0, real, fake = (torch.randn(1, 2, 3, 2, 2, generator=g) for _ in range(3))
    mask = torch.tensor([0.0, 1.0, 1.0]).view(1, 1, 3, 1, 1)
    out = dmd_gradient(x0, real, fake, True, mask)
    assert torch.all(out[:, :, 0] == 0)
    norm = ((x0 - real).abs() * mask.expand_as(x0)).sum() / mask.expand_as(x0).sum()
    assert torch.allclose(out[:, :, 1:], ((fake - real) / norm)[:, :, 1:])
    x = x0.clone().requires_grad_(True)
    dmd_loss(x, out, mask).backward()
    assert torch.allclose(x.grad, out / mask.expand_as(x0).sum())


def test_dmd_alternates_critic_and_generator_updates(tmp_path):
    cfg = _cfg(tmp_path, "dmd", 3, critic_steps=2, dmd_regression_steps=1, ode_steps=2)
    trainer = Trainer(cfg, model=_live_tiny())
    assert isinstance(trainer.model, GeneratorCritic)
    gen_before = {k: v.clone() for k, v in trainer.model.generator.state_dict().items()}
    critic_before = {k: v.clone() for k, v in trainer.model.critic.state_dict().items()}
    recs = trainer.fit(progress=False)
    # steps 0, 1: critic; step 2: generator (with the ODE regression, its first generator update)
    assert "loss_critic" in recs[0] and "loss_critic" in recs[1] and "loss_dmd" in recs[2]
    assert "loss_regression" in recs[2]
    changed = lambda a, b: any(not torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    assert changed(critic_before, trainer.model.critic.state_dict())
    assert changed(gen_before, trainer.model.generator.state_dict())
    exported = VideoRefDiT.from_pretrained(tmp_path / "model")
    for k, v in exported.state_dict().items():
        assert torch.equal(v, trainer.model.generator.state_dict()[k])


@pytest.mark.parametrize("name", ["cfg_distill", "dmd"])
def test_stage4_resume_is_exact(tmp_path, name):
    extra = {"critic_steps": 1, "dmd_regression_steps": 1, "ode_steps": 2} if name == "dmd" else {}
    straight = Trainer(_cfg(tmp_path / "a", name, 4, **extra), model=_live_tiny())
    rec_a = straight.fit(progress=False)
    first = Trainer(_cfg(tmp_path / "b", name, 4, **extra), model=_live_tiny())
    first.fit(max_steps=2, progress=False)
    resumed = Trainer(_cfg(tmp_path / "b", name, 4, **extra), model=_live_tiny())
    rec_b = resumed.fit(resume=True, progress=False)
    assert [r["loss"] for r in rec_a[2:]] == [r["loss"] for r in rec_b]
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_lora_training_trains_adapters_only_and_exports_merged_weights(tmp_path):
    cfg = replace(_cfg(tmp_path, "cfg_distill", 2), lora_rank=4, lora_alpha=8.0)
    trainer = Trainer(cfg, model=_live_tiny())
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    frozen_before = {n: p.clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    trainer.fit(progress=False)
    assert all(torch.equal(p, frozen_before[n]) for n, p in trainer.model.named_parameters() if not p.requires_grad)
    exported = VideoRefDiT.from_pretrained(tmp_path / "model")
    g = torch.Generator().manual_seed(5)
    c = exported.cfg
    x = torch.randn(1, c.latent_channels, 3, 8, 8, generator=g)
    kw = dict(t=torch.tensor([0.4]), text=torch.randn(1, 4, c.text_dim, generator=g),
              audio=torch.randn(1, 3, 4, c.audio_dim, generator=g), guidance=torch.tensor([[1.2, 2.0, 1.0]]))
    trainer.model.eval()
    with torch.no_grad():
        a = trainer.model(x, **kw).video
        b = exported(x, **kw).video
    assert torch.allclose(a, b, atol=1e-5)
    lora_b = [p for n, p in trainer.model.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)  # the adapters did train


def test_unknown_method_and_bad_ranges_are_config_errors():
    from avatarv.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown training method"):
        make_method(MethodConfig(name="nope"))
    with pytest.raises(ConfigError, match="guidance_range"):
        make_method(MethodConfig(name="cfg_distill", guidance_range=((1.0, 2.0),)))
    with pytest.raises(ConfigError, match="critic_steps"):
        make_method(MethodConfig(name="dmd", critic_steps=0))

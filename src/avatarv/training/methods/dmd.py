"""Stage 4b: improved Distribution Matching Distillation (seed, Stage 4: "an improved DMD reduces the steps").

Three networks (DMD: Yin et al. 2024a; DMD2: Yin et al. 2024b, github.com/tianweiy/DMD2 ``main/sd_unified_model.py``
and ``sd_guidance.py``, followed for the loss; CausVid's ODE-pair initialisation for the regression):

- the **generator** G (the student, trained): a few-step sampler (``dmd_steps``, the ``x0`` sampler:
  jump to x̂0 = x_σ − σ·v_G(x_σ, σ), noise it to the next level). Its input at step i is noised data
  x_σi = (1 − σi)·x0 + σi·ε (DMD2 simulates it with the generator's own earlier steps; noised data is the
  cheap form, with the same marginal once G matches the data);
- the **fake score** (critic) f (trained): flow matching on G's samples, so it models the student's
  distribution; it starts as a copy of the teacher;
- the **real score**: the frozen teacher with CFG at ``dmd_guidance``.

The generator's update moves x̂0 along the difference of the two scores' clean estimates at a random noise
level t ∈ ``dmd_t_range``: with x̂_t = (1 − t)·x̂0 + t·ε,

    x0_real = x̂_t − t·v_teacher(x̂_t, t),   x0_fake = x̂_t − t·v_fake(x̂_t, t)
    g = (x0_fake − x0_real) / mean|x̂0 − x0_real|          (per sample; DMD's gradient normalisation)
    L_G = ½·‖x̂0 − sg(x̂0 − g)‖² / n                         (so ∂L_G/∂x̂0 = g / n, n = elements averaged)

(the same for the motion stream, weighted by ``motion_weight``), over the generated frames only.

Stability measures (each can be switched off for the ablation):

- **two time scales** (DMD2 §4.1): ``critic_steps`` critic updates for every generator update, so the fake
  score tracks the moving generator (with 1, the fake score lags and the generator chases a stale gradient);
- **gradient normalisation**: the per-sample scale above (without it the update's size follows the score
  gap, which blows up early);
- **ODE-pair regression** at the start (DMD1's regression loss / CausVid): for the first
  ``dmd_regression_steps`` generator updates, x̂0 also regresses the teacher's own ``ode_steps``-step Euler
  solution from the same x_σ, which anchors G on the teacher's modes before the distribution-matching term
  takes over (without it, the generator mode-collapses early);
- the critic starts as the teacher (the two scores agree at step 0, so the first gradients are small).

The trained module is a :class:`GeneratorCritic` (``generator`` + ``critic``); the checkpoint keeps both and
the exported model (``model/``) is the generator. Updates alternate by step: step s updates the critic unless
``s % (critic_steps + 1) == critic_steps``. Only the updated network gets gradients (the other's ``grad`` stays
None, and the optimizers skip it).
"""

from __future__ import annotations

import torch
from torch import nn

from avatarv.diffusion import EulerSampler, add_noise, sigma_schedule, velocity_target
from avatarv.diffusion.flow import resolution_shift
from avatarv.errors import ConfigError
from avatarv.models.dit import VideoRefDiT
from avatarv.models.dit.conditions import CONDITION_ORDER
from avatarv.training.batch import Batch
from avatarv.training.methods.base import MethodConfig, PersonalitySFT
from avatarv.training.methods.cfg_distill import frozen, load_teacher, teacher_guided


class GeneratorCritic(nn.Module):
    """The two trained networks of DMD under one module (one optimizer, one checkpoint)."""

    def __init__(self, generator: VideoRefDiT, critic: VideoRefDiT):
        super().__init__()
        self.generator, self.critic = generator, critic

    @property
    def cfg(self):
        return self.generator.cfg

    def save_pretrained(self, directory) -> None:
        self.generator.save_pretrained(directory)


def reshard(module: nn.Module) -> None:
    """Free an FSDP2 root's gathered parameters after a forward without backward (the root is not resharded
    after its forward, ``distributed/fsdp.py``; a backward would do it). No-op without FSDP."""
    if hasattr(module, "reshard"):
        module.reshard()


def dmd_gradient(x0_hat: torch.Tensor, x0_real: torch.Tensor, x0_fake: torch.Tensor, normalize: bool,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """The DMD update direction g (see the module docstring), ``[B, ...]``; zero where ``mask`` is 0. The
    normaliser is mean|x̂0 − x0_real| over each sample's masked elements."""
    g = x0_fake - x0_real
    if normalize:
        diff = (x0_hat - x0_real).abs()
        if mask is not None:
            m = mask.expand_as(diff)
            norm = (diff * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp(min=1)
        else:
            norm = diff.flatten(1).mean(1)
        g = g / norm.clamp(min=1e-6).reshape(-1, *([1] * (g.dim() - 1)))
    if mask is not None:
        g = g * mask
    return torch.nan_to_num(g)


def dmd_loss(x0_hat: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """½‖x̂0 − sg(x̂0 − g)‖² averaged over the (masked) elements: its gradient in x̂0 is g / n."""
    target = (x0_hat - grad).detach()
    sq = 0.5 * (x0_hat.float() - target.float()) ** 2
    if mask is None:
        return sq.mean()
    m = mask.expand_as(sq)
    return (sq * m).sum() / m.sum().clamp(min=1)


class DMD(PersonalitySFT):
    """Improved DMD (see the module docstring). The model passed to :meth:`loss` is a :class:`GeneratorCritic`."""

    name = "dmd"

    def __init__(self, cfg: MethodConfig, aux_losses: dict | None = None):
        super().__init__(cfg, aux_losses)
        if cfg.dmd_steps < 1 or cfg.critic_steps < 1:
            raise ConfigError("method.dmd_steps and method.critic_steps must be ≥ 1")
        if len(cfg.dmd_guidance) != len(CONDITION_ORDER):
            raise ConfigError(f"method.dmd_guidance needs one scale per condition {CONDITION_ORDER}")
        self.teacher: VideoRefDiT | None = None

    # ------------------------------------------------------------------ model
    def prepare_model(self, model: VideoRefDiT) -> GeneratorCritic:
        self.teacher = load_teacher(self.cfg, model)
        # the fake score starts as the real one (a CFG-distilled teacher's guidance input is simply not fed)
        critic = frozen(self.teacher).train().requires_grad_(True)
        return GeneratorCritic(model, critic)

    def shard(self, model: GeneratorCritic, apply_fsdp):
        """Each network is its own FSDP2 root (they run separately, never through the pair's forward)."""
        apply_fsdp(model.generator)
        apply_fsdp(model.critic)
        return model

    def exported_state(self, state: dict) -> dict:
        return {k[len("generator."):]: v for k, v in state.items() if k.startswith("generator.")}

    def is_critic_step(self, step: int) -> bool:
        return step % (self.cfg.critic_steps + 1) != self.cfg.critic_steps

    def generator_updates(self, step: int) -> int:
        """Generator updates before ``step``."""
        return step // (self.cfg.critic_steps + 1)

    # ------------------------------------------------------------------ pieces
    def _sigmas(self, tokens: int) -> torch.Tensor:
        return sigma_schedule(self.cfg.dmd_steps, resolution_shift(tokens))

    def _guidance(self, net: VideoRefDiT, b: int, device) -> dict:
        if not net.cfg.num_guidance_scales:
            return {}
        return {"guidance": torch.tensor([list(self.cfg.dmd_guidance)], device=device).expand(b, -1)}

    def _generate(self, gen: VideoRefDiT, d, generator: torch.Generator):
        """x̂0 (video, motion) of the generator from noised data at one of its own steps (drawn per sample)."""
        x0 = d.x0
        b, _, f, h, w = x0.shape
        sigmas = self._sigmas(f * (h // 2) * (w // 2))
        idx = torch.randint(self.cfg.dmd_steps, (b,), generator=generator)
        sigma = sigmas[idx].to(x0.device).float()  # [B]
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        x_s = add_noise(x0, noise, sigma)
        m_s = None
        if d.motion_t is not None:
            m0 = d.motion_t - d.t.view(-1, 1, 1) * d.motion_target  # the clean (normalised) motion
            m_noise = torch.randn(m0.shape, generator=generator).to(x0.device)
            m_s = add_noise(m0, m_noise, sigma)
        out = gen(x_s, sigma, motion=m_s, **d.conditions.dit_kwargs(), **self._guidance(gen, b, x0.device))
        x0_hat = x_s - sigma.view(-1, 1, 1, 1, 1) * out.video.float()
        m0_hat = None if m_s is None else m_s - sigma.view(-1, 1, 1) * out.motion.float()
        return x0_hat, m0_hat, (x_s, m_s, sigma)

    def _noised(self, x0_hat, m0_hat, generator: torch.Generator):
        b = x0_hat.shape[0]
        lo, hi = self.cfg.dmd_t_range
        t = (lo + (hi - lo) * torch.rand(b, generator=generator)).to(x0_hat.device)
        eps = torch.randn(x0_hat.shape, generator=generator).to(x0_hat.device)
        x_t = add_noise(x0_hat, eps, t)
        m_t = m_eps = None
        if m0_hat is not None:
            m_eps = torch.randn(m0_hat.shape, generator=generator).to(x0_hat.device)
            m_t = add_noise(m0_hat, m_eps, t)
        return t, eps, x_t, m_eps, m_t

    @torch.no_grad()
    def _teacher_ode(self, start, conditions, b: int):
        """The teacher's guided Euler solution from the generator's input (x_σ, m_σ at σ per sample)."""
        x_s, m_s, sigma = start
        x0, m0 = [], []
        for i in range(b):  # each sample from its own σ
            sig = torch.linspace(float(sigma[i]), 0.0, self.cfg.ode_steps + 1)
            cond_i = _index_conditions(conditions, i)
            scales = torch.tensor([list(self.cfg.dmd_guidance)], device=x_s.device)

            def velocity(state, s, cond_i=cond_i, scales=scales):
                v, m = teacher_guided(self.teacher, state[0], s.reshape(1).float(), cond_i, scales,
                                      state[1] if len(state) > 1 else None)
                return (v,) if m is None else (v, m)

            state = (x_s[i : i + 1],) if m_s is None else (x_s[i : i + 1], m_s[i : i + 1])
            out = EulerSampler()(velocity, state, sig)
            x0.append(out[0])
            if m_s is not None:
                m0.append(out[1])
        return torch.cat(x0), (torch.cat(m0) if m_s is not None else None)

    # ------------------------------------------------------------------ the two updates
    def loss(self, model: GeneratorCritic, batch: Batch, step: int, generator: torch.Generator):
        if self.teacher is None:
            raise RuntimeError("DMD.prepare_model was not called (the trainer calls it)")
        d = self.draw(model.generator, batch, step, generator)
        gen_mask = (~d.known_mask)[:, None, :, None, None].to(d.x0.dtype)  # [B, 1, F, 1, 1]
        m_mask = (~d.known_mask)[:, :, None].to(d.x0.dtype)  # [B, F, 1]
        if self.is_critic_step(step):
            return self._critic_loss(model, d, generator)
        return self._generator_loss(model, d, gen_mask, m_mask, step, generator)

    def _critic_loss(self, model: GeneratorCritic, d, generator):
        with torch.no_grad():
            x0_hat, m0_hat, _ = self._generate(model.generator, d, generator)
        reshard(model.generator)
        t, eps, x_t, m_eps, m_t = self._noised(x0_hat, m0_hat, generator)
        out = model.critic(x_t, t, motion=m_t, **d.conditions.dit_kwargs())
        mv = None if m_t is None else velocity_target(m0_hat, m_eps)
        # flow matching on the generator's samples: the stages' masked regression (generated frames only)
        loss, parts = self.regression(d, out.video, out.motion, velocity_target(x0_hat, eps), mv)
        logs = {"loss_critic": parts["loss_video"], "loss": loss.item()}
        if "loss_motion" in parts:
            logs["loss_critic_motion"] = parts["loss_motion"]
        return loss, logs

    def _generator_loss(self, model: GeneratorCritic, d, gen_mask, m_mask, step, generator):
        cfg = self.cfg
        b = d.x0.shape[0]
        x0_hat, m0_hat, start = self._generate(model.generator, d, generator)
        t, _, x_t, _, m_t = self._noised(x0_hat.detach(), None if m0_hat is None else m0_hat.detach(), generator)
        with torch.no_grad():
            scales = torch.tensor([list(cfg.dmd_guidance)], device=d.x0.device).expand(b, -1)
            v_real, mv_real = teacher_guided(self.teacher, x_t, t, d.conditions, scales, m_t)
            fake = model.critic(x_t, t, motion=m_t, **d.conditions.dit_kwargs())
        reshard(model.critic)
        with torch.no_grad():
            tv = t.view(-1, 1, 1, 1, 1)
            g = dmd_gradient(x0_hat.detach(), x_t - tv * v_real, x_t - tv * fake.video.float(), cfg.dmd_normalize,
                             gen_mask)
        loss = dmd_loss(x0_hat, g, gen_mask)
        logs = {"loss_dmd": loss.item(), "dmd_grad_abs": float(g.abs().mean())}
        if m0_hat is not None:
            with torch.no_grad():
                tm = t.view(-1, 1, 1)
                gm = dmd_gradient(m0_hat.detach(), m_t - tm * mv_real, m_t - tm * fake.motion.float(),
                                  cfg.dmd_normalize, m_mask)
            ml = dmd_loss(m0_hat, gm, m_mask)
            loss = loss + cfg.motion_weight * ml
            logs["loss_dmd_motion"] = ml.item()
        if cfg.dmd_regression > 0 and self.generator_updates(step) < cfg.dmd_regression_steps:
            x_ode, m_ode = self._teacher_ode(start, d.conditions, b)
            reg, _ = self.regression(d, x0_hat, m0_hat, x_ode, m_ode)  # the same masked MSE, on clean estimates
            loss = loss + cfg.dmd_regression * reg
            logs["loss_regression"] = reg.item()
        logs["loss"] = loss.item()
        return loss, logs


def _index_conditions(conditions, i: int):
    """Sample ``i`` of batched conditions (tensors sliced; reference streams sliced per field)."""
    from dataclasses import replace

    def cut(x):
        return None if x is None else (x[i : i + 1] if x.shape[0] > 1 else x)

    out = replace(conditions, cond=cut(conditions.cond), audio=cut(conditions.audio), text=cut(conditions.text),
                  image=cut(conditions.image), null_text=cut(conditions.null_text))
    if conditions.ref is not None:
        out.ref = [replace(r, latents=cut(r.latents), motion=cut(r.motion), frame_mask=cut(r.frame_mask))
                   for r in conditions.ref]
        out.ref_cache = None
    return out


__all__ = ["DMD", "GeneratorCritic", "dmd_gradient", "dmd_loss"]

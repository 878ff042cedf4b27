"""The flow-matching loss shared by every stage, and the stage registry.

One training step (rectified flow; SD3 §2): sample t from a logit-normal density, noise the target
latents x_t = (1 − t)·x0 + t·ε (and the motion features with the same t when the motion stream is on),
predict the velocity ε − x0 (motion in the DiT's normalised space, ``models/dit/motion_norm.py``), and
regress it (MSE) on the frames the model has to generate. Known leading frames (scene image, prefix) are
given clean through the I2V condition and excluded from the loss.
Conditions are dropped at random (reference, then audio, then text, nested) so that multi-condition CFG
(``diffusion/guidance.py``) has the unconditional branches it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from avatarv.diffusion import add_noise, sample_logit_normal, velocity_target
from avatarv.errors import ConfigError
from avatarv.models.dit import RefInputs, VideoRefDiT
from avatarv.models.dit.conditions import Conditions, i2v_condition
from avatarv.models.dit.motion_norm import normalize_motion
from avatarv.training.batch import Batch


@dataclass
class MethodConfig:
    name: str = "t2v"  # t2v | a2v | personality | cfg_distill | dmd
    logit_mean: float = 0.0
    logit_std: float = 1.0
    # known leading latent frames: each entry is a choice (0 = pure generation, 1 = scene image, k = prefix)
    known_frames: tuple[int, ...] = (0, 1)
    # noise augmentation of a generated prefix: where a sample knows more than its first latent frame (at
    # inference: the previous chunk's overlap, the model's own imperfect output, where training shows it clean
    # ground truth), its condition latents become (1 − s)·x0 + s·ε with s ~ U(0, known_noise) per sample. The
    # scene image (known = 1) stays clean: at inference it is a real image, encoded. 0 = off (no extra draws).
    known_noise: float = 0.0
    drop_text: float = 0.1
    drop_audio: float = 0.1
    drop_ref: float = 0.1
    motion_weight: float = 0.5
    # reference latent frames the stage sees: 0 = all of them; 1 = one frame (the image-reference ablation: the
    # causal VAE's first latent frame is the encoding of the reference's first frame alone)
    ref_latent_frames: int = 0
    # give the reference's motion features to the model (needs motion features of the reference at inference)
    use_ref_motion: bool = True
    # curriculum: list of (start_step, latent_frames, latent_size); the last entry whose start ≤ step applies
    curriculum: tuple[tuple[int, int, int], ...] = ()
    # auxiliary losses: list of (name, weight, start_step, ramp_steps) — see methods/aux_losses.py
    aux: tuple[tuple[str, float, int, int], ...] = field(default_factory=tuple)
    # --- stage 4 (cfg_distill, dmd): the frozen teacher, a DiT folder; None: a frozen copy of the starting weights
    teacher: str | None = None
    # CFG distillation: each condition's (low, high) guidance scale, drawn uniformly per sample (ref, audio, text)
    guidance_range: tuple[tuple[float, float], ...] = ((1.0, 2.0), (1.0, 3.0), (1.0, 2.0))
    # DMD (methods/dmd.py): the student's sampling steps, the teacher's guidance for the real score (ref, audio,
    # text), critic updates per generator update (two time scales), DMD gradient normalisation, t range of the
    # score evaluations, and the ODE-pair regression that starts the generator (weight, generator updates it
    # lasts, teacher Euler steps per pair)
    dmd_steps: int = 4
    dmd_guidance: tuple[float, ...] = (1.5, 2.0, 1.0)
    critic_steps: int = 4
    dmd_normalize: bool = True
    dmd_t_range: tuple[float, float] = (0.02, 0.98)
    dmd_regression: float = 1.0
    dmd_regression_steps: int = 50
    ode_steps: int = 8


class TrainingMethod:
    """Base: which conditions a stage uses. Subclasses set the flags; the loss is shared."""

    name = "base"
    uses_text = True
    uses_audio = False
    uses_ref = False
    uses_motion = False

    def __init__(self, cfg: MethodConfig, aux_losses: dict | None = None):
        self.cfg = cfg
        self.aux_losses = aux_losses or {}

    # ------------------------------------------------------------------ curriculum
    def crop(self, batch: Batch, step: int) -> Batch:
        """Resolution/duration curriculum: crop latents (and per-frame conditions) to the stage's size."""
        active = [c for c in self.cfg.curriculum if c[0] <= step]
        if not active:
            return batch
        _, frames, size = active[-1]
        lat = batch.latents
        f = min(frames, lat.shape[2])
        h0 = max(0, (lat.shape[3] - size) // 2)
        w0 = max(0, (lat.shape[4] - size) // 2)
        crop = lambda x: x[:, :, :f, h0 : h0 + size, w0 : w0 + size]  # noqa: E731
        return Batch(
            latents=crop(lat), text=batch.text,
            audio=None if batch.audio is None else batch.audio[:, :f],
            motion=None if batch.motion is None else batch.motion[:, :f],
            ref_latents=None if batch.ref_latents is None else batch.ref_latents[:, :, :, h0 : h0 + size, w0 : w0 + size],
            ref_motion=batch.ref_motion, ref_mask=batch.ref_mask,
            # boxes are in pixels: a latent offset is 8 pixels (the VAE's spatial stride)
            face_box=None if batch.face_box is None else batch.face_box[:, :f] - torch.tensor(
                [w0, h0, w0, h0], dtype=batch.face_box.dtype, device=batch.face_box.device) * 8,
        )

    # ------------------------------------------------------------------ the loss
    def prepare_model(self, model: VideoRefDiT) -> VideoRefDiT:
        """The model this method trains, made from the starting one (before any sharding): itself here; a
        distillation method grows what its student needs and keeps a frozen copy as its teacher."""
        return model

    def shard(self, model, apply_fsdp):
        """FSDP2 over the trained module (``distributed/fsdp.py``); a method with several networks shards each."""
        return apply_fsdp(model)

    def exported_state(self, state: dict) -> dict:
        """The state dict of the DiT a checkpoint exports (``model/``), from the trained module's full state."""
        return state

    def draw(self, model: VideoRefDiT, batch: Batch, step: int, generator: torch.Generator) -> FlowDraw:
        """Every random choice of one training sample, in a fixed order (timestep, noise, known frames, their
        noise, the dropped conditions, motion noise), and what follows from them."""
        cfg = self.cfg
        batch = self.crop(batch, step)
        x0 = batch.latents
        b, z, f, h, w = x0.shape
        dev = x0.device

        def rand(*shape):
            return torch.rand(*shape, generator=generator).to(dev)

        t = sample_logit_normal(b, cfg.logit_mean, cfg.logit_std, generator=generator).to(dev)
        noise = torch.randn(x0.shape, generator=generator).to(dev)
        x_t = add_noise(x0, noise, t)
        v_target = velocity_target(x0, noise)

        # known leading frames through the I2V condition
        choices = torch.tensor(cfg.known_frames)
        known = choices[torch.randint(len(choices), (b,), generator=generator)].clamp(max=f - 1).to(dev)
        frame_idx = torch.arange(f, device=dev)
        known_mask = frame_idx[None, :] < known[:, None]  # [B, F]
        cond = None
        if model.cfg.cond_channels:
            x_known = x0
            if cfg.known_noise > 0:
                s = rand(b) * cfg.known_noise * (known > 1).to(x0.dtype)  # [B]
                x_known = add_noise(x0, torch.randn(x0.shape, generator=generator).to(dev), s)
            cond = i2v_condition(x_known, known_mask)  # the pipeline's condition of its known frames

        # nested condition dropout: ref ⊂ ref+audio ⊂ ref+audio+text kept in this order
        u = rand(b)
        keep_ref = u >= cfg.drop_ref
        keep_audio = keep_ref & (rand(b) >= cfg.drop_audio)
        keep_text = keep_audio & (rand(b) >= cfg.drop_text)

        text = batch.text if self.uses_text else None
        audio = batch.audio if self.uses_audio else None
        ref = None
        if self.uses_ref and batch.ref_latents is not None:
            n_ref = cfg.ref_latent_frames or batch.ref_latents.shape[2]
            ref_mask = batch.ref_mask if batch.ref_mask is not None else torch.ones(
                b, batch.ref_latents.shape[2], dtype=torch.bool, device=dev)
            ref_motion = None
            if self.uses_motion and cfg.use_ref_motion and batch.ref_motion is not None:
                ref_motion = normalize_motion(batch.ref_motion[:, :n_ref], model.cfg)
            ref = [RefInputs(batch.ref_latents[:, :, :n_ref], ref_motion, ref_mask[:, :n_ref])]
        motion_t = motion_target = None
        if self.uses_motion and batch.motion is not None and model.cfg.motion_dim:
            m0 = normalize_motion(batch.motion, model.cfg)  # the flow runs in the normalised space
            m_noise = torch.randn(m0.shape, generator=generator).to(dev)
            motion_t = add_noise(m0, m_noise, t)
            motion_target = velocity_target(m0, m_noise)
        return FlowDraw(batch=batch, x0=x0, t=t, x_t=x_t, v_target=v_target, known_mask=known_mask,
                        conditions=Conditions(cond=cond, audio=audio, text=text, ref=ref),
                        keep={"ref": keep_ref, "audio": keep_audio, "text": keep_text},
                        motion_t=motion_t, motion_target=motion_target)

    def regression(self, draw: FlowDraw, video: torch.Tensor, motion: torch.Tensor | None,
                   video_target: torch.Tensor, motion_target: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
        """MSE of predicted velocities against targets on the generated frames (known frames excluded); the
        motion stream's weighted by ``motion_weight``. Returns (total, logs)."""
        b, z, f, h, w = draw.x0.shape
        gen_mask = (~draw.known_mask)[:, None, :, None, None].to(draw.x0.dtype)  # loss on generated frames only
        denom = gen_mask.sum() * z * h * w
        video_loss = ((video.float() - video_target) ** 2 * gen_mask).sum() / denom.clamp(min=1)
        total = video_loss
        logs = {"loss_video": video_loss.item()}
        if motion_target is not None:
            fm = (~draw.known_mask)[:, :, None].to(draw.x0.dtype)
            motion_loss = ((motion.float() - motion_target) ** 2 * fm).sum() / (fm.sum() * motion_target.shape[-1]).clamp(min=1)
            total = total + self.cfg.motion_weight * motion_loss
            logs["loss_motion"] = motion_loss.item()
        return total, logs

    def loss(self, model: VideoRefDiT, batch: Batch, step: int, generator: torch.Generator):
        cfg = self.cfg
        d = self.draw(model, batch, step, generator)
        # a dropped condition is fed as guidance at inference feeds it: one definition, Conditions.kept
        conditions = d.conditions.kept(d.keep)
        out = model(d.x_t, d.t, motion=d.motion_t, **conditions.dit_kwargs())
        total, logs = self.regression(d, out.video, out.motion, d.v_target, d.motion_target)
        if self.aux_losses:
            x0_hat = d.x_t - d.t.view(-1, 1, 1, 1, 1) * out.video.float()  # the model's clean estimate
            for name, weight, start, ramp in cfg.aux:
                scale = weight * min(1.0, max(0.0, (step - start) / max(ramp, 1))) if step >= start else 0.0
                if scale > 0:
                    value = self.aux_losses[name](x0_hat, d.x0, d.batch)
                    total = total + scale * value
                    logs[f"aux_{name}"] = value.item()
                logs[f"aux_{name}_weight"] = scale
        logs["loss"] = total.item()
        return total, logs


@dataclass
class FlowDraw:
    """One drawn training sample (``TrainingMethod.draw``): latents ``x0`` ``[B, z, F, h, w]``, time ``t``
    ``[B]``, noisy ``x_t`` and the velocity target; ``known_mask`` ``[B, F]``; every condition (``conditions``,
    none dropped) and the per-sample dropout ``keep`` (``Conditions.kept``); noisy motion and its target."""

    batch: Batch
    x0: torch.Tensor
    t: torch.Tensor
    x_t: torch.Tensor
    v_target: torch.Tensor
    known_mask: torch.Tensor
    conditions: Conditions
    keep: dict
    motion_t: torch.Tensor | None
    motion_target: torch.Tensor | None


class FlowPretraining(TrainingMethod):
    """Stage 1: text-to-video and image-to-video rectified flow with a resolution/duration curriculum."""

    name = "t2v"


class AudioToVideo(TrainingMethod):
    """Stage 2: conditioning image (or prefix) + driving audio; audio cross-attention trained with the backbone."""

    name = "a2v"
    uses_audio = True


class PersonalitySFT(TrainingMethod):
    """Stage 3: reference video from another scene of the same identity (sparse reference attention), the
    motion stream predicted jointly, auxiliary losses in learned feature spaces switched on by schedule."""

    name = "personality"
    uses_audio = True
    uses_ref = True
    uses_motion = True


METHODS = {m.name: m for m in (FlowPretraining, AudioToVideo, PersonalitySFT)}


def all_methods() -> dict[str, type[TrainingMethod]]:
    """Stages 1–3 and stage 4's distillation methods (imported here: they build on this module)."""
    from avatarv.training.methods.cfg_distill import CFGDistillation
    from avatarv.training.methods.dmd import DMD

    return {**METHODS, CFGDistillation.name: CFGDistillation, DMD.name: DMD}


def make_method(cfg: MethodConfig, aux_losses: dict | None = None) -> TrainingMethod:
    methods = all_methods()
    try:
        cls = methods[cfg.name]
    except KeyError:
        raise ConfigError(f"unknown training method {cfg.name!r}; choose one of {', '.join(methods)}") from None
    missing = [a[0] for a in cfg.aux if a[0] not in (aux_losses or {})]
    if missing:
        raise ConfigError(f"auxiliary losses {missing} are configured but not provided")
    return cls(cfg, aux_losses)

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
    name: str = "t2v"  # t2v | a2v | personality
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
    def loss(self, model: VideoRefDiT, batch: Batch, step: int, generator: torch.Generator):
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
        # a dropped condition is fed as guidance at inference feeds it: one definition, Conditions.kept
        conditions = Conditions(cond=cond, audio=audio, text=text, ref=ref).kept(
            {"ref": keep_ref, "audio": keep_audio, "text": keep_text})
        motion_t = motion_target = None
        if self.uses_motion and batch.motion is not None and model.cfg.motion_dim:
            m0 = normalize_motion(batch.motion, model.cfg)  # the flow runs in the normalised space
            m_noise = torch.randn(m0.shape, generator=generator).to(dev)
            motion_t = add_noise(m0, m_noise, t)
            motion_target = velocity_target(m0, m_noise)

        out = model(x_t, t, motion=motion_t, **conditions.dit_kwargs())
        gen_mask = (~known_mask)[:, None, :, None, None].to(x0.dtype)  # loss on generated frames only
        denom = gen_mask.sum() * z * h * w
        video_loss = ((out.video.float() - v_target) ** 2 * gen_mask).sum() / denom.clamp(min=1)
        total = video_loss
        logs = {"loss_video": video_loss.item()}
        if motion_target is not None:
            fm = (~known_mask)[:, :, None].to(x0.dtype)
            motion_loss = ((out.motion.float() - motion_target) ** 2 * fm).sum() / (fm.sum() * batch.motion.shape[-1]).clamp(min=1)
            total = total + cfg.motion_weight * motion_loss
            logs["loss_motion"] = motion_loss.item()
        if self.aux_losses:
            x0_hat = x_t - t.view(-1, 1, 1, 1, 1) * out.video.float()  # the model's clean estimate
            for name, weight, start, ramp in cfg.aux:
                scale = weight * min(1.0, max(0.0, (step - start) / max(ramp, 1))) if step >= start else 0.0
                if scale > 0:
                    value = self.aux_losses[name](x0_hat, x0, batch)
                    total = total + scale * value
                    logs[f"aux_{name}"] = value.item()
                logs[f"aux_{name}_weight"] = scale
        logs["loss"] = total.item()
        return total, logs


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


def make_method(cfg: MethodConfig, aux_losses: dict | None = None) -> TrainingMethod:
    try:
        cls = METHODS[cfg.name]
    except KeyError:
        raise ConfigError(f"unknown training method {cfg.name!r}; choose one of {', '.join(METHODS)}") from None
    missing = [a[0] for a in cfg.aux if a[0] not in (aux_losses or {})]
    if missing:
        raise ConfigError(f"auxiliary losses {missing} are configured but not provided")
    return cls(cfg, aux_losses)

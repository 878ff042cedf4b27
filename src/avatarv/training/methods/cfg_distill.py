"""Stage 4a: classifier-free-guidance distillation (seed, Stage 4: "CFG distillation folds the guided passes into
one forward pass").

The teacher's guided velocity with K nested conditions (reference, audio, text; ``diffusion/guidance.py``)
costs up to K + 1 passes per step:

    v_T(x_t, t; s) = v(∅) + Σ_k s_k · (v(c_1..c_k) − v(c_1..c_{k−1}))

The student is the teacher grown by a guidance embedding (``DiTConfig.num_guidance_scales`` = K, zero output
layer, so it starts as the teacher's fully conditional prediction) and learns, for scales drawn per sample
from ``MethodConfig.guidance_range``, to predict v_T in one pass with every condition on and the scales as an
input (Meng et al. 2023, "On Distillation of Guided Diffusion Models", stage one; FLUX-dev's guidance
embedding is the same idea):

    L = ‖v_S(x_t, t, s; c) − sg(v_T(x_t, t; s))‖²  (on the generated frames; the motion stream likewise)

x_t is drawn exactly as the flow-matching stages draw it (``TrainingMethod.draw``), so the student sees the
inputs the teacher was trained on. The teacher is a frozen copy of the starting weights (or
``MethodConfig.teacher``, a DiT folder).
"""

from __future__ import annotations

import copy

import torch

from avatarv.diffusion.guidance import combine_nested
from avatarv.errors import ConfigError
from avatarv.models.dit import VideoRefDiT
from avatarv.models.dit.conditions import CONDITION_ORDER
from avatarv.training.batch import Batch
from avatarv.training.methods.base import MethodConfig, PersonalitySFT


def frozen(model: VideoRefDiT) -> VideoRefDiT:
    """An eval-mode copy with no gradients (a teacher)."""
    teacher = copy.deepcopy(model).eval()
    teacher.requires_grad_(False)
    return teacher


def load_teacher(cfg: MethodConfig, model: VideoRefDiT) -> VideoRefDiT:
    """``cfg.teacher`` (a DiT folder) or a frozen copy of the starting ``model``."""
    if cfg.teacher:
        teacher = VideoRefDiT.from_pretrained(cfg.teacher, device=next(model.parameters()).device)
        teacher.eval().requires_grad_(False)
        return teacher
    return frozen(model)


def draw_scales(cfg: MethodConfig, b: int, generator: torch.Generator) -> torch.Tensor:
    """Guidance scales ``[B, K]``, uniform in each condition's ``guidance_range``."""
    lo = torch.tensor([r[0] for r in cfg.guidance_range])
    hi = torch.tensor([r[1] for r in cfg.guidance_range])
    return lo + (hi - lo) * torch.rand(b, len(cfg.guidance_range), generator=generator)


@torch.no_grad()
def teacher_guided(teacher: VideoRefDiT, x_t: torch.Tensor, t: torch.Tensor, conditions, scales: torch.Tensor,
                   motion: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The teacher's guided velocity (video, motion) with per-sample ``scales`` ``[B, K]`` over the nested
    condition sets ∅, {ref}, {ref, audio}, {ref, audio, text}. A condition the batch does not have gives the same
    prediction kept or dropped, so its pass is reused instead of evaluated again."""
    present = {"ref": conditions.ref is not None, "audio": conditions.audio is not None,
               "text": conditions.text is not None}
    videos, motions = [], []
    for k in range(len(CONDITION_ORDER) + 1):
        name = CONDITION_ORDER[k - 1] if k else None
        if name is not None and not present[name]:
            videos.append(videos[-1])
            motions.append(motions[-1])
            continue
        kept = frozenset(CONDITION_ORDER[:k])
        out = teacher(x_t, t, motion=motion, **conditions.select(kept).dit_kwargs())
        videos.append(out.video.float())
        motions.append(None if out.motion is None else out.motion.float())
    v = combine_nested(videos, scales)
    m = combine_nested(motions, scales) if motions[0] is not None else None
    return v, m


class CFGDistillation(PersonalitySFT):
    """The student learns the teacher's guided velocity in one pass (see the module docstring)."""

    name = "cfg_distill"

    def __init__(self, cfg: MethodConfig, aux_losses: dict | None = None):
        super().__init__(cfg, aux_losses)
        if len(cfg.guidance_range) != len(CONDITION_ORDER):
            raise ConfigError(f"method.guidance_range needs one (low, high) per condition {CONDITION_ORDER}")
        self.teacher: VideoRefDiT | None = None

    def prepare_model(self, model: VideoRefDiT) -> VideoRefDiT:
        self.teacher = load_teacher(self.cfg, model)
        k = len(CONDITION_ORDER)
        if model.cfg.num_guidance_scales not in (0, k):
            raise ConfigError(f"the student has {model.cfg.num_guidance_scales} guidance scales, CFG distillation "
                              f"needs {k}")
        return model if model.cfg.num_guidance_scales else model.grown(num_guidance_scales=k)

    def loss(self, model: VideoRefDiT, batch: Batch, step: int, generator: torch.Generator):
        if self.teacher is None:
            raise RuntimeError("CFGDistillation.prepare_model was not called (the trainer calls it)")
        d = self.draw(model, batch, step, generator)
        scales = draw_scales(self.cfg, d.x0.shape[0], generator).to(d.x0.device)  # [B, K]
        v_teacher, m_teacher = teacher_guided(self.teacher, d.x_t, d.t, d.conditions, scales, d.motion_t)
        out = model(d.x_t, d.t, motion=d.motion_t, guidance=scales, **d.conditions.dit_kwargs())
        total, logs = self.regression(d, out.video, out.motion, v_teacher, m_teacher)
        logs["loss"] = total.item()
        return total, logs


__all__ = ["CFGDistillation", "draw_scales", "frozen", "load_teacher", "teacher_guided"]

"""Stage 4 on the bundled world model: CFG distillation, then improved DMD, then a distilled pipeline.

    avatarv train distill [--variant video|image] [--smoke]        # resumable; run it again after a kill

From a trained pipeline (``teacher``, default ``checkpoints/world-small``): its stage-3 shards (the world
recipe's ``shards-ref<k>``, written once under ``out``), then

1. ``cfg-<variant>``: CFG distillation (``methods/cfg_distill.py``) of the teacher's DiT, the scales drawn from
   ``guidance_range`` (they cover the teacher's ``guidance``);
2. ``dmd-<variant>``: DMD (``methods/dmd.py``) of the CFG-distilled student to ``student_steps`` steps of the
   ``x0`` sampler, the real score being the original teacher guided at ``guidance``;
3. the pipeline ``<export>`` (default ``checkpoints/world-small[-imageref]-distilled``): the teacher's folder with
   the student's DiT, and the sampling it was distilled for in ``pipeline.json`` (``sampling``: steps, sampler,
   guidance), which ``generate`` and ``demo`` use unless told otherwise.

Each stage resumes from its last checkpoint; a finished stage is skipped (``DONE``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from avatarv.errors import ConfigError


@dataclass
class DistillRecipe:
    teacher: str = "checkpoints/world-small"
    variant: str = "video"
    out: str = "runs/distill"
    export: str | None = None  # None: <teacher>-distilled
    # the teacher's guidance (ref, audio, text): the 3-pass CFG sampler the student replaces
    guidance: tuple[float, float, float] = (1.5, 2.5, 2.5)
    guidance_range: tuple[tuple[float, float], ...] = ((1.0, 2.0), (1.0, 3.5), (1.0, 3.0))
    cfg_steps: int = 200
    dmd_train_steps: int = 240  # trainer steps: critic and generator updates together
    critic_steps: int = 2
    regression_steps: int = 20  # generator updates with the ODE-pair regression
    ode_steps: int = 6
    student_steps: int = 4
    batch_size: int = 2
    lr: float = 1e-4
    ckpt_every: int = 20
    seed: int = 0
    # world identities whose shards the stages read (the teacher recipe's first ones; 2 scenes each): distillation
    # matches the teacher on its own inputs and needs far fewer than training it (240 took ~1 h to render on 2 cores)
    shard_identities: int = 60
    ablation_unstable: bool = False  # also train DMD without its stability measures (the ablation row)
    smoke: bool = False  # tiny sizes for tests: a few steps, few shards

    def export_dir(self) -> Path:
        return Path(self.export) if self.export else Path(f"{self.teacher.rstrip('/')}-distilled")

    def guidance_text(self) -> str:
        return ",".join(f"{n}={s:g}" for n, s in zip(("ref", "audio", "text"), self.guidance, strict=True))


def world_recipe(r: DistillRecipe):
    """The teacher's own world recipe, continued from the teacher (stage 3 alone) into ``r.out``."""
    from avatarv.training.world_recipe import DecoderRefine, WorldRecipe

    meta_path = Path(r.teacher) / "pipeline.json"
    if not meta_path.is_file():
        raise ConfigError("teacher is not a pipeline checkpoint (no pipeline.json)", meta_path)
    meta = json.loads(meta_path.read_text())
    saved = meta.get("recipe") or {}
    known = {f.name for f in fields(WorldRecipe)}
    kw = {k: v for k, v in saved.items() if k in known and k not in ("init", "checkpoints", "out", "variants")}
    kw.setdefault("preset", meta.get("preset", "small"))
    if isinstance(kw.get("vae_decoder_refine"), dict):
        kw["vae_decoder_refine"] = DecoderRefine(**kw["vae_decoder_refine"])
    for key in ("vae_decoder_phases", "stage_steps"):
        if key in kw:
            kw[key] = tuple(tuple(x) if isinstance(x, list) else x for x in kw[key])
    wr = WorldRecipe(**kw)
    teacher = Path(r.teacher)
    wr = replace(wr, out=r.out, init=str(teacher.parent), variants=(r.variant,), checkpoints=None,
                 identities=min(wr.identities, r.shard_identities))
    if r.smoke:
        wr = replace(wr, identities=2, scenes=2, target_latents=3, ref_latents=2, ref_stride=1)
    return wr


def configs(r: DistillRecipe, ref_shards: Path):
    """The two stages' training configs (built from the teacher recipe's stage-3 config)."""
    from avatarv.training.world_recipe import stage_configs

    wr = world_recipe(r)
    s3 = stage_configs(wr, None, r.variant, ref_shards)[-1]
    root = Path(r.out)
    teacher_dit = str(Path(r.teacher) / "dit")
    common = dict(batch_size=r.batch_size, ema_decay=None, warmup_steps=min(10, r.cfg_steps // 4),
                  ckpt_every=r.ckpt_every, seed=r.seed, optim=replace(s3.optim, lr=r.lr))
    base_method = replace(s3.method, aux=(), drop_ref=0.0, drop_audio=0.0, drop_text=0.0)
    cfg_stage = replace(s3, steps=r.cfg_steps, out_dir=str(root / f"cfg-{r.variant}"), init_from=teacher_dit,
                        method=replace(base_method, name="cfg_distill", guidance_range=r.guidance_range), **common)
    dmd_stage = replace(s3, steps=r.dmd_train_steps, out_dir=str(root / f"dmd-{r.variant}"),
                        init_from=str(root / f"cfg-{r.variant}" / "export"),
                        method=replace(base_method, name="dmd", teacher=teacher_dit, dmd_steps=r.student_steps,
                                       dmd_guidance=r.guidance, critic_steps=r.critic_steps,
                                       dmd_regression_steps=r.regression_steps, ode_steps=r.ode_steps), **common)
    # the flags that grow a DiT were applied when the teacher was trained: its weights have them already
    off = dict(motion_norm=False, audio_positions=False, ref_behaviour=False)
    return replace(cfg_stage, **off), replace(dmd_stage, **off)


def export_pipeline(r: DistillRecipe, dit_dir: Path, dest: Path | None = None, sampling: dict | None = None) -> Path:
    """The teacher's pipeline folder with the student's DiT (bf16) and its sampling in ``pipeline.json`` (default:
    ``r.export_dir()`` and the student's own steps with the ``x0`` sampler)."""
    import torch

    from avatarv.fsutil import atomic_directory
    from avatarv.models.dit import VideoRefDiT

    dest = dest or r.export_dir()
    teacher = Path(r.teacher)
    meta = json.loads((teacher / "pipeline.json").read_text())
    with atomic_directory(dest) as tmp:
        for item in teacher.iterdir():
            if item.name in ("dit", "pipeline.json"):
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        VideoRefDiT.from_pretrained(dit_dir).to(torch.bfloat16).save_pretrained(tmp / "dit")
        stages = {}
        for name in (f"cfg-{r.variant}", f"dmd-{r.variant}"):
            done = Path(r.out) / name / "DONE"
            if done.is_file():
                stages[name] = json.loads(done.read_text())
        meta.update(sampling=sampling or {"steps": r.student_steps, "sampler": "x0", "guidance": r.guidance_text()},
                    distilled={"teacher": str(teacher), "recipe": asdict(r), "stages": stages})
        (tmp / "pipeline.json").write_text(json.dumps(meta, indent=2))
    return dest


def run(r: DistillRecipe, progress: bool = True) -> Path:
    from avatarv.training.world_recipe import adopt_init, make_ref_shards, make_shards, run_stage

    wr = world_recipe(r)
    Path(r.out).mkdir(parents=True, exist_ok=True)
    (Path(r.out) / "distill_recipe.json").write_text(json.dumps(asdict(r), indent=2))
    vae_dir = adopt_init(wr)
    shards = make_ref_shards(wr, vae_dir, progress) if wr.ref_stride > 1 else make_shards(wr, vae_dir, progress)
    cfg_stage, dmd_stage = configs(r, shards)
    cfg_student = run_stage(cfg_stage, vae_dir, progress)
    # stage 4a alone, for the ablation: one pass per step at the teacher's steps
    export_pipeline(r, cfg_student, Path(r.out) / "pipelines" / f"cfg-{r.variant}",
                    {"steps": 50, "sampler": "overshoot", "guidance": r.guidance_text()})
    student = run_stage(dmd_stage, vae_dir, progress)
    if r.ablation_unstable:  # DMD without its stability measures, same budget (benchmarks/distill.py)
        bare = replace(dmd_stage, out_dir=str(Path(r.out) / f"dmd-nostab-{r.variant}"), method=replace(
            dmd_stage.method, critic_steps=1, dmd_normalize=False, dmd_regression=0.0))
        export_pipeline(r, run_stage(bare, vae_dir, progress), Path(r.out) / "pipelines" / f"dmd-nostab-{r.variant}")
    return export_pipeline(r, student)


__all__ = ["DistillRecipe", "configs", "export_pipeline", "run"]

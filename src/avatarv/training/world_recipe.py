"""The bundled world model, end to end: VAE → latent shards → DiT stages 1 → 2 → 3 → pipeline checkpoint.

``make train-world`` runs this recipe with the ``small`` preset (a few CPU hours on 2 cores);
``make train-world-smoke`` runs the same steps on ``tiny`` in minutes. Every step is resumable: a step that
finished leaves a ``DONE`` marker, a step that was killed continues from its latest checkpoint (the trainers
resume exactly) or, for the shards, is redone from scratch into a temp directory. Killing the job at any
point and running it again gives the same weights as an uninterrupted run.

Two variants share the VAE, the shards and stages 1–2 (which never see the reference) and differ only in
stage 3, trained for the same number of steps on the same items:

- ``video``: the reference is a 21-frame clip of the same identity in another scene (6 latent frames);
- ``image``: the reference is that clip's first frame alone (the causal VAE's first latent frame) — the
  single-image conditioning of the open anchors, the ablation for the thesis that a video reference carries
  behaviour an image cannot.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from avatarv.config import get_preset
from avatarv.training.config import DataConfig, TrainConfig
from avatarv.training.methods.base import MethodConfig
from avatarv.training.optim import OptimConfig


@dataclass
class DecoderRefine:
    """A decoder-only VAE refinement (encoder and latent statistics frozen: every latent, and a DiT trained on
    them, stays valid): chunk-length clips, the DiT's identities, a face-weighted L1 on random latent crops,
    cosine learning rate. Its directory is ``vae-refine`` in a recipe's work folder."""

    steps: int = 500  # the bundled VAE: 500 (its first 50 steps ran under a 700-step cosine, a 0.6 % higher lr)
    frames: int = 33
    batch_size: int = 2
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    identities: int = 240
    scenes: int = 2
    face_weight: float = 2.0
    mouth_weight: float = 0.0  # extra L1 weight inside the mouth box, on top of face_weight (VAETrainConfig)
    crop_latents: int = 8
    crop_focus: bool = False  # each crop drawn around the most-weighted pixels (VAETrainConfig.crop_focus)
    heldout: int = 4  # held-out identities (10 000 …) for the before/after PSNR on ``frames``-frame clips
    seed: int = 3


@dataclass
class WorldRecipe:
    preset: str = "small"
    out: str = "runs/world"
    seed: int = 0
    # autoencoder
    vae_steps: int = 900
    vae_lr: float = 6e-4
    vae_identities: int = 64
    vae_scenes: int = 4
    vae_frames: int = 5
    vae_face_weight: float = 0.0
    vae_min_lr_ratio: float = 1.0
    # the loss in the frozen world analyzer's space (VAETrainConfig.analyzer_weight; training/analyzer_loss.py)
    vae_analyzer_weight: float = 0.0
    # start the autoencoder from this VAE folder instead of random weights; with ``init`` (a continued recipe)
    # the init pipelines' VAE is then trained further instead of adopted as it is (the DiT continues on it)
    vae_init: str | None = None
    # use this finished VAE folder as it is (no VAE steps, no decoder phases or refinement): the shards and the
    # DiT (stages 1–3) are trained on it. Its strides must be the preset's (world model v2: ``small-s4``)
    vae_adopt: str | None = None
    # then the decoder alone on longer clips, (steps, frames) per phase, up to the chunk length (the encoder,
    # so the latents, stay): 5-frame windows teach the causal caches only latent frames 0–1 and later frames
    # decoded to noise (8–12 dB); a decoder trained on 17 frames holds ~19 dB to frame 17 and falls after it
    # A phase may name a third number, the face weight of its L1 (VAETrainConfig.face_weight; default 0)
    vae_decoder_phases: tuple[tuple[int, ...], ...] = ((200, 17), (100, 33))
    # then a longer decoder-only refinement on the DiT's identities (see DecoderRefine; None: skip it). The
    # bundled checkpoints got it after their DiT was trained (their VAE folder is its output; same encoder)
    vae_decoder_refine: DecoderRefine | None = field(default_factory=DecoderRefine)
    # shards: identities 0 … identities−1, every scene paired with the next scene of the same identity
    identities: int = 240
    scenes: int = 2
    target_latents: int = 9  # 33 frames (1.3 s) per target clip
    ref_latents: int = 6  # 21 frames of reference (the preset's max_ref_latent_frames)
    # stage 3's reference: every k-th frame of a k-times-longer clip (k = 1: the first 21 frames of the other
    # scene's target clip, 0.84 s, too short to show a blink rhythm or a nod cycle; see make_ref_shards)
    ref_stride: int = 1
    # DiT
    stage_steps: tuple[int, int, int] = (300, 600, 600)
    batch_size: int = 4
    lr: float = 1.5e-3
    warmup_steps: int = 50
    ema_decay: float = 0.995
    ckpt_every: int = 50
    identity_aux_weight: float = 0.1  # stage 3: identity-embedder feature matching, ramped in over its 2nd half
    # stage 3: the world SyncNet's lip-window embeddings of the decoded estimate vs the decoded target
    # (aux_losses.LipSyncLoss), on the identity loss's schedule; 0 = off (as the bundled pair was trained)
    lip_sync_aux_weight: float = 0.0
    # its schedule: switched on at this stage-3 step, full weight after ``ramp`` more (None: steps // 2 and
    # steps // 4); fixed values let a run stopped early keep the schedule it was started with
    identity_aux_start: int | None = None
    identity_aux_ramp: int | None = None
    # stages 2–3: noise augmentation of the known prefix (MethodConfig.known_noise; 0 = off, as trained so far)
    known_noise: float = 0.0
    # stage 3's motion stream: normalised per channel with the shards' statistics (models/dit/motion_norm.py;
    # False: raw features, as the checkpoints of e425ae2 were trained) and the weight of its loss
    motion_norm: bool = False
    motion_weight: float = 0.5
    # stage 3: add audio window positions to a DiT trained without them (DiTConfig.audio_positions; a recipe
    # from scratch gets them from the preset)
    audio_positions: bool = False
    # stage 3: the reference's motion features enter the reference stream beside its latents (one clean motion
    # token per reference latent frame; RefInputs.motion). Trained from the world's labels; a pipeline reads
    # them from the reference pixels with the world analyzer (ModelConfig.ref_motion). The image variant gets
    # its one frame's motion: a pose and an expression, no rhythm
    ref_motion: bool = False
    # stage 3: the reference's motion pooled over time (per-channel mean and std) as a global adaLN condition
    # (DiTConfig.ref_behaviour; models/dit/behaviour.py). Implies ref_motion: it is read from the same features
    ref_behaviour: bool = False
    variants: tuple[str, ...] = ("video", "image")
    checkpoints: str | None = "checkpoints"  # None: <out>/checkpoints
    # continue from trained pipelines: a folder holding world-<preset> and world-<preset>-imageref (e.g. the
    # bundled ``checkpoints``). Their VAE and text encoder are kept as they are (no VAE steps), stages 1–2 are
    # skipped, and each variant's stage 3 starts from its own DiT: a further stage 3 of ``stage_steps[2]``
    # steps (with this recipe's ref_stride, known_noise, lr, identity loss) at an equal budget for both
    init: str | None = None
    # training autocast of every stage: auto = bf16 where the CPU computes it natively, fp32 elsewhere
    # (avatarv.precision); the results differ only by rounding, the speed by up to 300× on an AVX2-only CPU
    precision: str = "auto"

    @classmethod
    def v2(cls, out: str = "runs/world-v2") -> WorldRecipe:
        """World model v2 (issue #30), continued from the bundled pipelines: their VAE trained further with the
        analyzer-space loss on 9-frame clips of the DiT's 240 identities (the mouth survives a round trip),
        latents re-calibrated, a 33-frame decoder phase, new shards, then stage 3 of both variants from their own
        DiTs on the new latents, configured as the bundled pair's last stage-3 continuation (noised known
        prefixes, every 4th reference frame, audio positions, the reference's behaviour), 600 steps each."""
        return cls(out=out, init="checkpoints", vae_init="checkpoints/world-small/vae", vae_steps=800, vae_lr=3e-4,
                   vae_identities=240, vae_scenes=2, vae_frames=9, vae_face_weight=2.0, vae_min_lr_ratio=0.1,
                   vae_analyzer_weight=0.5, vae_decoder_phases=((100, 33, 2.0),), vae_decoder_refine=None,
                   stage_steps=(0, 0, 600), checkpoints="runs/world-v2/checkpoints",
                   # stage 3 as the bundled pair's last continuation ran it (their pipeline.json's recipe)
                   ref_stride=4, known_noise=0.3, lr=7.5e-4, identity_aux_start=0, identity_aux_ramp=1,
                   audio_positions=True, ref_behaviour=True)

    @classmethod
    def v3(cls, vae: str = "runs/vae4/vae", out: str = "runs/world-v3") -> WorldRecipe:
        """World model v2, second design (issue #30): the DiT from scratch on a 4×-spatial VAE (preset
        ``small-s4``: 4×4 patches, so a 128² frame is still 64 tokens) trained first on its own
        (``benchmarks/vae_stride_probe.py``) and adopted as it is; stage 3 configured as the bundled pair's last
        continuation (noised known prefixes, every 4th reference frame, the reference's motion and behaviour),
        with the identity and lip-sync losses switched on at its midpoint. Both variants, equal budget."""
        return cls(preset="small-s4", out=out, vae_adopt=vae, checkpoints=f"{out}/checkpoints",
                   stage_steps=(300, 600, 600), ref_stride=4, known_noise=0.3, ref_motion=True, ref_behaviour=True,
                   lip_sync_aux_weight=0.1)

    @classmethod
    def smoke(cls, out: str = "runs/world-smoke") -> WorldRecipe:
        return cls(preset="tiny", out=out, vae_steps=20, vae_decoder_phases=((2, 5), (2, 9, 2.0)), vae_identities=4,
                   vae_decoder_refine=DecoderRefine(steps=2, frames=9, identities=2, scenes=1, crop_latents=4,
                                                    heldout=1),
                   identities=4, scenes=2, target_latents=3,
                   ref_latents=2, stage_steps=(6, 6, 8), batch_size=2, warmup_steps=2, ckpt_every=4,
                   identity_aux_weight=0.1, checkpoints=None)

    @property
    def root(self) -> Path:
        return Path(self.out)

    def export_name(self, variant: str) -> str:
        return f"world-{self.preset}" + ("" if variant == "video" else f"-{variant}ref")


def _done(path: Path) -> bool:
    return (path / "DONE").is_file()


def mark_done(path: Path, info: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "DONE").write_text(json.dumps(info, indent=1))


def read_done(path: Path) -> dict | None:
    """What a finished step recorded in its ``DONE`` marker; None while it has not finished."""
    return json.loads((path / "DONE").read_text()) if _done(path) else None


# ---------------------------------------------------------------------------------------------- the steps
def train_vae(r: WorldRecipe, progress: bool = True) -> Path:
    """Train the autoencoder, calibrate its latent statistics, report held-out PSNR. → the VAE directory."""
    from avatarv.training.vae import VAETrainConfig, VAETrainer

    out = r.root / "vae"
    if _done(out):
        return out / "vae"
    from avatarv.models.vae import VideoVAE

    cfg = VAETrainConfig(preset=r.preset, steps=r.vae_steps, lr=r.vae_lr, out_dir=str(out),
                         train_identities=r.vae_identities, scenes=r.vae_scenes, frames=r.vae_frames,
                         face_weight=r.vae_face_weight, min_lr_ratio=r.vae_min_lr_ratio,
                         analyzer_weight=r.vae_analyzer_weight, cached_clips=r.vae_identities * r.vae_scenes,
                         seed=r.seed, precision=r.precision)
    trainer = VAETrainer(cfg, vae=VideoVAE.from_pretrained(r.vae_init) if r.vae_init else None)
    trainer.fit(resume=True, progress=progress)
    calibrate_latents(trainer.vae, trainer.source, n=16, seed=r.seed)
    trainer.vae.save_pretrained(out / "vae")
    heldout = trainer.heldout_psnr(range(10_000, 10_008))
    mark_done(out, {"steps": trainer.step, "heldout_psnr_db": round(heldout, 2)})
    return out / "vae"


def decoder_phase_name(i: int) -> str:
    """The run directory of decoder phase ``i`` (0-based): vae-decoder, vae-decoder2, …"""
    return "vae-decoder" if i == 0 else f"vae-decoder{i + 1}"


def finetune_vae_decoder(r: WorldRecipe, vae_dir: Path, progress: bool = True) -> Path:
    """The decoder alone, phase after phase on longer clips (encoder frozen: latents unchanged).
    → the final VAE directory; each phase's DONE records held-out PSNR on chunk-length clips."""
    from avatarv.models.vae import VideoVAE
    from avatarv.training.vae import VAETrainConfig, VAETrainer

    chunk = (r.target_latents - 1) * 4 + 1
    for i, phase in enumerate(r.vae_decoder_phases):
        steps, frames, face_weight = (*phase, 0.0)[:3]
        out = r.root / decoder_phase_name(i)
        if not _done(out):
            cfg = VAETrainConfig(preset=r.preset, steps=steps, lr=r.vae_lr / 2, out_dir=str(out), frames=frames,
                                 train_identities=r.vae_identities, seed=r.seed + 1 + i, train_encoder=False,
                                 face_weight=face_weight, precision=r.precision)
            trainer = VAETrainer(cfg, vae=VideoVAE.from_pretrained(vae_dir))
            trainer.fit(resume=True, progress=progress)
            trainer.vae.save_pretrained(out / "vae")
            after = trainer.heldout_psnr(range(10_000, 10_004), frames=chunk)
            mark_done(out, {"steps": trainer.step, "frames": frames, f"heldout_psnr_db_{chunk}f": round(after, 2),
                            **({"face_weight": face_weight} if face_weight else {})})
        vae_dir = out / "vae"
    return vae_dir


def refine_decoder(init: Path, out: Path, spec: DecoderRefine, preset: str = "small", progress: bool = True) -> dict:
    """Run (or resume, or skip when ``DONE``) one ``DecoderRefine`` from the VAE folder ``init`` into ``out``
    (``out/vae``). → what its DONE records: the spec and held-out PSNR before and after."""
    from avatarv.models.vae import VideoVAE
    from avatarv.training.vae import VAETrainConfig, VAETrainer

    done = read_done(out)
    if done is not None:
        return done
    cfg = VAETrainConfig(preset=preset, steps=spec.steps, frames=spec.frames, batch_size=spec.batch_size, lr=spec.lr,
                         min_lr_ratio=spec.min_lr_ratio, train_identities=spec.identities, scenes=spec.scenes,
                         face_weight=spec.face_weight, mouth_weight=spec.mouth_weight, crop_latents=spec.crop_latents,
                         crop_focus=spec.crop_focus,
                         train_encoder=False,
                         out_dir=str(out), seed=spec.seed, cached_clips=spec.identities * spec.scenes, ckpt_every=50)
    trainer = VAETrainer(cfg, vae=VideoVAE.from_pretrained(init))
    ids = range(10_000, 10_000 + spec.heldout)
    before = out / "heldout_before.json"
    if not before.is_file():  # measured once on the init weights (a resumed run must not measure its own)
        out.mkdir(parents=True, exist_ok=True)
        before.write_text(json.dumps({"psnr": trainer.heldout_psnr(ids, frames=spec.frames)}))
    trainer.fit(resume=True, progress=progress)
    trainer.vae.save_pretrained(out / "vae")
    from avatarv.training.plot import plot_log

    plot_log(out / "log.jsonl", out / "loss.png")
    done = {"init": str(init), "steps": trainer.step, **asdict(spec),
            f"heldout_psnr_db_{spec.frames}f_before": round(json.loads(before.read_text())["psnr"], 2),
            f"heldout_psnr_db_{spec.frames}f": round(trainer.heldout_psnr(ids, frames=spec.frames), 2)}
    mark_done(out, done)
    return done


@torch.no_grad()
def calibrate_latents(vae, source, n: int = 16, seed: int = 0) -> None:
    """Per-channel mean/std of the raw latents over ``n`` training windows, stored in the VAE's config (as the
    Wan VAE's ``latents_mean``/``latents_std`` are), so the DiT sees unit-variance latents."""
    g = torch.Generator().manual_seed(seed + 17)
    raw = []
    for _ in range(n):
        frames = source.sample(g)
        vae.set_latent_stats(torch.zeros(vae.cfg.z_dim), torch.ones(vae.cfg.z_dim))
        raw.append(vae.encode(frames))
    z = torch.cat(raw, dim=2)  # [1, C, F, h, w]
    mean = z.mean(dim=(0, 2, 3, 4))
    std = z.std(dim=(0, 2, 3, 4)).clamp(min=1e-3)
    vae.set_latent_stats(mean, std)


TEXT_MAX_LENGTH = 64  # bytes of caption (ByT5 tokens): world captions are ~50


def text_encoder(r: WorldRecipe):
    """The world model's text encoder: a small byte-level UMT5 (random, frozen — its outputs tell captions
    apart, and the DiT's text projection learns to read them), saved beside the shards."""
    from avatarv.models.encoders.text import TextEncoder

    path = r.root / "text_encoder"
    if (path / "config.json").is_file():
        return TextEncoder.from_pretrained(path, max_length=TEXT_MAX_LENGTH)
    enc = TextEncoder.tiny(get_preset(r.preset).dit.text_dim, max_length=TEXT_MAX_LENGTH, seed=r.seed)
    enc.save_pretrained(path)
    return enc


def _write_shards(r: WorldRecipe, vae_dir: Path, name: str, progress: bool, ref_stride: int = 1) -> Path:
    """``<out>/<name>``: the recipe's world shards, written to ``<name>.tmp`` and renamed (redone from scratch
    after a kill), skipped once ``DONE``."""
    import shutil

    from avatarv.models.vae import VideoVAE
    from avatarv.training.world_shards import make_world_shards

    out = r.root / name
    if _done(out):
        return out
    tmp = out.with_name(name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    cfg = get_preset(r.preset)
    vae = VideoVAE.from_pretrained(vae_dir)
    n = make_world_shards(tmp, cfg, vae, r.identities, r.scenes, latents=r.target_latents, ref_latents=r.ref_latents,
                          seed=r.seed, progress=progress, text_encoder=text_encoder(r), ref_stride=ref_stride)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    mark_done(out, {"items": n, **({"ref_stride": ref_stride} if ref_stride > 1 else {})})
    return out


def make_shards(r: WorldRecipe, vae_dir: Path, progress: bool = True) -> Path:
    return _write_shards(r, vae_dir, "shards", progress)


def make_ref_shards(r: WorldRecipe, vae_dir: Path, progress: bool = True) -> Path:
    """Stage 3's shards when ``ref_stride`` > 1 (``shards-ref<k>``; the same targets as ``shards``, references
    from their own longer clips); the common shards otherwise."""
    if r.ref_stride <= 1:
        return r.root / "shards"
    return _write_shards(r, vae_dir, f"shards-ref{r.ref_stride}", progress, ref_stride=r.ref_stride)


def stage3_name(r: WorldRecipe, variant: str) -> str:
    return (f"stage3-{variant}" + (f"-ref{r.ref_stride}" if r.ref_stride > 1 else "")
            + ("-refmotion" if r.ref_motion else "") + ("-behaviour" if r.ref_behaviour else ""))


def init_pipeline(r: WorldRecipe, variant: str) -> Path:
    """The pipeline a continued recipe starts ``variant`` from (``WorldRecipe.init``)."""
    return Path(r.init) / r.export_name(variant)


def adopt_init(r: WorldRecipe) -> Path:
    """A continued recipe's VAE (the init pipelines', which must share one encoder: the shards are encoded
    once for both variants) and text encoder (copied to ``<out>/text_encoder``). → the VAE directory."""
    import shutil

    from avatarv.errors import ConfigError
    from avatarv.models.vae import VideoVAE
    from avatarv.training.vae_swap import encoder_mismatch

    dirs = {v: init_pipeline(r, v) for v in r.variants}
    for v, d in dirs.items():
        if not (d / "pipeline.json").is_file():
            raise ConfigError(f"{d}: no pipeline checkpoint to continue the {v} variant from")
    first, *others = dirs.values()
    for d in others:
        why = encoder_mismatch(VideoVAE.from_pretrained(first / "vae"), VideoVAE.from_pretrained(d / "vae"))
        if why:
            raise ConfigError(f"{d}: its VAE is not {first}'s ({why}); one set of shards cannot serve both")
    if not (r.root / "text_encoder" / "config.json").is_file():
        if (first / "text_encoder").is_dir():
            shutil.copytree(first / "text_encoder", r.root / "text_encoder", dirs_exist_ok=True)
    return first / "vae"


def adopt_vae(r: WorldRecipe) -> Path:
    """``vae_adopt``: a finished VAE folder, checked against the preset (strides, channels). → its directory."""
    from avatarv.errors import ConfigError
    from avatarv.models.vae import VideoVAE

    if r.init:
        raise ConfigError("vae_adopt starts a DiT from scratch on a given VAE: it cannot be combined with init")
    want = get_preset(r.preset).vae
    got = VideoVAE.from_pretrained(r.vae_adopt).cfg
    if (got.spatial_stride, got.temporal_stride, got.z_dim) != (want.spatial_stride, want.temporal_stride, want.z_dim):
        raise ConfigError(f"{r.vae_adopt}: a {got.spatial_stride}×/{got.temporal_stride}× VAE with z_dim {got.z_dim}; "
                          f"preset {r.preset!r} needs {want.spatial_stride}×/{want.temporal_stride}× with z_dim {want.z_dim}")
    return Path(r.vae_adopt)


def stage_configs(r: WorldRecipe, shards: Path | None, variant: str, ref_shards: Path | None = None
                  ) -> list[TrainConfig]:
    """The three stages' configs (stage 3 depends on the variant). A continued recipe (``init``) has stage 3
    alone, started from the init pipeline's DiT."""
    s1, s2, s3 = r.stage_steps
    lat = r.target_latents
    data = DataConfig(kind="shards", path=str(shards or ref_shards))
    base = TrainConfig(preset=r.preset, data=data, batch_size=r.batch_size, warmup_steps=r.warmup_steps,
                       ema_decay=r.ema_decay, ckpt_every=r.ckpt_every, seed=r.seed,
                       optim=OptimConfig(lr=r.lr), precision=r.precision)
    # known leading latent frames: 1 = the scene image (first chunk), 2 = the previous chunk's overlap
    known = (1, 2)
    preset = get_preset(r.preset)
    hw = preset.resolution // preset.vae.spatial_stride  # latent side: the curriculum is on duration only
    start = s3 // 2 if r.identity_aux_start is None else r.identity_aux_start
    ramp = max(1, s3 // 4) if r.identity_aux_ramp is None else r.identity_aux_ramp
    aux = tuple((name, weight, start, ramp) for name, weight in
                (("identity", r.identity_aux_weight), ("lip_sync", r.lip_sync_aux_weight)) if weight)
    stage3 = replace(base, steps=s3, out_dir=str(r.root / stage3_name(r, variant)), motion_norm=r.motion_norm,
                     audio_positions=r.audio_positions, ref_behaviour=r.ref_behaviour,
                     data=DataConfig(kind="shards", path=str(ref_shards or shards)),
                     init_from=str(init_pipeline(r, variant) / "dit" if r.init else r.root / "stage2" / "export"),
                     method=MethodConfig(name="personality", known_frames=known, known_noise=r.known_noise,
                                         use_ref_motion=r.ref_motion or r.ref_behaviour, motion_weight=r.motion_weight,
                                         ref_latent_frames=1 if variant == "image" else 0, aux=aux))
    if r.init:  # continued: stage 3 alone
        return [stage3]
    stage1 = replace(base, steps=s1, out_dir=str(r.root / "stage1"), method=MethodConfig(
        name="t2v", known_frames=(0, 1, 2), curriculum=((0, max(2, lat // 2), hw), (s1 // 2, lat, hw))))
    stage2 = replace(base, steps=s2, out_dir=str(r.root / "stage2"), init_from=str(r.root / "stage1" / "export"),
                     method=MethodConfig(name="a2v", known_frames=known, known_noise=r.known_noise))
    return [stage1, stage2, stage3]


def run_stage(cfg: TrainConfig, vae_dir: Path, progress: bool = True) -> Path:
    """Train one stage (resuming) and export its EMA weights to ``out_dir/export``."""
    from avatarv.training.trainer import Trainer

    out = Path(cfg.out_dir)
    export = out / "export"
    if _done(out):
        return export
    aux = build_aux_losses(cfg, vae_dir)
    trainer = Trainer(cfg, aux_losses=aux)
    trainer.fit(resume=True, progress=progress)
    if trainer.ema is not None:
        trainer.ema.copy_to(trainer.model)
    trainer.model.save_pretrained(export)
    from avatarv.training.plot import plot_log

    plot_log(out / "log.jsonl", out / "loss.png")
    last = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()[-20:]]
    mark_done(out, {"steps": trainer.step, "loss_last20": sum(x["loss"] for x in last) / len(last)})
    return export


def build_aux_losses(cfg: TrainConfig, vae_dir: Path) -> dict:
    names = {a[0] for a in cfg.method.aux}
    if not names:
        return {}
    from avatarv.training.methods.aux_losses import make_aux_losses

    return make_aux_losses(names, vae_dir)


def export_pipeline(r: WorldRecipe, vae_dir: Path, dit_dir: Path, variant: str) -> Path:
    """``checkpoints/world-<preset>[-imageref]``: pipeline.json + dit/ + vae/, weights in bf16 (half the bytes)."""
    from avatarv.fsutil import atomic_directory
    from avatarv.models.dit import VideoRefDiT
    from avatarv.models.vae import VideoVAE
    from avatarv.training.plot import plot_runs

    dest = Path(r.checkpoints or r.root / "checkpoints") / r.export_name(variant)
    dit = VideoRefDiT.from_pretrained(dit_dir)
    vae = VideoVAE.from_pretrained(vae_dir)
    overrides = {"chunk_latent_frames": r.target_latents,
                 "max_ref_latent_frames": r.ref_latents if variant == "video" else 1,
                 "ref_frame_stride": r.ref_stride if variant == "video" else 1, "ref_motion": r.ref_motion or r.ref_behaviour}
    cfg = get_preset(r.preset)
    from diffusers.utils import logging as diffusers_logging

    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # its "cast with to()" advice is about fp16 inference, not storage
    with atomic_directory(dest) as tmp:
        dit.to(torch.bfloat16).save_pretrained(tmp / "dit")
        vae.model.to(torch.bfloat16).save_pretrained(str(tmp / "vae"))
        text_encoder(r).model.to(torch.bfloat16).save_pretrained(str(tmp / "text_encoder"))
        meta = {"preset": r.preset, "variant": variant, "overrides": {"resolution": cfg.resolution, **overrides},
                "text_max_length": TEXT_MAX_LENGTH,
                "recipe": asdict(r), "stages": {}}
        decoders = tuple(decoder_phase_name(i) for i in range(len(r.vae_decoder_phases)))
        for name in ("vae", *decoders, "vae-refine", "shards", f"shards-ref{r.ref_stride}", "stage1", "stage2",
                     stage3_name(r, variant)):
            done = r.root / name / "DONE"
            if done.is_file():
                meta["stages"][name] = json.loads(done.read_text())
        if r.init:  # what the continued pipeline had been through before this recipe
            before = json.loads((init_pipeline(r, variant) / "pipeline.json").read_text())
            meta["init"] = {"from": str(init_pipeline(r, variant)), "recipe": before.get("recipe"),
                            "stages": before.get("stages"), "init": before.get("init")}
        (tmp / "pipeline.json").write_text(json.dumps(meta, indent=2))
        plot_runs({name: r.root / name for name in ("vae", *decoders, "vae-refine", "stage1", "stage2",
                                                    stage3_name(r, variant))},
                  tmp / "training_curves.png")
    diffusers_logging.set_verbosity(level)
    return dest


def run(r: WorldRecipe, progress: bool = True, variants: tuple[str, ...] | None = None) -> dict[str, Path]:
    """The whole recipe; returns the exported pipeline directory of each variant."""
    r.root.mkdir(parents=True, exist_ok=True)
    (r.root / "recipe.json").write_text(json.dumps(asdict(r), indent=2))
    if r.init:
        vae_dir = adopt_init(r)
    if r.init and r.vae_init:  # continued on a VAE trained further (the DiT adapts to its latents in stage 3)
        vae_dir = finetune_vae_decoder(r, train_vae(r, progress), progress)
    elif r.vae_adopt:
        vae_dir = adopt_vae(r)
    elif not r.init:
        vae_dir = finetune_vae_decoder(r, train_vae(r, progress), progress)
        if r.vae_decoder_refine is not None:
            refine_decoder(vae_dir, r.root / "vae-refine", r.vae_decoder_refine, r.preset, progress)
            vae_dir = r.root / "vae-refine" / "vae"
    # a continued recipe with longer references runs stage 3 alone: it reads only their shards
    shards = None if r.init and r.ref_stride > 1 else make_shards(r, vae_dir, progress)
    exports = {}
    stage2 = None
    for variant in variants or r.variants:
        if stage2 is None and not r.init:
            s1, s2, _ = stage_configs(r, shards, variant)
            run_stage(s1, vae_dir, progress)
            stage2 = run_stage(s2, vae_dir, progress)
        s3 = stage_configs(r, shards, variant, make_ref_shards(r, vae_dir, progress))[-1]
        dit = run_stage(s3, vae_dir, progress)
        exports[variant] = export_pipeline(r, vae_dir, dit, variant)
    return exports


__all__ = ["WorldRecipe", "run", "stage_configs", "calibrate_latents"]

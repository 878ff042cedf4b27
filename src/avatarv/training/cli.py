"""``avatarv train run --config FILE [--resume]`` and ``avatarv train plot LOG``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(help="Train the DiT (stages 1–3 as methods of one trainer).", no_args_is_help=True)


@app.command("run")
def run(
    config: Path = typer.Option(..., "--config", help="TOML or JSON TrainConfig."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint in out_dir."),
    steps: int = typer.Option(None, "--steps", help="Override the total number of steps."),
    out: Path = typer.Option(None, "--out", help="Override out_dir."),
    dtype: str = typer.Option(None, "--dtype", help="Training autocast: auto (bf16 where the CPU computes it "
                              "natively, fp32 elsewhere; AVATARV_DTYPE overrides auto) | bf16 | fp32."),
) -> None:
    """Train; checkpoints and log.jsonl go to out_dir.

    Scale out with ``torchrun --nproc-per-node N -m avatarv.cli train run --config FILE``: FSDP2 over N ranks,
    the same result as one process (``grad_accum`` must be a multiple of N)."""
    from dataclasses import replace

    from avatarv.distributed.state import init_distributed
    from avatarv.training.config import TrainConfig
    from avatarv.training.trainer import Trainer

    init_distributed()
    cfg = TrainConfig.load(config)
    if steps is not None:
        cfg = replace(cfg, steps=steps)
    if out is not None:
        cfg = replace(cfg, out_dir=str(out))
    if dtype is not None:
        cfg = replace(cfg, precision=dtype)
    trainer = Trainer(cfg)
    typer.echo(f"avatarv train: {trainer.method.name} on {cfg.preset}; {trainer.optim.describe()}", err=True)
    trainer.fit(resume=resume)
    typer.echo(f"avatarv train: step {trainer.step}, checkpoints in {trainer.ckpt_root}")


@app.command("plot")
def plot(log: Path = typer.Argument(..., help="log.jsonl"), out: Path = typer.Option(None, "--out")) -> None:
    """Plot loss curves of a training log to a PNG."""
    from avatarv.errors import InputError
    from avatarv.training.plot import plot_log

    if not log.is_file():
        raise InputError("no such training log", log)
    png = plot_log(log, out or log.with_name("loss.png"))
    typer.echo(str(png))


@app.command("make-shards")
def make_shards(
    out: Path = typer.Option(..., "--out", help="Shard directory to write."),
    preset: str = typer.Option("tiny", "--preset"),
    identities: int = typer.Option(4, "--identities", min=1),
    scenes: int = typer.Option(2, "--scenes", min=2),
    latents: int = typer.Option(5, "--latents", min=2, help="Latent frames per target clip (4k+1 frames)."),
    seed: int = typer.Option(0, "--seed"),
    vae: Path = typer.Option(None, "--vae", help="A trained VAE directory (default: the preset's, untrained)."),
) -> None:
    """Write training shards (cross-scene pairs) straight from the synthetic world."""
    import torch

    from avatarv.config import get_preset
    from avatarv.models.vae import VideoVAE
    from avatarv.training.world_shards import make_world_shards

    cfg = get_preset(preset)
    torch.manual_seed(seed)
    model = VideoVAE.from_pretrained(vae) if vae else VideoVAE(cfg.vae)
    n = make_world_shards(out, cfg, model, identities, scenes, latents=latents, seed=seed)
    typer.echo(f"avatarv train make-shards: {n} items in {out}")


@app.command("vae")
def train_vae(
    out: Path = typer.Option(Path("runs/vae"), "--out"),
    preset: str = typer.Option("small", "--preset"),
    steps: int = typer.Option(2000, "--steps", min=1),
    resume: bool = typer.Option(False, "--resume"),
    heldout: int = typer.Option(8, "--heldout", help="Held-out identities for the PSNR figure."),
    lr: float = typer.Option(3e-4, "--lr"),
    batch_size: int = typer.Option(2, "--batch-size", min=1),
    identities: int = typer.Option(64, "--identities", min=1, help="Training identities."),
    scenes: int = typer.Option(4, "--scenes", min=1, help="Scenes per training identity."),
    frames: int = typer.Option(5, "--frames", min=5, help="Clip length, 4k + 1."),
    crop: int = typer.Option(0, "--crop", min=0, help="Train on random crop² latent windows (0: whole frames)."),
    face_weight: float = typer.Option(0.0, "--face-weight", min=0.0, help="Extra L1 weight inside the head box."),
    mouth_weight: float = typer.Option(0.0, "--mouth-weight", min=0.0,
                                       help="Extra L1 weight inside the mouth box (on top of --face-weight)."),
    analyzer_weight: float = typer.Option(0.0, "--analyzer-weight", min=0.0, help="Weight of the loss in the "
                                          "frozen world analyzer's space (face features + lips; 0: off)."),
    min_lr_ratio: float = typer.Option(1.0, "--min-lr-ratio", help="Cosine decay to lr × this (1: constant)."),
    heldout_frames: int = typer.Option(None, "--heldout-frames", help="Clip length of the PSNR figure "
                                       "(default --frames; the pipeline's chunk is 33)."),
    init: Path = typer.Option(None, "--init", help="Start from this VAE folder (default: random weights)."),
    seed: int = typer.Option(0, "--seed"),
    dtype: str = typer.Option(None, "--dtype", help="Training autocast: auto (bf16 where the CPU computes it "
                              "natively, fp32 elsewhere; AVATARV_DTYPE overrides auto) | bf16 | fp32."),
) -> None:
    """Train the video autoencoder on world clips; prints held-out PSNR."""
    from avatarv.training.vae import VAETrainConfig, VAETrainer

    cfg = VAETrainConfig(preset=preset, steps=steps, out_dir=str(out), lr=lr, batch_size=batch_size,
                         train_identities=identities, scenes=scenes, frames=frames, crop_latents=crop,
                         face_weight=face_weight, mouth_weight=mouth_weight, min_lr_ratio=min_lr_ratio,
                         analyzer_weight=analyzer_weight, cached_clips=identities * scenes,
                         seed=seed, precision=dtype or "auto")
    vae = None
    if init is not None:
        from avatarv.models.vae import VideoVAE

        vae = VideoVAE.from_pretrained(init)
    trainer = VAETrainer(cfg, vae=vae)
    trainer.fit(resume=resume)
    score = trainer.heldout_psnr(range(10_000, 10_000 + heldout), frames=heldout_frames)
    typer.echo(json.dumps({"step": trainer.step, "heldout_psnr_db": round(score, 2),
                           "heldout_frames": heldout_frames or frames}))


@app.command("vae-decoder")
def train_vae_decoder(
    init: Path = typer.Option(..., "--init", help="The VAE folder to start from (its encoder stays frozen)."),
    out: Path = typer.Option(Path("runs/vae-refine"), "--out"),
    preset: str = typer.Option("small", "--preset", help="Whose resolution the world clips are rendered at."),
    steps: int = typer.Option(None, "--steps", min=1),
    frames: int = typer.Option(None, "--frames", min=5, help="Clip length, 4k + 1 (the pipeline's chunk: 33)."),
    identities: int = typer.Option(None, "--identities", min=1, help="World identities 0 … N−1 to train on."),
    scenes: int = typer.Option(None, "--scenes", min=1),
    crop: int = typer.Option(None, "--crop", min=0, help="Latent crop side decoded per sample (0: whole frame)."),
    heldout: int = typer.Option(None, "--heldout", min=1, help="Held-out identities of the PSNR figure."),
    face_weight: float = typer.Option(None, "--face-weight", min=0.0, help="Extra L1 weight inside the head box."),
    mouth_weight: float = typer.Option(None, "--mouth-weight", min=0.0,
                                       help="Extra L1 weight inside the mouth box (on top of --face-weight)."),
    lr: float = typer.Option(None, "--lr", min=0.0),
    crop_focus: bool = typer.Option(None, "--crop-focus/--no-crop-focus",
                                    help="Draw each crop around the most-weighted pixels (the mouth with --mouth-weight)."),
) -> None:
    """Refine a VAE's decoder alone (encoder and latent statistics frozen, so every latent already made with
    it, and a DiT trained on them, stays valid); defaults are the recipe's ``DecoderRefine``. Resumable."""
    from dataclasses import replace

    from avatarv.training.world_recipe import DecoderRefine, refine_decoder

    given = {"steps": steps, "frames": frames, "identities": identities, "scenes": scenes, "crop_latents": crop,
             "heldout": heldout, "face_weight": face_weight, "mouth_weight": mouth_weight, "lr": lr,
             "crop_focus": crop_focus}
    spec = replace(DecoderRefine(), **{k: v for k, v in given.items() if v is not None})
    typer.echo(json.dumps(refine_decoder(init, out, spec, preset)))


@app.command("install-vae")
def install_vae_cmd(
    vae: Path = typer.Option(..., "--vae", help="A refined VAE folder (e.g. runs/vae-refine/vae)."),
    checkpoint: list[Path] = typer.Option(..., "--checkpoint", help="Pipeline checkpoint(s) to put it in."),
) -> None:
    """Put a decoder-refined VAE into pipeline checkpoints (refused when its encoder differs from theirs)."""
    from avatarv.training.vae_swap import install_vae
    from avatarv.training.world_recipe import read_done

    info = read_done(vae.parent) or {"vae": str(vae)}
    for ckpt in checkpoint:
        install_vae(ckpt, vae, info=info)
        typer.echo(f"avatarv train install-vae: {vae} → {ckpt / 'vae'}")


def parse_stage_steps(text: str, continued: bool = False) -> tuple[int, int, int]:
    """``"3000,3000,1500"`` → (3000, 3000, 1500); anything else is a one-line ConfigError. ``continued``
    (``--init``): stages 1–2 do not run, so their counts may be 0 (``0,0,400``)."""
    from avatarv.errors import ConfigError

    try:
        steps = tuple(int(x) for x in text.split(","))
    except ValueError:
        steps = ()
    if len(steps) != 3 or steps[2] <= 0 or min(steps[:2]) < (0 if continued else 1):
        raise ConfigError(f"--stage-steps wants three positive integers like 3000,3000,1500"
                          f"{' (or 0,0,N with --init)' if continued else ''}, got {text!r}")
    return steps  # type: ignore[return-value]


def parse_aux_schedule(text: str) -> tuple[int, int]:
    """``"500,250"`` → (500, 250): start step ≥ 0, ramp ≥ 1; anything else is a one-line ConfigError."""
    from avatarv.errors import ConfigError

    try:
        start, ramp = (int(x) for x in text.split(","))
    except ValueError:
        start, ramp = -1, 0
    if start < 0 or ramp < 1:
        raise ConfigError(f"--identity-aux wants START,RAMP like 500,250 (start >= 0, ramp >= 1), got {text!r}")
    return start, ramp


@app.command("world")
def train_world(
    smoke: bool = typer.Option(False, "--smoke", help="The same recipe on the tiny preset, in minutes."),
    v2: bool = typer.Option(False, "--v2", help="World model v2 (WorldRecipe.v2): the bundled pipelines' VAE "
                            "trained further with the analyzer-space loss, then stage 3 of both variants on it."),
    v3: Path = typer.Option(None, "--v3", help="World model v2 on a 4×-spatial VAE (WorldRecipe.v3): the DiT "
                            "from scratch (preset small-s4) on this finished VAE folder, lip-sync and identity "
                            "losses in stage 3."),
    out: Path = typer.Option(None, "--out", help="Work directory (default runs/world or runs/world-smoke)."),
    variant: list[str] = typer.Option(None, "--variant", help="video and/or image (default both)."),
    checkpoints: Path = typer.Option(None, "--checkpoints", help="Where the pipeline checkpoints go."),
    stage_steps: str = typer.Option(None, "--stage-steps", help="Steps of stages 1,2,3, e.g. 3000,3000,1500."),
    ref_stride: int = typer.Option(None, "--ref-stride", min=1,
                                   help="Stage 3's reference: every k-th frame of a k-times-longer clip (default 1)."),
    identity_aux: str = typer.Option(None, "--identity-aux", help="Stage 3's identity loss schedule START,RAMP in "
                                     "steps (default: half and a quarter of stage 3's steps)."),
    known_noise: float = typer.Option(None, "--known-noise", min=0.0, max=1.0,
                                      help="Stages 2–3: noise augmentation of the known prefix, s ~ U(0, N) "
                                      "(default 0: off). Use a fresh --out: finished stages are not redone."),
    init: Path = typer.Option(None, "--init", help="Continue trained pipelines (a folder with world-<preset> and "
                              "world-<preset>-imageref, e.g. checkpoints): keep their VAE, skip stages 1–2, run "
                              "stage 3 again from each variant's DiT for the stage-3 steps of --stage-steps."),
    lr: float = typer.Option(None, "--lr", min=0.0, help="The DiT stages' peak learning rate (default 1.5e-3)."),
    motion_norm: bool = typer.Option(None, "--motion-norm/--no-motion-norm",
                                     help="Stage 3: normalise the motion stream per channel with the shards' "
                                     "statistics (default off)."),
    motion_weight: float = typer.Option(None, "--motion-weight", min=0.0,
                                        help="Stage 3: weight of the motion-stream loss (default 0.5)."),
    audio_positions: bool = typer.Option(None, "--audio-positions/--no-audio-positions",
                                         help="Stage 3: add audio window positions to an --init DiT trained "
                                         "without them (DiTConfig.audio_positions; default off)."),
    ref_motion: bool = typer.Option(None, "--ref-motion/--no-ref-motion",
                                    help="Stage 3: give the DiT the reference's motion features as tokens beside "
                                    "its latents (ModelConfig.ref_motion; default off)."),
    ref_behaviour: bool = typer.Option(None, "--ref-behaviour/--no-ref-behaviour",
                                       help="Stage 3: the reference's motion pooled over time (mean, std per "
                                       "channel) as a global adaLN condition (DiTConfig.ref_behaviour; implies "
                                       "--ref-motion; default off)."),
    dtype: str = typer.Option(None, "--dtype", help="Training autocast: auto (bf16 where the CPU computes it "
                              "natively, fp32 elsewhere; AVATARV_DTYPE overrides auto) | bf16 | fp32."),
) -> None:
    """The bundled world model: VAE → shards → stages 1–3 (video reference and image-reference ablation).
    Resumable: run it again after a kill and it continues where it stopped."""
    from dataclasses import replace

    from avatarv.errors import ConfigError
    from avatarv.precision import parse_dtype
    from avatarv.training.world_recipe import WorldRecipe, run

    if sum((smoke, v2, v3 is not None)) > 1:
        raise ConfigError("--smoke, --v2 and --v3 are different recipes: give one")
    if v3 is not None and not (v3 / "config.json").is_file():
        raise ConfigError(f"--v3 {v3}: not a VAE folder (no config.json)")
    recipe = (WorldRecipe.smoke() if smoke else WorldRecipe.v2() if v2
              else WorldRecipe.v3(vae=str(v3)) if v3 is not None else WorldRecipe())
    if out is not None:
        recipe = replace(recipe, out=str(out))
    if checkpoints is not None:
        recipe = replace(recipe, checkpoints=str(checkpoints))
    if stage_steps is not None:
        recipe = replace(recipe, stage_steps=parse_stage_steps(stage_steps, continued=init is not None))
    if ref_stride is not None:
        recipe = replace(recipe, ref_stride=ref_stride)
    if known_noise is not None:
        recipe = replace(recipe, known_noise=known_noise)
    if init is not None:
        recipe = replace(recipe, init=str(init))
    if lr is not None:
        recipe = replace(recipe, lr=lr)
    if motion_norm is not None:
        recipe = replace(recipe, motion_norm=motion_norm)
    if motion_weight is not None:
        recipe = replace(recipe, motion_weight=motion_weight)
    if audio_positions is not None:
        recipe = replace(recipe, audio_positions=audio_positions)
    if ref_motion is not None:
        recipe = replace(recipe, ref_motion=ref_motion)
    if ref_behaviour is not None:
        recipe = replace(recipe, ref_behaviour=ref_behaviour)
    if dtype is not None:
        recipe = replace(recipe, precision=parse_dtype(dtype, "--dtype"))
    if identity_aux is not None:
        start, ramp = parse_aux_schedule(identity_aux)
        recipe = replace(recipe, identity_aux_start=start, identity_aux_ramp=ramp)
    bad = set(variant or ()) - {"video", "image"}
    if bad:
        raise ConfigError(f"unknown variants {sorted(bad)} (video | image)")
    for name, path in run(recipe, variants=tuple(variant) if variant else None).items():
        typer.echo(f"avatarv train world: {name} → {path}")


@app.command("distill")
def train_distill(
    teacher: Path = typer.Option(Path("checkpoints") / "world-small", "--teacher",
                                 help="The trained pipeline to distil (pipeline.json + dit/ + vae/)."),
    variant: str = typer.Option("video", "--variant", help="video | image (which world recipe variant's shards)."),
    out: Path = typer.Option(Path("runs") / "distill", "--out", help="Work directory (checkpoints, logs, shards)."),
    export: Path = typer.Option(None, "--export", help="The distilled pipeline folder (default <teacher>-distilled)."),
    guidance: str = typer.Option(None, "--guidance", help="The teacher's CFG, e.g. ref=1.5,audio=2.5,text=2.5."),
    cfg_steps: int = typer.Option(None, "--cfg-steps", min=1, help="CFG-distillation steps (default 200)."),
    dmd_steps: int = typer.Option(None, "--dmd-steps", min=1, help="DMD trainer steps, critic and generator "
                                  "updates together (default 240)."),
    student_steps: int = typer.Option(None, "--student-steps", min=1, help="The student's sampling steps (default 4)."),
    smoke: bool = typer.Option(False, "--smoke", help="Tiny sizes (tests)."),
) -> None:
    """Stage 4 on a trained world pipeline: CFG distillation, then DMD, then the distilled pipeline (its sampling
    in pipeline.json). Resumable: run it again after a kill."""
    from dataclasses import replace

    from avatarv.errors import ConfigError
    from avatarv.pipelines.cli import parse_guidance
    from avatarv.training.distill_recipe import DistillRecipe, run

    if variant not in ("video", "image"):
        raise ConfigError(f"--variant: {variant!r} is not video or image")
    r = DistillRecipe(teacher=str(teacher), variant=variant, out=str(out), export=str(export) if export else None,
                      smoke=smoke)
    if smoke:
        r = replace(r, cfg_steps=2, dmd_train_steps=3, critic_steps=1, regression_steps=1, ode_steps=2,
                    ckpt_every=2)
    g = parse_guidance(guidance)  # None, or the scales (one clear error otherwise)
    given = {"guidance": g and tuple(float(g.scales[n]) for n in g.order), "cfg_steps": cfg_steps,
             "dmd_train_steps": dmd_steps, "student_steps": student_steps}
    r = replace(r, **{k: v for k, v in given.items() if v is not None})
    typer.echo(f"avatarv train distill: {run(r)}")


@app.command("analyzer")
def train_analyzer(
    out: Path = typer.Option(None, "--out", help="Weights to write (default: the shipped "
                             "src/avatarv/assets/world_analyzer.safetensors); test metrics go to a .json beside it."),
    steps: int = typer.Option(5000, "--steps"),
    batch: int = typer.Option(64, "--batch"),
    pairs: int = typer.Option(500, "--pairs", help="(identity, scene) pairs in the training set"),
    per_pair: int = typer.Option(48, "--per-pair", help="Frames per pair."),
    width: int = typer.Option(16, "--width"),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(1, "--threads"),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bf16 where native, else fp32) | bf16 | fp32"),
) -> None:
    """Train the world analyzer (face box, landmarks, pose, mouth, blink from pixels) on one CPU thread;
    checkpointed, resumable. Same as ``python -m avatarv.world.analyzer.train`` (make train-analyzer)."""
    import torch

    from avatarv.analyzer.predictor import DEFAULT_WEIGHTS
    from avatarv.world.analyzer.train import train

    torch.set_num_threads(threads)
    meta = train(out or DEFAULT_WEIGHTS, steps, batch, pairs, per_pair, seed, width,
                 log=lambda m: print(m, flush=True), dtype=dtype)
    print(json.dumps(meta["test"], indent=1))

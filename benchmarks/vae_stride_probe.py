"""Can a 4×-spatial VAE keep the world's mouth? (issue #30, item 1: "tokens that can hold a mouth").

    python benchmarks/vae_stride_probe.py --out runs/vae-s4 --minutes 35 [--threads 1]
    python benchmarks/vae_roundtrip.py --vae runs/vae-s4/vae --vae checkpoints/world-small/vae --n 4 --trips 1

Trains ``diffusers.AutoencoderKLWan`` with one spatial level fewer than the bundled VAE (``dim_mult`` [1, 2, 4],
both downsamples temporal too: 4× space, 4× time; base_dim 16, z_dim 16 like the bundled one) on world clips
with plain L1 (no face or mouth weighting), for a wall-time budget, resumable (``VAETrainer`` checkpoints), then
saves it where ``vae_roundtrip.py`` reads it: the mouth test there correlates the analyzer's mouth opening
after a round trip with the labels (the bundled 8× VAE: r 0.06, originals 0.96). A ~20-px mouth spans 2.5
latent pixels at 8× and 5 at 4×. Ends with one JSON line (steps, wall time, final L1, held-out PSNR).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def build_vae(base_dim: int = 16, z_dim: int = 16):
    """A fresh 4×-spatial VAE: ``AutoencoderKLWan`` with ``dim_mult [1, 2, 4]``, time halved twice (``wan_layout``)."""
    from avatarv.config.dit import VAEConfig
    from avatarv.models.vae import VideoVAE

    return VideoVAE(VAEConfig(base_dim=base_dim, z_dim=z_dim, spatial_stride=4))


def decoder_phase(vae, out: Path, steps: int, frames: int, args, encoder: bool = False) -> None:
    """The decoder alone (``encoder``: the whole autoencoder) on ``frames``-frame clips, focused crops;
    resumable in ``out``. Clips longer than 5 frames teach the causal caches of latent frames ≥ 2."""
    from avatarv.training.vae import VAETrainConfig, VAETrainer

    cfg = VAETrainConfig(preset="small", steps=steps, frames=frames, lr=args.lr * 0.5, min_lr_ratio=0.1,
                         out_dir=str(out), ckpt_every=25, train_identities=args.identities, seed=1 + encoder,
                         train_encoder=encoder, crop_latents=args.crop if args.decoder_crop is None else args.decoder_crop,
                         crop_focus=args.focus,
                         face_weight=args.face_weight, mouth_weight=args.mouth_weight, batch_size=2,
                         lowpass_weight=args.lowpass_weight)
    trainer = VAETrainer(cfg, vae=vae)
    trainer.resume()
    trainer.fit(resume=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/vae-s4"))
    p.add_argument("--minutes", type=float, default=35.0, help="training wall-time budget (resumable)")
    p.add_argument("--max-steps", type=int, default=3000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--min-lr-ratio", type=float, default=1.0, help="cosine decay to lr·ratio over --max-steps")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--identities", type=int, default=64)
    p.add_argument("--crop", type=int, default=0, help="train on crop² latent windows (0: whole frames)")
    p.add_argument("--focus", action="store_true", help="crops hold the mouth (needs --mouth-weight > 0)")
    p.add_argument("--face-weight", type=float, default=0.0)
    p.add_argument("--mouth-weight", type=float, default=0.0)
    p.add_argument("--lowpass-weight", type=float, default=0.0, help="L1 of 8×8 block means (colour), added")
    p.add_argument("--full-phase", action="append", default=[], metavar="STEPS:FRAMES",
                   help="then the whole autoencoder on longer clips (repeatable, before the decoder phases)")
    p.add_argument("--decoder-crop", type=int, default=None, help="crop of the decoder phases (default --crop; "
                   "0: whole frames, which the background's colours need)")
    p.add_argument("--decoder-phase", action="append", default=[], metavar="STEPS:FRAMES",
                   help="then the decoder alone on longer clips (repeatable, in order)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from tqdm import tqdm

    from avatarv.precision import capability
    from avatarv.training.vae import VAETrainConfig, VAETrainer
    from avatarv.training.world_recipe import calibrate_latents

    cfg = VAETrainConfig(preset="small", steps=args.max_steps, lr=args.lr, out_dir=str(args.out), ckpt_every=50,
                         train_identities=args.identities, seed=0, batch_size=args.batch,
                         min_lr_ratio=args.min_lr_ratio, crop_latents=args.crop, crop_focus=args.focus,
                         face_weight=args.face_weight, mouth_weight=args.mouth_weight,
                         lowpass_weight=args.lowpass_weight)
    trainer = VAETrainer(cfg, vae=build_vae())
    trainer.resume()
    args.out.mkdir(parents=True, exist_ok=True)
    start, l1 = time.perf_counter(), float("nan")
    with open(args.out / "log.jsonl", "a") as log, tqdm(total=cfg.steps, initial=trainer.step, desc="vae 4x") as bar:
        while trainer.step < cfg.steps and time.perf_counter() - start < args.minutes * 60:
            rec = trainer.train_step()
            l1 = rec["l1"]
            log.write(json.dumps(rec) + "\n")
            log.flush()
            bar.update(1)
            bar.set_postfix(l1=f"{l1:.4f}")
            if trainer.step % cfg.ckpt_every == 0:
                trainer.save()
    wall = time.perf_counter() - start
    trainer.save()
    vae = trainer.vae
    for k, phase in enumerate(args.full_phase):
        steps, frames = (int(v) for v in phase.split(":"))
        decoder_phase(vae, args.out / f"full{k}", steps, frames, args, encoder=True)
    for k, phase in enumerate(args.decoder_phase):
        steps, frames = (int(v) for v in phase.split(":"))
        decoder_phase(vae, args.out / f"decoder{k}", steps, frames, args)
    calibrate_latents(vae, trainer.source, n=16, seed=0)
    vae.save_pretrained(args.out / "vae")
    psnr = trainer.heldout_psnr(range(10_000, 10_008))
    print(json.dumps({"bench": "vae_stride_probe", "spatial_stride": 4, "steps": trainer.step, "wall_s": round(wall),
                      "last_l1": round(l1, 4), "decoder_phases": args.decoder_phase,
                      "heldout_psnr_db": round(psnr, 2), "machine": capability()}))


if __name__ == "__main__":
    main()

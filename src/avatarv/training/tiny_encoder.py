"""Distil the world VAE's encoder into the tiny tail encoder (models/vae/tiny_encoder.py) on its one job.

The chunk loop encodes the last ``4(k−1)+1`` frames of each decoded chunk as a fresh clip (the next chunk's
known prefix); that is what this trains: ``window_frames``-frame windows (5 at 2 overlap latents), each encoded
by the frozen full encoder as a clip of its own (causal context starts at the window, as at inference).

Data: a fixed pool of world clips (identities ``0 … train_identities−1``, the world model's training people;
held-out identities from ``heldout_from`` are scored), and from each clip windows at random starts, cut from two
versions of it: the clip itself, and the clip after a round trip through the full encoder and the tiny decoder
(blurred as generated frames are; the chunk loop re-encodes decoded frames, not camera frames). Each window's
target latents are computed once and cached under ``out_dir/pool`` (a resumed run does not pay for them again).

A training sample is a ``crop_latents + 2·margin`` square crop of a window (the encoder is convolutional); the loss
is the MSE to the target latents on the crop's interior (the ``margin`` latents at a crop edge inside the frame
are not scored: there the full encoder saw pixels the crop cut off). Resumes exactly (training/checkpoint.py);
the latest encoder folder is ``out_dir/encoder``; ``out_dir/metrics.json`` has the held-out figures.

    python -m avatarv.training.tiny_encoder --out runs/tiny-encoder --vae checkpoints/world-small/vae
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from avatarv.errors import ConfigError
from avatarv.models.vae.tiny_encoder import TinyVideoEncoder, tiny_encoder_config
from avatarv.training.simple_trainer import SimpleTrainer, parse_trainer_args
from avatarv.training.tiny_decoder import to_signed


@dataclass
class TinyEncoderTrainConfig:
    preset: str = "small"  # models/vae/tiny_encoder.py TINY_ENCODER_PRESETS
    vae: str = "checkpoints/world-small/vae"
    tiny_decoder: str = "checkpoints/world-small/tiny_decoder"  # the round trip's decoder ("": originals only)
    out_dir: str = "runs/tiny-encoder"
    steps: int = 1500
    batch_size: int = 8
    lr: float = 2e-3
    min_lr_ratio: float = 0.05  # cosine decay to lr · min_lr_ratio
    window_frames: int = 5  # 4(k−1)+1: the chunk loop's prefix at k overlap latents
    crop_latents: int = 8  # scored square, in latents (8 px each); 0 = whole frame
    margin: int = 1  # unscored latents around the crop where it is inside the frame
    pool_clips: int = 40
    windows_per_clip: int = 8  # per version of the clip (original, round trip)
    heldout_clips: int = 8
    train_identities: int = 240
    heldout_from: int = 2_000_000  # world identities from here on are never trained on
    scenes: int = 2
    clip_frames: int = 49
    size: int = 128
    ckpt_minutes: float = 3.0
    seed: int = 0

    def __post_init__(self):
        if (self.window_frames - 1) % 4 or self.window_frames < 1:
            raise ConfigError(f"tiny encoder: window_frames must be 4k + 1, got {self.window_frames}")
        if self.window_frames > self.clip_frames:
            raise ConfigError(f"tiny encoder: window_frames {self.window_frames} > clip_frames {self.clip_frames}")


class WindowPool:
    """Windows ``frames[i]`` uint8 ``[T, H, W, 3]`` and their full-encoder latents ``latents[i]`` ``[z, F, h, w]``
    (normalised), built once and cached on disk, one file a clip."""

    def __init__(self, vae, decoder, cfg: TinyEncoderTrainConfig, keys: list[tuple[int, int]], cache_dir: Path | None,
                 desc: str, progress: bool = True):
        from tqdm import tqdm

        from avatarv.world import make_clip

        self.frames, self.latents = [], []
        for ident, scene in tqdm(keys, desc=desc, disable=not progress):
            name = f"win_{ident:06d}_{scene}_{cfg.clip_frames}_{cfg.window_frames}_{cfg.windows_per_clip}_{cfg.size}.npz"
            path = None if cache_dir is None else cache_dir / name
            if path is not None and path.is_file():
                data = np.load(path)
                frames, latents = data["frames"], data["latents"]
            else:
                clip = make_clip(ident, scene, seconds=cfg.clip_frames / 25 + 0.04, size=cfg.size,
                                 seed=cfg.seed).frames[: cfg.clip_frames]
                versions = [clip]
                if decoder is not None:
                    versions.append(decoder.decode(vae.encode(clip)))  # what the chunk loop re-encodes: decoded frames
                pick = np.random.default_rng([cfg.seed, ident, scene])  # the windows' own draw
                wins = [v[s : s + cfg.window_frames] for v in versions
                        for s in pick.integers(0, cfg.clip_frames - cfg.window_frames + 1, cfg.windows_per_clip)]
                frames = np.stack(wins)  # [N, T, H, W, 3]
                latents = np.stack([vae.encode(w)[0].float().numpy() for w in wins])  # [N, z, F, h, w]
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(".tmp.npz")
                    np.savez(tmp, frames=frames, latents=latents)
                    tmp.replace(path)
            self.frames.extend(frames)
            self.latents.extend(torch.from_numpy(z) for z in latents)

    def __len__(self) -> int:
        return len(self.frames)


def pool_keys(cfg: TinyEncoderTrainConfig) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(training clips, held-out clips) as (identity, scene)."""
    pick = torch.Generator().manual_seed(cfg.seed + 17)
    pairs = cfg.train_identities * cfg.scenes
    chosen = torch.randperm(pairs, generator=pick)[: cfg.pool_clips].tolist()
    train = [(k // cfg.scenes, k % cfg.scenes) for k in chosen]
    heldout = [(cfg.heldout_from + i, i % cfg.scenes) for i in range(cfg.heldout_clips)]
    return train, heldout


@torch.no_grad()
def heldout_metrics(model: TinyVideoEncoder, pool: WindowPool, decoder=None) -> dict:
    """Whole windows: the latents' MSE (normalised, unit-variance units) and its ratio to the targets' variance;
    with a decoder, the PSNR between the frames decoded from the tiny encoder's latents and from the full one's."""
    model.eval()
    mse, var, psnr = [], [], []
    for frames, target in zip(pool.frames, pool.latents, strict=True):
        z = model.encode(frames)[0]
        mse.append(float(((z - target) ** 2).mean()))
        var.append(float(target.var()))
        if decoder is not None:
            a = decoder.decode(z[None]).astype(np.float32)
            b = decoder.decode(target[None]).astype(np.float32)
            psnr.append(float(10 * np.log10(255.0**2 / max(((a - b) ** 2).mean(), 1e-6))))
    out = {"windows": len(mse), "latent_mse": float(np.mean(mse)), "latent_rel_mse": float(np.mean(mse) / np.mean(var))}
    if psnr:
        out["decoded_psnr_db"] = float(np.mean(psnr))
    return out


class TinyEncoderTrainer(SimpleTrainer):
    export_name = "encoder"
    desc = "train tiny encoder"

    def __init__(self, cfg: TinyEncoderTrainConfig, vae=None, decoder=None, progress: bool = True):
        from avatarv.models.vae import VideoVAE
        from avatarv.models.vae.tiny_decoder import FastDecodeVAE

        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.vae = vae or VideoVAE.from_pretrained(cfg.vae)
        if decoder is None and cfg.tiny_decoder:
            decoder = FastDecodeVAE.from_folder(self.vae, cfg.tiny_decoder)
        self.decoder = decoder
        train_keys, heldout_keys = pool_keys(cfg)
        self.pool = WindowPool(self.vae, decoder, cfg, train_keys, self.out / "pool", "window pool", progress)
        self.heldout = WindowPool(self.vae, decoder, cfg, heldout_keys, self.out / "pool", "held-out pool", progress)
        torch.manual_seed(cfg.seed)
        self.start(TinyVideoEncoder(replace(tiny_encoder_config(cfg.preset), latent_channels=self.vae.cfg.z_dim)))

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """→ frames ``[B, 3, T, 8c', 8c']`` in [−1, 1], target latents ``[B, z, F, c', c']`` and the loss mask
        ``[B, 1, 1, c', c']`` (c' = crop + margins, clipped to the frame)."""
        cfg, xs, zs, ms = self.cfg, [], [], []
        for _ in range(cfg.batch_size):
            i = self._randint(len(self.pool))
            z = self.pool.latents[i]  # [z, F, h, w]
            h = z.shape[2]
            c = min(cfg.crop_latents + 2 * cfg.margin, h) if cfg.crop_latents > 0 else h
            y, x = self._randint(h - c + 1), self._randint(h - c + 1)
            s = self.pool.frames[i].shape[1] // h
            mask = torch.ones(c, c)
            m = cfg.margin
            if m and c < h:  # an edge inside the frame is not scored; an edge of the frame is
                if y > 0:
                    mask[:m] = 0
                if y + c < h:
                    mask[c - m :] = 0
                if x > 0:
                    mask[:, :m] = 0
                if x + c < h:
                    mask[:, c - m :] = 0
            xs.append(to_signed(self.pool.frames[i][:, y * s : (y + c) * s, x * s : (x + c) * s]))
            zs.append(z[:, :, y : y + c, x : x + c])
            ms.append(mask)
        return torch.stack(xs), torch.stack(zs), torch.stack(ms)[:, None, None]

    def batch_loss(self) -> tuple[torch.Tensor, dict]:
        """MSE to the full encoder's latents on each crop's scored square."""
        frames, target, mask = self.next_batch()
        err = (self.model(frames) - target) ** 2 * mask  # [B, z, F, c, c]
        return err.sum() / (mask.sum() * target.shape[1] * target.shape[2]), {}

    def finish(self) -> None:
        """Score the held-out windows into ``out_dir/metrics.json``."""
        metrics = {"steps": self.step, **heldout_metrics(self.model, self.heldout, self.decoder)}
        (self.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        self.model.train()


def parse_args(argv: list[str] | None = None) -> tuple[TinyEncoderTrainConfig, dict]:
    return parse_trainer_args(TinyEncoderTrainConfig, __doc__.splitlines()[0], argv)


def main(argv: list[str] | None = None) -> None:
    cfg, flags = parse_args(argv)
    trainer = TinyEncoderTrainer(cfg, progress=not flags["no_progress"])
    trainer.fit(resume=flags["resume"], progress=not flags["no_progress"])
    metrics = trainer.out / "metrics.json"
    print(f"tiny encoder: {trainer.step} steps, weights in {trainer.out / 'encoder'}"
          + (f"; held-out {metrics.read_text()}" if metrics.is_file() else ""))


if __name__ == "__main__":
    main()

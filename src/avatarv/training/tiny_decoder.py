"""Distil the world VAE's decoder into the tiny decoder (models/vae/tiny_decoder.py) on world clips.

Data: a fixed pool of world clips (identities ``0 … train_identities−1``, ``scenes`` scenes, 2 s each, as
training/vae.py's ``WorldClipSource`` draws them), each encoded once by the frozen full encoder and decoded
once by the full decoder (the teacher); the pool is cached under ``out_dir/teacher`` so a resumed run does not
pay for it again. A training sample is a window of ``window_latents`` latent frames (from latent 0, as every
pipeline chunk starts, with probability ``start_at_zero``; else anywhere) and a ``crop_latents``² spatial
window of it (the decoder is convolutional: a window teaches the same weights at a fraction of the cost).

Loss, in [−1, 1]: ``teacher_weight``·L1(tiny, full decoder) + ``original_weight``·L1(tiny, original frames)
+ ``mse_weight``·MSE(tiny, original frames) (PSNR is read from the MSE). The analyzer-space loss of
training/analyzer_loss.py is not used: the full VAE's latents already lose the mouth (benchmarks/results/
vae-mouth.md: mouth r 0.05 after the full round trip), which no decoder can put back.

Resumes exactly (model, optimizer, RNG, step: training/checkpoint.py); checkpoints every ``ckpt_minutes``
(wall clock: saving draws no random numbers, so when it happens does not change the run) and at the end; the
latest decoder folder is ``out_dir/decoder``.

    python -m avatarv.training.tiny_decoder --out runs/tiny-decoder --vae checkpoints/world-small/vae --steps 3000
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from avatarv.errors import ConfigError
from avatarv.models.vae.tiny_decoder import TinyVideoDecoder, tiny_decoder_config
from avatarv.training.simple_trainer import SimpleTrainer, parse_trainer_args


@dataclass
class TinyDecoderTrainConfig:
    preset: str = "small"  # models/vae/tiny_decoder.py TINY_DECODER_PRESETS
    init: str = ""  # start from this decoder folder's weights (its config replaces the preset's); "": random
    # add the latent-0 anchor path to ``init``'s decoder (``TinyVideoDecoder.with_anchor``: same outputs at step 0)
    anchor: bool = False
    vae: str = "checkpoints/world-small/vae"
    out_dir: str = "runs/tiny-decoder"
    steps: int = 3000
    batch_size: int = 4
    lr: float = 2e-3
    min_lr_ratio: float = 0.05  # cosine decay to lr · min_lr_ratio
    window_latents: int = 5  # latent frames per sample: 4(W−1)+1 = 17 frames
    crop_latents: int = 8  # spatial window in latents (8 px each); 0 = whole frame
    start_at_zero: float = 0.5  # probability that a window starts at latent 0 (frame 0 alone, a chunk's start)
    teacher_weight: float = 1.0
    original_weight: float = 1.0
    mse_weight: float = 1.0
    # the teacher pool: clips drawn from identities × scenes, each clip_frames (4k+1) frames of size² px
    pool_clips: int = 32
    train_identities: int = 240
    scenes: int = 2
    clip_frames: int = 49
    size: int = 128
    teacher_dir: str = ""  # where the pool is cached ("": out_dir/teacher); runs on the same VAE may share it
    ckpt_minutes: float = 3.0
    seed: int = 0

    def __post_init__(self):
        if (self.clip_frames - 1) % 4 or self.clip_frames < 5:
            raise ConfigError(f"tiny decoder: clip_frames must be 4k + 1 ≥ 5, got {self.clip_frames}")
        if not 1 <= self.window_latents <= (self.clip_frames - 1) // 4 + 1:
            raise ConfigError(f"tiny decoder: window_latents {self.window_latents} does not fit a "
                              f"{self.clip_frames}-frame clip")


def to_signed(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` → ``[3, T, H, W]`` float in [−1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float() / 127.5 - 1


class TeacherPool:
    """World clips with their full-VAE latents and full-decoder frames, built once and cached on disk.

    ``latents[i]`` ``[z, F, h, w]`` (normalised), ``originals[i]`` / ``teacher[i]`` uint8 ``[T, H, W, 3]``
    with T = 4(F−1)+1."""

    def __init__(self, vae, cfg: TinyDecoderTrainConfig, cache_dir: Path | None, progress: bool = True):
        from tqdm import tqdm

        from avatarv.world import make_clip

        pick = torch.Generator().manual_seed(cfg.seed + 17)  # the pool's own draw: independent of training RNG
        pairs = cfg.train_identities * cfg.scenes
        chosen = torch.randperm(pairs, generator=pick)[: cfg.pool_clips].tolist()
        self.keys = [(k // cfg.scenes, k % cfg.scenes) for k in chosen]
        self.latents, self.originals, self.teacher = [], [], []
        for ident, scene in tqdm(self.keys, desc="teacher pool", disable=not progress):
            path = None if cache_dir is None else cache_dir / f"clip_{ident:05d}_{scene}_{cfg.clip_frames}_{cfg.size}.npz"
            if path is not None and path.is_file():
                data = np.load(path)
                z, frames, full = torch.from_numpy(data["latents"]), data["originals"], data["teacher"]
            else:
                frames = make_clip(ident, scene, seconds=cfg.clip_frames / 25 + 0.04, size=cfg.size,
                                   seed=cfg.seed).frames[: cfg.clip_frames]
                z = vae.encode(frames)[0].float()  # [z, F, h, w]
                full = vae.decode(z[None])  # [T, H, W, 3] uint8
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(".tmp.npz")
                    np.savez(tmp, latents=z.numpy(), originals=frames, teacher=full)
                    tmp.replace(path)
            self.latents.append(z)
            self.originals.append(frames)
            self.teacher.append(full)

    def __len__(self) -> int:
        return len(self.keys)


class TinyDecoderTrainer(SimpleTrainer):
    export_name = "decoder"
    desc = "train tiny decoder"

    def __init__(self, cfg: TinyDecoderTrainConfig, vae=None, progress: bool = True):
        from avatarv.models.vae import VideoVAE

        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.vae = vae or VideoVAE.from_pretrained(cfg.vae)
        self.pool = TeacherPool(self.vae, cfg, Path(cfg.teacher_dir or self.out / "teacher"), progress)
        torch.manual_seed(cfg.seed)
        if cfg.init:
            model = TinyVideoDecoder.from_pretrained(cfg.init)
            if cfg.anchor:
                model = model.with_anchor()
        else:
            model_cfg = replace(tiny_decoder_config(cfg.preset), latent_channels=self.vae.cfg.z_dim,
                                **({"anchor": True} if cfg.anchor else {}))
            model = TinyVideoDecoder(model_cfg)
        self.start(model)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """→ latents ``[B, z, W, c, c]``, originals and teacher frames ``[B, 3, 4(W−1)+1, 8c, 8c]`` in [−1, 1]."""
        cfg, zs, origs, teach = self.cfg, [], [], []
        for _ in range(cfg.batch_size):
            i = self._randint(len(self.pool))
            z = self.pool.latents[i]  # [z, F, h, w]
            n_lat, h, w = z.shape[1], z.shape[2], z.shape[3]
            zero = float(torch.rand((), generator=self.generator)) < cfg.start_at_zero
            start = 0 if zero else self._randint(n_lat - cfg.window_latents + 1)
            c = cfg.crop_latents if 0 < cfg.crop_latents < min(h, w) else min(h, w)
            y, x = self._randint(h - c + 1), self._randint(w - c + 1)
            s = self.pool.originals[i].shape[1] // h  # pixels per latent
            # latent k decodes to frames 4k−3 … 4k; the decoder trims the window's first latent to its last frame
            t = slice(4 * start, 4 * (start + cfg.window_latents - 1) + 1)
            px = (t, slice(y * s, (y + c) * s), slice(x * s, (x + c) * s))
            zs.append(z[:, start : start + cfg.window_latents, y : y + c, x : x + c])
            origs.append(to_signed(self.pool.originals[i][px]))
            teach.append(to_signed(self.pool.teacher[i][px]))
        return torch.stack(zs), torch.stack(origs), torch.stack(teach)

    def loss(self, z: torch.Tensor, original: torch.Tensor, teacher: torch.Tensor) -> tuple[torch.Tensor, dict]:
        out = self.model(z)  # [B, 3, T, H, W]
        l1_teacher = (out - teacher).abs().mean()
        l1_orig = (out - original).abs().mean()
        mse_orig = F.mse_loss(out, original)
        cfg = self.cfg
        loss = cfg.teacher_weight * l1_teacher + cfg.original_weight * l1_orig + cfg.mse_weight * mse_orig
        return loss, {"l1_teacher": l1_teacher.item(), "l1_orig": l1_orig.item(), "mse_orig": mse_orig.item()}

    def batch_loss(self) -> tuple[torch.Tensor, dict]:
        return self.loss(*self.next_batch())

    def postfix(self, rec: dict) -> dict[str, str]:
        return {"l1": f"{rec['l1_orig']:.4f}", "teacher": f"{rec['l1_teacher']:.4f}"}


def parse_args(argv: list[str] | None = None) -> tuple[TinyDecoderTrainConfig, dict]:
    return parse_trainer_args(TinyDecoderTrainConfig, __doc__.splitlines()[0], argv)


def main(argv: list[str] | None = None) -> None:
    cfg, flags = parse_args(argv)
    trainer = TinyDecoderTrainer(cfg, progress=not flags["no_progress"])
    trainer.fit(resume=flags["resume"], progress=not flags["no_progress"])
    print(f"tiny decoder: {trainer.step} steps, weights in {trainer.out / 'decoder'}")


if __name__ == "__main__":
    main()

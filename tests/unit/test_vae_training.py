"""VAE training: PSNR maths, a fixed clip is learned, exact resume."""

from __future__ import annotations

import math

import numpy as np
import torch

from avatarv.training.vae import VAETrainConfig, VAETrainer, psnr


class FixedClip:
    def __init__(self, frames: int = 5, size: int = 32):
        y, x = np.mgrid[0:size, 0:size]
        base = np.stack([x * 8, y * 8, (x + y) * 4], -1).astype(np.uint8)
        self.frames = np.stack([np.roll(base, t, axis=1) for t in range(frames)])

    def sample(self, g):
        return self.frames


def test_psnr():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0, 0] = 255
    assert math.isinf(psnr(a, a))
    assert psnr(a, b) == 10 * math.log10(255**2 / (255**2 / a.size))


def test_vae_learns_a_fixed_clip(tmp_path):
    cfg = VAETrainConfig(preset="tiny", steps=30, batch_size=1, lr=2e-3, out_dir=str(tmp_path), ckpt_every=1000)
    trainer = VAETrainer(cfg, source=FixedClip())
    recs = trainer.fit(progress=False)
    assert np.mean([r["l1"] for r in recs[-5:]]) < 0.6 * np.mean([r["l1"] for r in recs[:5]])


def test_vae_resume_is_exact(tmp_path):
    def run(out, stop=None):
        cfg = VAETrainConfig(preset="tiny", steps=4, batch_size=1, out_dir=str(out), ckpt_every=2)
        trainer = VAETrainer(cfg, source=FixedClip())
        if stop:
            trainer.cfg.steps = stop
        trainer.fit(progress=False)
        return trainer

    straight = run(tmp_path / "a")
    run(tmp_path / "b", stop=2)
    cfg = VAETrainConfig(preset="tiny", steps=4, batch_size=1, out_dir=str(tmp_path / "b"), ckpt_every=2)
    resumed = VAETrainer(cfg, source=FixedClip())
    resumed.fit(resume=True, progress=False)
    for (n, p), (_, q) in zip(straight.model.named_parameters(), resumed.model.named_parameters(), strict=True):
        assert torch.equal(p, q), n


def test_decoder_only_finetune_keeps_the_encoder_and_its_latents(tmp_path):
    cfg = VAETrainConfig(preset="tiny", steps=3, batch_size=1, lr=2e-3, frames=9, out_dir=str(tmp_path),
                         ckpt_every=1000, train_encoder=False)
    trainer = VAETrainer(cfg, source=FixedClip(frames=9))
    clip = FixedClip(frames=9).frames
    before_latents = trainer.vae.encode(clip)
    enc = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if n.startswith(("encoder.", "quant_conv."))}
    dec = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if n.startswith("decoder.")}
    trainer.fit(progress=False)
    for n, p in trainer.model.named_parameters():
        if n in enc:
            assert torch.equal(p, enc[n]), n
    assert any(not torch.equal(p, dec[n]) for n, p in trainer.model.named_parameters() if n in dec)
    torch.testing.assert_close(trainer.vae.encode(clip), before_latents, rtol=0, atol=0)


def test_heldout_psnr_on_chunk_length_clips(tmp_path):
    trainer = VAETrainer(VAETrainConfig(preset="tiny", out_dir=str(tmp_path)))
    short = trainer.heldout_psnr(range(10_000, 10_001), scenes=1, size=64)
    long = trainer.heldout_psnr(range(10_000, 10_001), scenes=1, size=64, frames=17)
    assert np.isfinite(short) and np.isfinite(long) and short != long

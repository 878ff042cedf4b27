"""The tiny tail encoder (models/vae/tiny_encoder.py), its trainer (training/tiny_encoder.py) and its use in the
chunk loop (GenerationOptions.tail_encoder)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from avatarv.config import get_preset
from avatarv.errors import CheckpointError, InputError
from avatarv.models.vae import VideoVAE
from avatarv.models.vae.tiny_encoder import TINY_ENCODER_PRESETS, TimePool, TinyVideoEncoder
from avatarv.training.tiny_encoder import TinyEncoderTrainConfig, TinyEncoderTrainer


@pytest.fixture(scope="module")
def vae() -> VideoVAE:
    torch.manual_seed(0)
    return VideoVAE(get_preset("tiny").vae)  # random weights, z_dim 4, strides 8 / 4


def _encoder(z_dim: int = 4, seed: int = 0) -> TinyVideoEncoder:
    torch.manual_seed(seed)
    return TinyVideoEncoder(replace(TINY_ENCODER_PRESETS["debug"], latent_channels=z_dim)).eval()


def _frames(t: int, h: int = 32, w: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_presets_have_wan_strides():
    for name, cfg in TINY_ENCODER_PRESETS.items():
        assert (cfg.space_stride, cfg.time_stride) == (8, 4), name


@pytest.mark.parametrize("t", [1, 5, 9])
def test_encode_matches_videovae_shapes(vae, t):
    frames = _frames(t)  # non-square: height and width not swapped
    full, tiny = vae.encode(frames), _encoder().encode(frames)
    assert tiny.dtype == full.dtype == torch.float32
    assert tiny.shape == full.shape == (1, 4, (t - 1) // 4 + 1, 4, 6)


def test_wrong_frame_count_is_refused():
    with pytest.raises(ValueError, match="not 4k \\+ 1"):
        _encoder().encode(_frames(4))


def test_causal_like_wan_latent_k_reads_frames_up_to_4k():
    """Latent 0 is frame 0 alone and latent k reads frames ≤ 4k, as Wan's causal encoder: changing frames 5 … 8
    leaves latents 0 and 1 bit-identical and moves latent 2; frame 0 encoded alone gives latent 0 exactly."""
    enc = _encoder(seed=1)
    frames = _frames(9, seed=1)
    later = frames.copy()
    later[5:] = 255 - later[5:]
    a, b = enc.encode(frames), enc.encode(later)
    assert torch.equal(a[:, :, :2], b[:, :, :2])
    assert (a[:, :, 2] - b[:, :, 2]).abs().max() > 1e-4
    assert torch.allclose(enc.encode(frames[:1])[:, :, 0], a[:, :, 0], atol=1e-6)


def test_time_pool_groups_consecutive_frames():
    """TimePool(C, 2) on frames [B·T, C, H, W]: output frame j = W · concat(x_{2j}, x_{2j+1}) (1×1 conv)."""
    torch.manual_seed(3)
    pool = TimePool(3, 2)
    x = torch.randn(2 * 4, 3, 2, 2)  # B = 2 clips of T = 4 frames
    out = pool(x)
    w = pool.proj.weight[:, :, 0, 0]  # [3, 6]
    for j in range(4):  # 2 clips × 2 pooled frames
        ref = torch.einsum("oc,chw->ohw", w, torch.cat([x[2 * j], x[2 * j + 1]]))
        assert torch.allclose(out[j], ref, atol=1e-6)


def test_save_load_round_trip_and_bad_folders(tmp_path):
    enc = _encoder(seed=2)
    enc.save_pretrained(tmp_path / "e")
    loaded = TinyVideoEncoder.from_pretrained(tmp_path / "e")
    assert loaded.cfg == enc.cfg
    frames = _frames(5)
    assert torch.equal(enc.encode(frames), loaded.encode(frames))
    with pytest.raises(CheckpointError, match="not a tiny encoder folder"):
        TinyVideoEncoder.from_pretrained(tmp_path / "missing")
    (tmp_path / "e" / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        TinyVideoEncoder.from_pretrained(tmp_path / "e")
    (tmp_path / "e" / "config.json").write_text('{"class": "TinyVideoDecoder"}')
    with pytest.raises(CheckpointError, match="bad tiny encoder config"):
        TinyVideoEncoder.from_pretrained(tmp_path / "e")


def _trainer(vae, out, **kw) -> TinyEncoderTrainer:
    base = dict(preset="debug", tiny_decoder="", out_dir=str(out), steps=4, batch_size=2, window_frames=5,
                crop_latents=2, margin=1, pool_clips=2, windows_per_clip=2, heldout_clips=1, clip_frames=9, size=64,
                seed=5)
    cfg = TinyEncoderTrainConfig(**{**base, **kw})
    return TinyEncoderTrainer(cfg, vae=vae, progress=False)


def test_trainer_targets_are_the_full_encoders_and_resume_is_exact(vae, tmp_path):
    straight = _trainer(vae, tmp_path / "a")
    # every pooled window's target is the full encoder on that window alone (the chunk loop's fresh clip)
    assert len(straight.pool) == 2 * 2
    for frames, z in zip(straight.pool.frames, straight.pool.latents, strict=True):
        assert frames.shape == (5, 64, 64, 3)
        assert torch.allclose(z, vae.encode(frames)[0], atol=1e-5)
    straight.fit(progress=False)
    first = _trainer(vae, tmp_path / "b")
    first.fit(progress=False, stop_at=2)
    assert first.step == 2 and not (tmp_path / "b" / "metrics.json").is_file()
    second = _trainer(vae, tmp_path / "b")
    second.fit(resume=True, progress=False)
    a, b = straight.model.state_dict(), second.model.state_dict()
    assert second.step == 4 and all(torch.equal(a[k], b[k]) for k in a)
    fresh = _trainer(vae, tmp_path / "c").model.state_dict()
    assert not all(torch.equal(a[k], fresh[k]) for k in a)
    metrics = (tmp_path / "a" / "metrics.json").read_text()
    assert '"latent_rel_mse"' in metrics


def test_masked_loss_scores_only_the_interior_inside_the_frame(vae, tmp_path):
    """A crop of 2 scored latents and a 1-latent margin: the margin is unscored where the crop's edge is inside
    the frame and scored where it is the frame's edge; a crop the size of the frame is scored whole."""
    trainer = _trainer(vae, tmp_path / "m", batch_size=16)  # 64 px: 8 latents, crops of 4 at 0 … 4
    _, target, mask = trainer.next_batch()
    assert target.shape[-2:] == mask.shape[-2:] == (4, 4)
    m = mask[:, 0, 0]  # [B, 4, 4]
    assert bool((m[:, 1:3, 1:3] == 1).all())  # the scored square
    rows, cols = m[:, :, 1], m[:, 1, :]  # each mask is rows ⊗ cols
    assert torch.equal(m, rows[:, :, None] * cols[:, None, :])
    assert bool((rows[:, 0] * rows[:, 3] == 0).all())  # a crop of 4 in 8 latents has at least one inside edge
    assert 0 < float(rows[:, 0].mean()) < 1  # the top edge: scored at y = 0, not elsewhere (16 draws)
    whole = _trainer(vae, tmp_path / "w", crop_latents=6)  # 6 + 2 margins = 8 latents: the crop is the frame
    assert bool(whole.next_batch()[2].all())


def test_distillation_lowers_the_error_to_the_full_encoder(vae, tmp_path):
    trainer = _trainer(vae, tmp_path / "d", steps=60, lr=5e-3)
    first = trainer.fit(progress=False)
    early = np.mean([r["loss"] for r in first[:5]])
    late = np.mean([r["loss"] for r in first[-5:]])
    assert late < 0.6 * early, (early, late)


# ---------------------------------------------------------------------- the chunk loop
def test_generate_uses_the_tail_encoder_when_asked(tmp_path):
    from avatarv.media import read_audio, read_video
    from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions
    from avatarv.resources import example

    pipe = AvatarPipeline.random("tiny", seed=0)
    ref, speech = read_video(example("ref.mp4")), read_audio(example("speech.wav"))
    opts = GenerationOptions(seconds=2.5, steps=1, sampler="x0")
    with pytest.raises(InputError, match="no tiny_encoder"):
        pipe.generate(ref, speech, tmp_path / "x.mp4", replace(opts, tail_encoder="tiny"))
    with pytest.raises(InputError, match="tail_encoder 'fast'"):
        pipe.generate(ref, speech, tmp_path / "x.mp4", replace(opts, tail_encoder="fast"))
    assert not (tmp_path / "x.mp4").exists()
    calls = []
    enc = _encoder(pipe.cfg.vae.z_dim)
    pipe.tail_encoder = enc
    original = enc.encode
    enc.encode = lambda frames: calls.append(len(frames)) or original(frames)
    summary = pipe.generate(ref, speech, tmp_path / "tiny.mp4", opts)
    assert summary["tail_encoder"] == "tiny" and summary["chunks"] >= 2
    assert calls == [4 * (pipe.cfg.overlap_latent_frames - 1) + 1] * (summary["chunks"] - 1)
    calls.clear()
    summary = pipe.generate(ref, speech, tmp_path / "full.mp4", replace(opts, tail_encoder="full"))
    assert summary["tail_encoder"] == "full" and calls == []


def test_checkpoint_round_trip_keeps_the_tail_encoder(tmp_path):
    from avatarv.pipelines.generate import AvatarPipeline

    pipe = AvatarPipeline.random("tiny", seed=0)
    pipe.tail_encoder = _encoder(pipe.cfg.vae.z_dim, seed=4)
    pipe.save(tmp_path / "ck")
    loaded = AvatarPipeline.from_checkpoint(tmp_path / "ck")
    frames = _frames(5, 64, 64)
    assert torch.equal(loaded.tail_encoder.encode(frames), pipe.tail_encoder.encode(frames))
    _encoder(16).save_pretrained(tmp_path / "ck" / "tiny_encoder")  # 16 channels; the tiny VAE has 4
    with pytest.raises(CheckpointError, match="latent channels"):
        AvatarPipeline.from_checkpoint(tmp_path / "ck")

"""VAE training: PSNR maths, a fixed clip is learned, exact resume."""

from __future__ import annotations

import json
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
    with open(tmp_path / "b" / "log.jsonl", "a") as log:  # a step logged after the checkpoint, then killed
        log.write(json.dumps({"step": 3, "loss": -1.0}) + "\n")
    cfg = VAETrainConfig(preset="tiny", steps=4, batch_size=1, out_dir=str(tmp_path / "b"), ckpt_every=2)
    resumed = VAETrainer(cfg, source=FixedClip())
    resumed.fit(resume=True, progress=False)
    for (n, p), (_, q) in zip(straight.model.named_parameters(), resumed.model.named_parameters(), strict=True):
        assert torch.equal(p, q), n
    logs = {name: [json.loads(x) for x in (tmp_path / name / "log.jsonl").read_text().splitlines()] for name in "ab"}
    assert [r["step"] for r in logs["b"]] == [1, 2, 3, 4]  # nothing twice, nothing lost
    assert [r["loss"] for r in logs["b"]] == [r["loss"] for r in logs["a"]]


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


def test_region_weights_mark_the_pixels_inside_each_frames_box():
    from avatarv.training.vae import region_weights

    boxes = {"head": np.array([[1, 1, 3, 3], [0, 2, 4, 4]], np.float32)}
    w = region_weights(boxes, {"head": 2.0}, 4, 4)
    assert w.shape == (1, 2, 4, 4)
    expect0 = np.ones((4, 4))
    expect0[1:3, 1:3] = 3
    expect1 = np.ones((4, 4))
    expect1[2:4, :] = 3
    np.testing.assert_array_equal(w[0, 0].numpy(), expect0)
    np.testing.assert_array_equal(w[0, 1].numpy(), expect1)
    # a box reaching past the frame is clipped; a pixel counts when its centre is inside
    w = region_weights({"head": np.array([[-5, 3.0, 99, 3.6]], np.float32)}, {"head": 1.0}, 4, 4)
    np.testing.assert_array_equal(w[0, 0].numpy(), np.where(np.arange(4)[:, None] == 3, 2.0, 1.0) * np.ones((1, 4)))
    # regions add up where they overlap; a zero weight adds nothing
    boxes["mouth"] = np.array([[2, 2, 4, 4], [0, 0, 1, 1]], np.float32)
    w = region_weights(boxes, {"head": 2.0, "mouth": 5.0}, 4, 4)[0].numpy()
    assert w[0, 2, 2] == 8 and w[0, 3, 3] == 6 and w[0, 0, 0] == 1 and w[1, 0, 0] == 6 and w[1, 3, 0] == 3
    np.testing.assert_array_equal(region_weights(boxes, {"head": 0.0, "mouth": 0.0}, 4, 4).numpy(), 1.0)


def test_mouth_boxes_hold_the_lips_and_sit_inside_the_head():
    from avatarv.training.vae import MOUTH_POINTS, mouth_boxes
    from avatarv.world import make_clip

    clip = make_clip(3, 0, seconds=1.0, size=128, seed=0)
    boxes = mouth_boxes(clip.labels.landmarks)
    lips = clip.labels.landmarks[:, MOUTH_POINTS]
    assert boxes.shape == (len(clip.frames), 4)
    assert np.all(lips[..., 0] > boxes[:, None, 0]) and np.all(lips[..., 0] < boxes[:, None, 2])
    assert np.all(lips[..., 1] > boxes[:, None, 1]) and np.all(lips[..., 1] < boxes[:, None, 3])
    head = clip.labels.head_box
    assert np.all(boxes[:, :2] >= head[:, :2]) and np.all(boxes[:, 2:] <= head[:, 2:])
    # the margin is a quarter of the lips' width on each side
    width = lips[..., 0].max(1) - lips[..., 0].min(1)
    np.testing.assert_allclose(boxes[:, 2] - boxes[:, 0], 1.5 * width, rtol=1e-5)
    # a small part of the frame: what a plain L1 lets the decoder blur
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / 128**2
    assert 0.002 < area.mean() < 0.05


class BoxedClip(FixedClip):
    def sample_with_boxes(self, g):
        t = len(self.frames)
        return self.frames, {"head": np.tile(np.array([[8, 8, 24, 24]], np.float32), (t, 1)),
                             "mouth": np.tile(np.array([[12, 16, 20, 20]], np.float32), (t, 1))}


def test_face_weighted_l1_is_plain_l1_on_a_uniform_error_and_weighs_the_box(tmp_path):
    cfg = VAETrainConfig(preset="tiny", steps=1, batch_size=1, out_dir=str(tmp_path), face_weight=4.0, precision="fp32")
    trainer = VAETrainer(cfg, source=BoxedClip())
    batch, weights, _ = trainer.next_batch()
    assert weights.shape == (1, 1, 5, 32, 32) and weights.max() == 5 and weights.min() == 1
    # the weighted L1 is the plain one re-weighted: check it against the formula on the model's own output
    with torch.no_grad():
        recon = trainer.model.decode(trainer.model.encode(batch).latent_dist.mode()).sample.float()
        _, logs = trainer.loss(batch, weights)
    err = (recon - batch).abs()
    assert math.isclose(logs["l1"], err.mean().item(), rel_tol=1e-5)
    assert math.isclose(logs["l1_weighted"], ((err * weights).mean() / weights.mean()).item(), rel_tol=1e-5)
    inside = err[..., 8:24, 8:24].mean().item()
    assert (logs["l1_weighted"] - logs["l1"]) * (inside - err.mean().item()) > 0  # pulled towards the box's error


def test_mouth_weight_adds_to_the_face_weight(tmp_path):
    cfg = VAETrainConfig(preset="tiny", steps=1, batch_size=1, out_dir=str(tmp_path), face_weight=2.0,
                         mouth_weight=6.0, precision="fp32")
    _, weights, _ = VAETrainer(cfg, source=BoxedClip()).next_batch()
    w = weights[0, 0, 0].numpy()
    assert w[17, 15] == 9 and w[10, 10] == 3 and w[0, 0] == 1  # mouth (in the head), head, background
    only_mouth = VAETrainConfig(preset="tiny", steps=1, batch_size=1, out_dir=str(tmp_path), mouth_weight=6.0)
    _, weights, _ = VAETrainer(only_mouth, source=BoxedClip()).next_batch()
    assert weights is not None and set(np.unique(weights.numpy())) == {1.0, 7.0}


def test_world_source_draws_the_same_windows_with_or_without_boxes():
    from avatarv.training.vae import WorldClipSource

    src = WorldClipSource(range(2), 1, 64, 5, seed=0)
    a = src.sample(torch.Generator().manual_seed(3))
    b, boxes = src.sample_with_boxes(torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(a, b)
    for name in ("head", "mouth"):
        box = boxes[name]
        assert box.shape == (5, 4) and np.all(box[:, 2] > box[:, 0]) and np.all(box[:, 3] > box[:, 1])


def test_cosine_learning_rate_schedule():
    from avatarv.training.vae import lr_at

    cfg = VAETrainConfig(lr=1e-3, steps=11, min_lr_ratio=0.1)
    lrs = [lr_at(cfg, i) for i in range(11)]
    assert math.isclose(lrs[0], 1e-3) and math.isclose(lrs[-1], 1e-4)
    assert math.isclose(lrs[5], 1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))))
    assert all(a > b for a, b in zip(lrs[:-1], lrs[1:], strict=True))
    assert lr_at(VAETrainConfig(lr=2e-4), 123) == 2e-4  # default: constant


def test_latent_crop_takes_the_matching_pixel_window(tmp_path):
    cfg = VAETrainConfig(preset="tiny", steps=1, batch_size=1, out_dir=str(tmp_path), train_encoder=False,
                         crop_latents=2)
    trainer = VAETrainer(cfg, source=FixedClip(frames=9))
    z = torch.arange(1 * 4 * 3 * 4 * 4, dtype=torch.float32).view(1, 4, 3, 4, 4)
    batch = torch.randn(1, 3, 9, 32, 32)
    weights = torch.rand(1, 1, 9, 32, 32)
    zc, bc, wc = trainer.crop(z, batch, weights)
    assert zc.shape == (1, 4, 3, 2, 2) and bc.shape == (1, 3, 9, 16, 16) and wc.shape == (1, 1, 9, 16, 16)
    flat = int(zc[0, 0, 0, 0, 0])
    y, x = divmod(flat, 4)  # where the crop starts in the 4×4 latent grid
    torch.testing.assert_close(zc, z[..., y : y + 2, x : x + 2])
    torch.testing.assert_close(bc, batch[..., 8 * y : 8 * y + 16, 8 * x : 8 * x + 16])
    torch.testing.assert_close(wc, weights[..., 8 * y : 8 * y + 16, 8 * x : 8 * x + 16])


def test_focused_crops_hold_the_most_weighted_region(tmp_path):
    cfg = VAETrainConfig(preset="tiny", steps=1, batch_size=2, out_dir=str(tmp_path), train_encoder=False,
                         crop_latents=2, crop_focus=True)
    trainer = VAETrainer(cfg, source=FixedClip(frames=9))
    z = torch.arange(2 * 4 * 3 * 4 * 4, dtype=torch.float32).view(2, 4, 3, 4, 4)
    batch = torch.randn(2, 3, 9, 32, 32)
    weights = torch.ones(2, 1, 9, 32, 32)
    weights[0, :, :, 26:30, 2:6] = 9  # sample 0: the heavy region near the bottom-left corner (latent 3, 0)
    weights[1, :, :, 12:14, 20:22] = 9  # sample 1: around latent (1, 2)
    for _ in range(20):  # every draw holds each sample's region, each sample its own window
        zc, bc, wc = trainer.crop(z, batch, weights)
        assert zc.shape == (2, 4, 3, 2, 2) and bc.shape == (2, 3, 9, 16, 16)
        assert wc[0].max() == 9 and wc[1].max() == 9
        for b in range(2):
            flat = int(zc[b, 0, 0, 0, 0]) - b * 4 * 3 * 16
            y, x = divmod(flat, 4)
            torch.testing.assert_close(zc[b], z[b, ..., y : y + 2, x : x + 2])
            torch.testing.assert_close(bc[b], batch[b, ..., 8 * y : 8 * y + 16, 8 * x : 8 * x + 16])
        assert int(zc[0, 0, 0, 0, 0]) == 2 * 4  # (row 2, column 0): the only window holding latent (3, 0)
    starts = {tuple(trainer.crop(z, batch, weights)[0][1, 0, 0, 0, :1].tolist()) for _ in range(30)}
    assert len(starts) > 1  # sample 1's window is drawn among the several that hold its region


def test_cropped_decoder_training_learns_and_is_decoder_only(tmp_path):
    cfg = VAETrainConfig(preset="tiny", steps=40, batch_size=1, lr=3e-3, frames=9, out_dir=str(tmp_path),
                         ckpt_every=1000, train_encoder=False, crop_latents=2, min_lr_ratio=0.5)
    clip = FixedClip(frames=9).frames
    trainer = VAETrainer(cfg, source=FixedClip(frames=9))
    enc = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if n.startswith("encoder.")}
    before = psnr(clip, trainer.vae.decode(trainer.vae.encode(clip)))
    recs = trainer.fit(progress=False)
    assert all(torch.equal(p, enc[n]) for n, p in trainer.model.named_parameters() if n in enc)
    # trained on 16-px windows, the convolutional decoder reconstructs the whole 32-px frame better
    assert psnr(clip, trainer.vae.decode(trainer.vae.encode(clip))) > before + 1.0
    assert math.isclose(recs[-1]["lr"], 1.5e-3)


def test_cropped_full_training_sees_pixel_windows_and_learns(tmp_path):
    cfg = VAETrainConfig(preset="tiny", steps=30, batch_size=1, lr=2e-3, frames=5, out_dir=str(tmp_path),
                         ckpt_every=1000, crop_latents=2, precision="fp32")
    clip = FixedClip().frames
    trainer = VAETrainer(cfg, source=FixedClip())
    before = psnr(clip, trainer.vae.decode(trainer.vae.encode(clip)))
    seen = []
    encode = trainer.model.encode
    trainer.model.encode = lambda x: seen.append(tuple(x.shape)) or encode(x)
    enc = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if n.startswith("encoder.")}
    trainer.fit(progress=False)
    assert seen[0] == (1, 3, 5, 16, 16)  # the encoder is trained on 16-px windows of the 32-px clip
    assert any(not torch.equal(p, enc[n]) for n, p in trainer.model.named_parameters() if n in enc)
    assert psnr(clip, trainer.vae.decode(trainer.vae.encode(clip))) > before + 1.0


def test_clip_length_must_be_4k_plus_1(tmp_path):
    import pytest

    from avatarv.errors import ConfigError

    with pytest.raises(ConfigError, match="4k \\+ 1 frames"):
        VAETrainer(VAETrainConfig(preset="tiny", frames=6, out_dir=str(tmp_path)), source=FixedClip())

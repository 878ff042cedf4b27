"""World → training shards → trainer (the shard format end to end)."""

from __future__ import annotations

import json

import pytest
import torch

from avatarv.cli import main
from avatarv.data.shards import ShardDataset, motion_features
from avatarv.errors import InputError
from avatarv.training.config import DataConfig, TrainConfig
from avatarv.training.methods import MethodConfig
from avatarv.training.trainer import Trainer


def test_motion_features_per_latent_frame():
    t = 9
    signals = {n: torch.zeros(t).numpy() for n in ("mouth_open", "mouth_round", "smile", "blink", "brow_raise",
                                                     "gaze_x", "gaze_y", "yaw", "pitch", "roll", "shrug")}
    signals["mouth_open"] = torch.arange(t, dtype=torch.float32).numpy()
    signals["yaw"] = torch.full((t,), 30.0).numpy()
    f = motion_features(signals, 3, 16)
    assert f.shape == (3, 16)
    assert f[0, 0] == 0 and f[1, 0] == pytest.approx(2.5) and f[2, 0] == pytest.approx(6.5)  # frames 1-4, 5-8
    assert f[1, 7] == pytest.approx(1.0)  # yaw 30° → 1
    assert f[1, 11:15].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert motion_features(signals, 3, 6).shape == (3, 6)


def test_world_shards_train(tmp_path):
    shards = tmp_path / "shards"
    assert main(["train", "make-shards", "--out", str(shards), "--identities", "1", "--scenes", "2",
                 "--latents", "2"]) == 0
    ds = ShardDataset(shards)
    assert len(ds) == 2
    item = ds[1]
    assert item["latents"].shape == (4, 2, 8, 8) and item["ref_latents"].shape == (4, 2, 8, 8)
    assert item["audio"].shape == (2, 4, 12) and item["motion"].shape == (2, 6) and item["ref_mask"].shape == (2,)
    assert not torch.equal(ds[0]["latents"], ds[1]["latents"])
    index = json.loads((shards / "index.json").read_text())
    assert all(it["scene"] != it["ref_scene"] for it in index["items"])  # cross-scene pairs only
    cfg = TrainConfig(steps=2, out_dir=str(tmp_path / "run"), data=DataConfig(kind="shards", path=str(shards)),
                      method=MethodConfig(name="personality"), ckpt_every=2)
    trainer = Trainer(cfg)
    records = trainer.fit(progress=False)
    assert len(records) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in records)


def test_shard_dataset_errors(tmp_path):
    with pytest.raises(InputError, match="no index.json"):
        ShardDataset(tmp_path)
    (tmp_path / "index.json").write_text('{"format": "other", "items": []}')
    with pytest.raises(InputError, match="unknown shard format"):
        ShardDataset(tmp_path)


def test_strided_reference_is_every_kth_frame_of_a_longer_clip():
    """``ref_stride`` k: the reference latents are the VAE's encoding of every k-th frame of a clip k times
    longer than the plain reference (the frames the pipeline's ``prepare_reference(stride=k)`` takes)."""
    from avatarv.config import get_preset
    from avatarv.models.vae import VideoVAE
    from avatarv.training.world_shards import encode_reference
    from avatarv.world import make_clip

    cfg = get_preset("tiny")
    torch.manual_seed(0)
    vae = VideoVAE(cfg.vae)
    clip = make_clip(0, 1, seconds=(4 * 1 + 1) * 3 / cfg.fps, size=cfg.resolution, seed=0, clip_index=9)
    ref = encode_reference(clip, vae, cfg, latents=2, stride=3)
    assert ref["latents"].shape == (cfg.vae.z_dim, 2, cfg.resolution // 8, cfg.resolution // 8)
    from avatarv.precision import compute_dtype

    vae.compute_dtype = compute_dtype("cpu")  # encode_reference encodes in the precision policy's dtype
    want = vae.encode(clip.frames[::3][:5])[0]
    assert torch.allclose(ref["latents"], want)
    assert not torch.allclose(ref["latents"], vae.encode(clip.frames[:5])[0])  # not the first 5 frames
    if cfg.dit.motion_dim:  # what a pixel reader can see of the same strided frames (data.shards.REFERENCE_SIGNALS)
        from avatarv.data.shards import reference_motion_features
        from avatarv.training.world_shards import label_signals

        want = reference_motion_features({k: v[::3][:5] for k, v in label_signals(clip.labels).items()}, 2,
                                         cfg.dit.motion_dim)
        assert ref["motion"].shape == (2, cfg.dit.motion_dim) and torch.equal(ref["motion"], want)
    with pytest.raises(ValueError, match="at stride"):
        encode_reference(clip, vae, cfg, latents=3, stride=3)  # 9 frames at stride 3 need 25


def test_make_shards_with_a_strided_reference(tmp_path):
    from avatarv.config import get_preset
    from avatarv.models.vae import VideoVAE
    from avatarv.training.world_shards import make_world_shards

    cfg = get_preset("tiny")
    torch.manual_seed(0)
    vae = VideoVAE(cfg.vae)
    plain, strided = tmp_path / "plain", tmp_path / "strided"
    make_world_shards(plain, cfg, vae, 1, 2, latents=2, ref_latents=2, progress=False)
    make_world_shards(strided, cfg, vae, 1, 2, latents=2, ref_latents=2, progress=False, ref_stride=4)
    a, b = ShardDataset(plain), ShardDataset(strided)
    for i in range(2):
        assert torch.equal(a[i]["latents"], b[i]["latents"])  # the same targets ...
        assert a[i]["ref_latents"].shape == b[i]["ref_latents"].shape
        assert not torch.equal(a[i]["ref_latents"], b[i]["ref_latents"])  # ... other references
        if cfg.dit.motion_dim:  # reference motion: the readable signals only, the target's motion in full
            from avatarv.data.shards import MOTION_SIGNALS, REFERENCE_SIGNALS

            unread = [k for k, n in enumerate(MOTION_SIGNALS[: cfg.dit.motion_dim]) if n not in REFERENCE_SIGNALS]
            for item in (a[i], b[i]):
                assert not item["ref_motion"][:, unread].any() and item["motion"][:, unread].any()

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

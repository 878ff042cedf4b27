"""Field-selective shard reads: statistics over motion rows read the motion rows, not every latent."""

from __future__ import annotations

import torch

from avatarv.data.shards import ShardDataset, read_fields, write_shard
from avatarv.models.dit.motion_codec import motion_statistics
from avatarv.training.motion_stats import dataset_motion_statistics


def _items(n: int = 3) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [{"latents": torch.randn(4, 2, 3, 3, generator=g), "motion": torch.randn(2, 5, generator=g),
             "ref_motion": torch.randn(3, 5, generator=g), "ref_mask": torch.tensor([1, 0, 1], dtype=torch.bool)}
            for _ in range(n)]


def test_read_fields_equals_the_whole_item_cut(tmp_path):
    items = _items()
    write_shard(tmp_path, "s0", items, [{} for _ in items])
    ds = ShardDataset(tmp_path)
    for i, item in enumerate(items):
        whole = ds[i]
        assert set(whole) == set(item)
        part = ds.read(i, ("motion", "ref_mask"))
        assert set(part) == {"motion", "ref_mask"}
        for k in part:
            assert torch.equal(part[k], whole[k]) and torch.equal(part[k], item[k])
        assert ds.read(i, ("nothing",)) == {}
        # a plain dataset (a list of dicts) is cut the same way
        assert set(read_fields(items, i, ("latents", "nothing"))) == {"latents"}


def test_motion_statistics_read_selectively(tmp_path, monkeypatch):
    items = _items(4)
    write_shard(tmp_path, "s0", items, [{} for _ in items])
    ds = ShardDataset(tmp_path)
    monkeypatch.setattr(ShardDataset, "__getitem__", lambda self, i: (_ for _ in ()).throw(AssertionError("whole")))
    assert dataset_motion_statistics(ds) == motion_statistics(torch.cat([it["motion"] for it in items]))

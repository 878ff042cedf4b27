"""Dataset-level statistics of the motion stream, taken by the trainer before it trains.

The DiT's motion codec (``avatarv.models.dit.motion_codec``) and its reference behaviour condition
(``avatarv.models.dit.behaviour``) normalise with statistics of the training data, stored in the DiT's config
(``motion_mean/std``, ``behaviour_mean/std``) so that they travel with the checkpoint. Reading a dataset is
the training side's business: the models never import the data.
"""

from __future__ import annotations

import torch

from avatarv.config import DiTConfig
from avatarv.data.shards import read_fields
from avatarv.models.dit.behaviour import behaviour_statistics, pool_behaviour
from avatarv.models.dit.motion_codec import MotionCodec, motion_statistics


def dataset_motion_statistics(dataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``motion_statistics`` over every target row of a dataset of training items (``motion`` ``[F, dim]``)."""
    rows = [read_fields(dataset, i, ("motion",)).get("motion") for i in range(len(dataset))]
    rows = [r for r in rows if r is not None]
    if not rows:
        raise ValueError("the dataset has no motion features to normalise with")
    return motion_statistics(torch.cat(rows))


def dataset_behaviour_statistics(dataset, ref_frames: int = 0, cfg: DiTConfig | None = None
                                 ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``behaviour_statistics`` of every reference of a dataset of training items (``ref_motion`` ``[F, dim]``,
    ``ref_mask``), each cut to its first ``ref_frames`` frames (0 = all; 1 = the image ablation) and put in the
    motion stream's space of ``cfg`` as training feeds it."""
    codec = MotionCodec.from_config(cfg) if cfg is not None else None
    rows = []
    for i in range(len(dataset)):
        item = read_fields(dataset, i, ("ref_motion", "ref_mask"))
        m = item.get("ref_motion")
        if m is None:
            continue
        mask = item.get("ref_mask")
        k = ref_frames or m.shape[0]
        m = m[:k][None]
        if codec is not None:
            m = codec.normalize(m)
        feats, valid = pool_behaviour(m, None if mask is None else mask[:k][None].bool())
        if bool(valid[0]):
            rows.append(feats)
    if not rows:
        raise ValueError("the dataset has no reference motion to take behaviour statistics from")
    return behaviour_statistics(torch.cat(rows))


__all__ = ["dataset_motion_statistics", "dataset_behaviour_statistics"]

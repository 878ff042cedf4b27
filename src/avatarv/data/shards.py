"""Training shards: the format the data engine's latent pre-encoding writes and the trainer reads.

A shard directory holds ``shard-NNNNN.safetensors`` files and one ``index.json``. Item ``i`` of a shard
stores its tensors under ``"{i}/{field}"`` (fields of ``avatarv.training.batch.Batch``):

- ``latents`` ``[z, F, h, w]`` float — VAE latents of the target clip (normalised, 4k+1 frames → F = k+1);
- ``audio`` ``[F, 4, n_mels]`` — audio tokens per latent frame (``LogMelFeatures.latent_tokens``);
- ``motion`` ``[F, motion_dim]`` — raw motion features per latent frame (``motion_features``, the layout of
  ``avatarv.models.dit.motion_codec``);
- ``text`` ``[L, text_dim]`` — text-encoder outputs (optional);
- ``ref_latents`` ``[z, F_ref, h, w]``, ``ref_motion`` ``[F_ref, motion_dim]``, ``ref_mask`` ``[F_ref]`` bool —
  the reference clip: the same identity in another scene (a cross-scene pair of the identity graph);
- ``latents@NAME`` / ``ref_latents@NAME`` (optional) — the same frames encoded by a further VAE ``NAME``
  (the data engine's multiple VAE encodings); ``ShardDataset(dir, vae=NAME)`` reads them as ``latents`` /
  ``ref_latents``.

``index.json``: ``{"format": "avatarv-shards-v1", "items": [{"shard": name, "index": i, "identity": id,
"scene": id, "ref_scene": id, "clip": str}, ...]}``. Shards are written to a temp name and renamed, then the
index is replaced atomically, so readers never see half a shard.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from avatarv.errors import InputError
from avatarv.models.dit.motion_codec import (  # noqa: F401  (the motion layout is the codec's; re-exported here)
    MOTION_SIGNALS,
    REFERENCE_SIGNALS,
    motion_features,
    motion_signal_names,
    motion_signals,
    reference_motion_features,
)

FORMAT = "avatarv-shards-v1"


def write_shard(directory: str | Path, name: str, items: list[dict], meta: list[dict]) -> None:
    """Write one shard (items: dicts of tensors) and add its items to the directory's index."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"{i}/{k}": v.detach().clone().contiguous() for i, item in enumerate(items) for k, v in item.items() if v is not None}
    tmp = directory / f".{name}.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, directory / f"{name}.safetensors")
    index_path = directory / "index.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {"format": FORMAT, "items": []}
    index["items"] = [it for it in index["items"] if it["shard"] != name]
    index["items"] += [{"shard": name, "index": i, **m} for i, m in enumerate(meta)]
    tmp_index = directory / ".index.json.tmp"
    tmp_index.write_text(json.dumps(index, indent=1))
    os.replace(tmp_index, index_path)


class ShardDataset:
    """Random access to the items of a shard directory (tensors read lazily, one item at a time)."""

    def __init__(self, directory: str | Path, vae: str | None = None):
        self.directory = Path(directory)
        self.vae = vae  # read ``latents@vae`` as ``latents`` (None: the primary VAE's ``latents``)
        index_path = self.directory / "index.json"
        if not index_path.is_file():
            raise InputError("not a shard directory (no index.json)", self.directory)
        index = json.loads(index_path.read_text())
        if index.get("format") != FORMAT:
            raise InputError(f"unknown shard format {index.get('format')!r} (expected {FORMAT})", index_path)
        self.items = index["items"]
        if not self.items:
            raise InputError("the shard index lists no items", index_path)
        if vae is not None and vae != self.items[0].get("vae") and vae not in self.items[0].get("vaes", {}):
            known = [self.items[0].get("vae"), *self.items[0].get("vaes", {})]
            raise InputError(f"no latents of VAE {vae!r} here (known: {sorted({k for k in known if k})})", index_path)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.read(i)

    def read(self, i: int, fields: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Item ``i``, only its ``fields`` when given (the others are not read from disk: statistics over
        the motion rows need not load every latent)."""
        entry = self.items[i]
        prefix = f"{entry['index']}/"
        alt = None if self.vae is None or self.vae == entry.get("vae") else self.vae

        def field(k: str) -> str | None:  # the stored key -> the field it is read as (None: skipped)
            name = k[len(prefix) :]
            base, _, v = name.partition("@")
            if alt is None:
                return None if v else name
            return base if v == alt else None if v or base in ("latents", "ref_latents") else name

        with safe_open(str(self.directory / f"{entry['shard']}.safetensors"), framework="pt") as f:
            out = {}
            for k in f.keys():
                name = field(k) if k.startswith(prefix) else None
                if name is not None and (fields is None or name in fields):
                    out[name] = f.get_tensor(k)
            return out


def read_fields(dataset, i: int, fields: Iterable[str]) -> dict[str, torch.Tensor]:
    """Item ``i`` of a dataset of training items, cut to ``fields`` (read selectively where it can be)."""
    if isinstance(dataset, ShardDataset):
        return dataset.read(i, fields)
    item = dataset[i]
    return {k: item[k] for k in fields if k in item}

"""The shards stage writes what training reads: the bundled trained VAE (not random weights) by default, more
VAEs side by side, UMT5 text embeddings of the clip's caption, balanced cross-scene pairs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avatarv.data.curation.stage import Artifact, Item, build_stage
from avatarv.data.curation.stages.shards import Shards, square_crop
from avatarv.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[2]
T, H, W, SR = 24, 96, 112, 16000
CATEGORIES = [{"lighting": "warm", "shot": "close"}, {"lighting": "cool", "shot": "close"},
              {"lighting": "warm", "shot": "medium"}]


@pytest.fixture(autouse=True)
def bundled(monkeypatch):
    if not (REPO_ROOT / "checkpoints" / "world-small" / "vae" / "config.json").is_file():
        pytest.skip("the bundled checkpoint is not in this checkout (checkpoints/world-small)")
    monkeypatch.setenv("AVATARV_CHECKPOINTS", str(REPO_ROOT / "checkpoints"))


def _art(root: Path, stage: str, values: dict, arrays: dict | None = None) -> Artifact:
    d = root / stage
    d.mkdir(parents=True)
    for k, v in (arrays or {}).items():
        np.save(d / f"{k}.npy", v)
    return Artifact(stage, d, values)


def _items(tmp_path: Path, categories: bool = True) -> list[Item]:
    """Three videos of one person in three scenes, one clip each, with faces, gaze, tiers and categories."""
    rng = np.random.default_rng(0)
    nodes = [{"item": f"v{k}.mp4", "clip": [0, T], "person_id": 0, "scene_id": k} for k in range(3)]
    graph = {"clips": nodes, "cross_scene_pairs": [{"a": 0, "b": 1}, {"a": 0, "b": 2}, {"a": 1, "b": 2}]}
    items = []
    for k in range(3):
        root = tmp_path / f"v{k}"
        frames = rng.integers(0, 255, (T, H, W, 3), dtype=np.uint8)
        it = Item(f"v{k}.mp4", root / "src.mp4", f"hash{k}")
        it.upstream["normalise"] = _art(root, "normalise", {"store": "npy", "sample_rate": SR, "height": H,
                                                             "width": W, "frames": T},
                                        {"frames": frames, "audio": rng.normal(0, 0.1, T * SR // 25).astype(np.float32)})
        box = np.tile(np.array([20.0, 20 + k, 60, 60 + k]), (T, 1))  # 40 px faces: crop side 88 px
        gaze = np.zeros((T, 2, 2))
        gaze[:, 0, 0], gaze[:, 1, 0] = 0.2, np.nan  # one eye seen looking right
        it.upstream["faces"] = _art(root, "faces", {}, {
            "box": box, "ear": np.full(T, 0.3), "pose": np.zeros((T, 3)), "mouth_open": np.linspace(0, 1, T),
            "n_faces": np.ones(T, np.int64), "gaze": gaze})
        it.upstream["clips"] = _art(root, "clips", {"clips": [[0, T]]})
        it.upstream["tiers"] = _art(root, "tiers", {"clips": [{"clip": [0, T], "tier": "A"}]})
        it.upstream["identity_graph"] = _art(root, "identity_graph", graph)
        if categories:
            it.upstream["categories"] = _art(root, "categories", {"categories": CATEGORIES[k]})
        items.append(it)
    return items


def _write(out, tmp_path) -> Path:
    d = tmp_path / "shards"
    d.mkdir()
    for name, data in out.files.items():
        (d / name).write_bytes(data)
    return d


def test_defaults_are_the_bundled_trained_models():
    s = Shards()
    assert s.config.vaes == ("world-small",) and s.config.text_encoder == "world-small"
    assert s.unavailable() is None
    missing = Shards(vaes=("no-such-checkpoint",)).unavailable()
    assert missing is not None and "no-such-checkpoint" in missing and "not found" in missing
    assert "random" not in " ".join(Shards().config.vaes)


def test_shards_hold_bundled_latents_other_vaes_and_umt5_text(tmp_path):
    from avatarv.data.shards import ShardDataset
    from avatarv.models.encoders.text import TextEncoder
    from avatarv.models.vae import VideoVAE

    items = _items(tmp_path)
    stage = Shards(resolution=64, latents=2, ref_latents=2, vaes=("world-small", "rnd=random:small"))
    out = stage.process(items)
    assert out.values["items"] == 6 and out.values["vaes"] == ["world-small", "rnd"]  # 3 clips x 2 references
    d = _write(out, tmp_path)
    ds = ShardDataset(d)
    assert len(ds) == 6
    entries = ds.items
    assert {(e["scene"], e["ref_scene"]) for e in entries} == {(a, b) for a in range(3) for b in range(3) if a != b}
    assert all(e["resolution"] == 88 and e["duration_s"] == T / 25 for e in entries)

    vae = VideoVAE.from_pretrained(REPO_ROOT / "checkpoints" / "world-small" / "vae")
    torch.manual_seed(0)
    from avatarv.config.presets import get_preset

    rnd = VideoVAE(get_preset("small").vae)
    e0, x0, alt = entries[0], ds[0], ShardDataset(d, vae="rnd")[0]
    tgt = int(e0["clip"].split(":")[0][1])
    crop = square_crop(items[tgt].upstream["normalise"].array("frames")[:5], (20.0, 20 + tgt, 60, 60 + tgt), 64)
    assert torch.allclose(x0["latents"], vae.encode(crop)[0], atol=1e-5)  # the trained VAE's latents
    # a second VAE's encoding of the same frames beside them, read as the training fields with vae=
    assert torch.allclose(alt["latents"], rnd.encode(crop)[0], atol=1e-5)
    assert not torch.allclose(x0["latents"], alt["latents"], atol=1e-2)
    assert not any("@" in k for k in x0) and not any("@" in k for k in alt)
    assert torch.equal(alt["motion"], x0["motion"]) and torch.equal(alt["text"], x0["text"])
    from safetensors import safe_open

    with safe_open(str(d / f"{e0['shard']}.safetensors"), framework="pt") as f:
        keys = {k for k in f.keys() if k.startswith(f"{e0['index']}/")}
    assert {"0/latents", "0/latents@rnd", "0/ref_latents", "0/ref_latents@rnd", "0/text"} <= keys
    assert torch.equal(alt["ref_latents"], ShardDataset(d, vae="rnd").read(0, ("ref_latents",))["ref_latents"])
    assert x0["latents"].shape == (16, 2, 8, 8) and x0["ref_latents"].shape == (16, 2, 8, 8)
    sha = hashlib.sha256((REPO_ROOT / "checkpoints/world-small/vae/diffusion_pytorch_model.safetensors")
                         .read_bytes()).hexdigest()[:16]
    assert e0["vae"] == "world-small" and e0["vaes"]["world-small"]["sha256"] == sha
    assert e0["vaes"]["rnd"] == {"source": "random:small", "sha256": None}

    with pytest.raises(InputError, match="no latents of VAE 'nope'"):
        ShardDataset(d, vae="nope")

    # text: the bundled UMT5 on the caption made of the measured categories
    assert e0["text_source"] == "categories"
    assert e0["text"] == "a person talking; " + ", ".join(f"{k}: {v}" for k, v in sorted(CATEGORIES[tgt].items()))
    enc = TextEncoder.from_pretrained(REPO_ROOT / "checkpoints" / "world-small" / "text_encoder", max_length=64)
    assert torch.allclose(x0["text"], enc.encode([e0["text"]])[0], atol=1e-5) and x0["text"].shape == (64, 256)
    assert e0["categories"] == CATEGORIES[tgt]

    # motion: gaze is measured here (one eye seen), so it is no longer listed as unmeasured
    assert "gaze_x" not in e0["unmeasured"] and "smile" in e0["unmeasured"]
    assert x0["motion"].shape == (2, 16) and torch.allclose(x0["motion"][:, 5], torch.tensor([0.2, 0.2]))
    assert x0["ref_mask"].dtype == torch.bool and bool(x0["ref_mask"].all())


def test_balanced_budget_and_no_categories(tmp_path):
    from avatarv.data.shards import ShardDataset

    # a budget of 2 pairs, one per target: one warm and one cool target (2 of the 3 clips are warm)
    out = Shards(resolution=64, latents=2, ref_latents=2, text_encoder="",
                 pairs={"per_target": 1, "max_pairs": 2}).process(_items(tmp_path / "a"))
    ds = ShardDataset(_write(out, tmp_path / "a"))
    assert sorted(e["categories"]["lighting"] for e in ds.items) == ["cool", "warm"]
    assert "text" not in ds[0] and ds.items[0]["text_encoder"] is None
    # no categories stage: the default caption, balanced over identity and scene
    out = Shards(resolution=64, latents=2, ref_latents=2, pairs={"per_target": 1}).process(
        _items(tmp_path / "b", categories=False))
    ds = ShardDataset(_write(out, tmp_path / "b"))
    assert len(ds) == 3 and {e["text_source"] for e in ds.items} == {"default"}
    assert sorted(e["scene"] for e in ds.items) == [0, 1, 2]


def test_config_survives_the_worker_spec_and_toml(tmp_path):
    from avatarv.data.curation.pipeline import load_pipeline

    s = Shards(vaes=["world-small", "rnd=random:tiny"], pairs={"max_pairs": 5, "resolution_buckets": [0, 64]})
    again = build_stage(json.loads(json.dumps(s.spec())))
    assert again.config == s.config and again.config_hash() == s.config_hash()
    assert again.config.pairs.resolution_buckets == (0, 64)
    p = tmp_path / "p.toml"
    p.write_text('[[stage]]\nuse = "normalise"\n[[stage]]\nuse = "faces"\n[[stage]]\nuse = "clips"\n'
                 'inputs = ["faces"]\n[[stage]]\nuse = "tiers"\ninputs = ["clips"]\n[[stage]]\nuse = "identity"\n'
                 '[[stage]]\nuse = "identity_graph"\n[[stage]]\nuse = "shards"\n'
                 'config = { vaes = ["world-small", "other=random:small"], pairs = { per_target = 3 } }\n')
    shards = load_pipeline(p).by_name["shards"]
    assert shards.config.vaes == ("world-small", "other=random:small") and shards.config.pairs.per_target == 3


def test_full_preset_feeds_transcripts_and_captions_to_the_shards():
    from avatarv.data.curation.stages import PRESETS

    stages = PRESETS["full"]()
    shards = stages[-1]
    assert shards.name == "shards" and {"speech", "captions"} <= set(shards.inputs)
    assert ("categories" in shards.inputs) == any(s.name == "categories" for s in stages)

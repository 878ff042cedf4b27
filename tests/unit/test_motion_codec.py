"""The motion codec (``avatarv.models.dit.motion_codec``): signals ↔ tokens, the statistics, the carry across
chunks, and the statistics travelling with a checkpoint."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from avatarv.config import DiTConfig, get_preset
from avatarv.models.dit import VideoRefDiT
from avatarv.models.dit.motion_codec import MOTION_SIGNALS, MotionCodec, motion_features


def _latent_grid_signals(rng, latents: int) -> dict[str, np.ndarray]:
    """Signals on the per-latent layout: constant over each latent frame's frames, mouth exact per frame; dyadic
    values (angles: 30 × dyadic) so that the float32 tokens hold them exactly."""
    t = 4 * (latents - 1) + 1
    j = (np.arange(t) + 3) // 4
    out = {}
    for n in MOTION_SIGNALS:
        per_latent = rng.integers(-64, 64, latents) / 64
        out[n] = per_latent[j] * (30.0 if n in ("yaw", "pitch", "roll") else 1.0)
    out["mouth_open"] = rng.integers(0, 256, t) / 256
    return out


def test_encode_decode_round_trip_is_exact_on_the_per_latent_layout():
    rng = np.random.default_rng(0)
    signals = _latent_grid_signals(rng, 6)
    codec = MotionCodec(len(MOTION_SIGNALS) + 4)
    tokens = codec.encode(signals)
    assert tokens.shape == (6, 15) and tokens.dtype == torch.float32
    back = codec.decode(tokens)
    assert list(back) == list(MOTION_SIGNALS)
    for n in MOTION_SIGNALS:
        np.testing.assert_array_equal(back[n], signals[n], err_msg=n)
    assert torch.equal(codec.encode(back), tokens)  # and tokens → signals → tokens
    # a wider stream pads with zeros, a narrower one holds the first signals (per-latent mouth mean)
    assert torch.equal(MotionCodec(16).encode(signals)[:, 15], torch.zeros(6))
    narrow = MotionCodec(6)
    assert narrow.names == list(MOTION_SIGNALS[:6])
    assert list(narrow.decode(narrow.encode(signals))) == list(MOTION_SIGNALS[:6])
    with pytest.raises(ValueError, match="do not fit"):
        codec.decode(tokens, 22)


def test_normalise_with_known_statistics():
    codec = MotionCodec(3, mean=(1.0, -2.0, 0.5), std=(0.5, 4.0, 1.0))
    x = torch.tensor([[2.0, 2.0, 0.5], [0.0, -6.0, 1.5]])
    want = torch.tensor([[2.0, 1.0, 0.0], [-2.0, -1.0, 1.0]])  # (x − mean) / std, written out
    assert torch.equal(codec.normalize(x), want)
    assert torch.equal(codec.denormalize(want), x)
    assert codec.normalize(x.double()).dtype == torch.float64
    # encode = normalise(features), decode = signals(denormalise)
    stats = MotionCodec(16, mean=tuple(np.linspace(-1, 1, 16).tolist()), std=tuple(np.linspace(0.5, 2, 16).tolist()))
    signals = _latent_grid_signals(np.random.default_rng(1), 3)
    raw = motion_features(signals, 3, 16)
    torch.testing.assert_close(stats.encode(signals), (raw - torch.tensor(stats.mean)) / torch.tensor(stats.std))
    for n, v in stats.decode(stats.encode(signals)).items():
        np.testing.assert_allclose(v, signals[n], atol=1e-5, err_msg=n)
    plain = MotionCodec(3)  # no statistics: the identity, the very tensor
    assert plain.normalize(x) is x and plain.denormalize(x) is x
    with pytest.raises(ValueError, match="3 values each"):
        MotionCodec(3, mean=(0.0,), std=(1.0,))


def test_carry_equals_what_the_pipeline_carried_before():
    """``MotionCodec.carry`` on a fixed input against the output of ``pipelines.motion_track.known_motion``
    before the codec existed (written out)."""
    prev = torch.arange(3 * 16, dtype=torch.float32).reshape(3, 16) * 0.0625 - 1.0
    want2 = [[0.875, 0.0625, 0.125, 0.1875, 0.25, 0.3125, 0.375, 0.4375, 0.5, 0.5625, 0.625, 0.875, 0.875, 0.875,
              0.875, 0.0],
             [1.78125, 1.0625, 1.125, 1.1875, 1.25, 1.3125, 1.375, 1.4375, 1.5, 1.5625, 1.625, 1.6875, 1.75, 1.8125,
              1.875, 0.0]]
    want1 = [[1.875, 1.0625, 1.125, 1.1875, 1.25, 1.3125, 1.375, 1.4375, 1.5, 1.5625, 1.625, 1.875, 1.875, 1.875,
              1.875, 0.0]]
    want_narrow = [[0.0, 0.0625, 0.125, 0.1875, 0.25, 0.3125], [1.0, 1.0625, 1.125, 1.1875, 1.25, 1.3125]]
    codec = MotionCodec(16, mean=(0.3,) * 16, std=(2.0,) * 16)  # raw features in, raw out: statistics unused
    assert torch.equal(codec.carry(prev, 2), torch.tensor(want2))
    assert torch.equal(codec.carry(prev, 1), torch.tensor(want1))
    assert torch.equal(MotionCodec(6).carry(prev[:, :6], 2), torch.tensor(want_narrow))
    assert codec.carry(prev.double(), 2).dtype == torch.float64
    with pytest.raises(ValueError, match="known latent frames"):
        codec.carry(prev, 4)
    with pytest.raises(ValueError, match="width 6"):
        codec.carry(prev[:, :6], 2)


def test_a_checkpoint_saved_before_loads_with_the_same_statistics(tmp_path):
    """A checkpoint in the format written before the codec (``config.json`` with ``motion_mean/std`` in the
    DiT's config) loads into a DiT whose codec holds those statistics, to the digit; the codec writes them back
    to the same place."""
    from safetensors.torch import save_file

    cfg = get_preset("tiny").dit
    mean = [round(0.01 * k - 0.03, 6) for k in range(cfg.motion_dim)]
    std = [round(0.05 + 0.02 * k, 6) for k in range(cfg.motion_dim)]
    torch.manual_seed(0)
    model = VideoRefDiT(cfg)
    d = tmp_path / "old"
    d.mkdir()
    raw = cfg.to_dict()
    raw["motion_mean"], raw["motion_std"] = mean, std
    (d / "config.json").write_text(json.dumps({"format": "avatarv-dit-v1", "dit": raw}, indent=2))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "model.safetensors"))
    loaded = VideoRefDiT.from_pretrained(d)
    codec = MotionCodec.from_config(loaded.cfg)
    assert codec.statistics == (tuple(mean), tuple(std)) and codec.dim == cfg.motion_dim
    x = torch.ones(2, cfg.motion_dim)
    assert torch.equal(codec.normalize(x), (x - torch.tensor(mean)) / torch.tensor(std))
    # written back by the codec and saved by today's writer: the same storage, the same numbers
    loaded.cfg = MotionCodec(cfg.motion_dim).with_statistics(mean, std).to_config(replace(loaded.cfg, motion_mean=(),
                                                                                            motion_std=()))
    assert loaded.cfg.motion_mean == tuple(mean)
    loaded.save_pretrained(tmp_path / "new")
    saved = json.loads((tmp_path / "new" / "config.json").read_text())["dit"]
    assert (saved["motion_mean"], saved["motion_std"]) == (mean, std)
    assert MotionCodec.from_config(VideoRefDiT.from_pretrained(tmp_path / "new").cfg) == codec
    # the bundled checkpoints predate the statistics: the identity
    bundled = Path(__file__).resolve().parents[2] / "checkpoints/world-small/dit/config.json"
    if bundled.is_file():
        plain = MotionCodec.from_config(DiTConfig.from_dict(json.loads(bundled.read_text())["dit"]))
        assert plain.statistics == ((), ()) and plain.dim == 16

"""Presets, config validation, the info command, and avatarv's own DiT checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from avatarv.cli import main
from avatarv.config import PRESETS, DiTConfig, get_preset
from avatarv.errors import CheckpointError, ConfigError
from avatarv.models.dit import VideoRefDiT


def test_presets_have_wan_dimensions():
    for name, (dim, heads, layers, ffn) in {"wan-1.3b": (1536, 12, 30, 8960), "wan-14b": (5120, 40, 40, 13824)}.items():
        cfg = get_preset(name).dit
        assert (cfg.dim, cfg.num_heads, cfg.num_layers, cfg.ffn_dim) == (dim, heads, layers, ffn)
        assert (cfg.text_dim, cfg.freq_dim, cfg.patch_size, cfg.latent_channels) == (4096, 256, (1, 2, 2), 16)
        assert cfg.head_dim == 128
    assert set(PRESETS) >= {"tiny", "small", "wan-1.3b", "wan-14b"}


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError, match="not divisible"):
        DiTConfig(dim=100, num_heads=3)
    with pytest.raises(ConfigError, match="cond_channels"):
        DiTConfig(cond_channels=7)
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("wan-99b")
    with pytest.raises(ConfigError, match="unknown DiT config keys"):
        DiTConfig.from_dict({"dim": 64, "heads": 4})


def test_config_roundtrip():
    cfg = get_preset("small").dit
    assert DiTConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_tiny_forward_is_fast():
    import time

    model = VideoRefDiT(get_preset("tiny").dit)
    x = torch.randn(1, 4, 3, 8, 8)
    start = time.perf_counter()
    with torch.no_grad():
        model(x, torch.rand(1))
    assert time.perf_counter() - start < 1.0


def test_info_prints_presets_and_machine(capsys):
    assert main(["info", "--preset", "wan-14b"]) == 0
    out = capsys.readouterr().out
    n = VideoRefDiT.count_parameters(get_preset("wan-14b").dit)
    assert f"params={n:,}" in out and n > 14e9
    assert "torch_threads" in out and "amx_bf16" in out


def test_info_unknown_preset_is_one_line_error(capsys):
    assert main(["info", "--preset", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("avatarv: unknown preset 'nope'")


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = VideoRefDiT(get_preset("tiny").dit)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = VideoRefDiT.from_pretrained(tmp_path / "ckpt")
    x = torch.randn(1, 4, 2, 8, 8)
    t = torch.tensor([0.4])
    with torch.no_grad():
        assert torch.equal(model(x, t).video, loaded(x, t).video)
    assert not list(tmp_path.glob(".ckpt.*"))  # no temp dir left behind


def test_load_refuses_foreign_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        VideoRefDiT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"format": "other"}')
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        VideoRefDiT.from_pretrained(tmp_path)


def test_checkpoint_retention_keeps_the_newest(tmp_path):
    import torch

    from avatarv.training.checkpoint import latest_checkpoint, save_checkpoint

    for step in (10, 20, 30, 40):
        save_checkpoint(tmp_path, step, {"model": {"w": torch.full((2,), float(step))}}, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_0000030", "step_0000040"]
    assert latest_checkpoint(tmp_path).name == "step_0000040"
    save_checkpoint(tmp_path, 50, {"model": {"w": torch.zeros(2)}})  # keep=0: nothing deleted
    assert len(list(tmp_path.glob("step_*"))) == 3

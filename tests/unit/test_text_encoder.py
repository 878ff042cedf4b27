"""Text encoder: byte-level UMT5 built from a config, saved and loaded from a local directory."""

from __future__ import annotations

import pytest
import torch

from avatarv.errors import CheckpointError
from avatarv.models.encoders.text import TextEncoder


def test_tiny_encoder_shapes_padding_and_roundtrip(tmp_path):
    enc = TextEncoder.tiny(d_model=32, max_length=16)
    out = enc.encode(["a woman talks in a library", "hi"])
    assert out.shape == (2, 16, 32)
    n_tokens = len("hi") + 1  # bytes + </s>
    assert out[1, n_tokens:].abs().sum() == 0 and out[1, :n_tokens].abs().sum() > 0
    assert not torch.allclose(out[0, :3], out[1, :3])
    enc.save_pretrained(tmp_path / "t5")
    again = TextEncoder.from_pretrained(tmp_path / "t5", max_length=16)
    assert torch.equal(again.encode(["hi"]), enc.encode(["hi"]))


def test_text_encoder_feeds_the_dit():
    from avatarv.config import get_preset
    from avatarv.models.dit import VideoRefDiT

    cfg = get_preset("tiny").dit
    text = TextEncoder.tiny(d_model=cfg.text_dim, max_length=8).encode(["a man speaking"])
    out = VideoRefDiT(cfg)(torch.randn(1, 4, 2, 8, 8), torch.tensor([0.5]), text=text)
    assert out.video.shape == (1, 4, 2, 8, 8)


def test_missing_directory():
    with pytest.raises(CheckpointError, match="no config.json"):
        TextEncoder.from_pretrained("/nonexistent/umt5")

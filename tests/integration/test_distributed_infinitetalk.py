"""Ulysses on 2 gloo ranks equals one process for InfiniteTalk's adapter: frame-local audio tokens sharded with the
frames, and two-speaker L-RoPE (frame 0's keys from rank 0, the map's min / max over every rank's real tokens);
3 latent frames over 2 ranks (padded to 4, cut)."""

from __future__ import annotations

import torch
import torch.multiprocessing as mp

from avatarv.config import DiTConfig
from avatarv.models.dit import VideoRefDiT
from tests.integration.test_distributed import WORLD, _finish, _init, free_port

CFG = DiTConfig(dim=32, num_heads=4, num_layers=2, ffn_dim=48, latent_channels=4, cond_channels=8, text_dim=8,
                freq_dim=16, image_dim=6, audio_adapter="infinitetalk", audio_dim=6, audio_layers=2,
                audio_hidden_dim=8, audio_context_tokens=3, audio_token_dim=10)


def build() -> VideoRefDiT:
    torch.manual_seed(0)
    model = VideoRefDiT(CFG).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def inputs(speakers: int, frames: int = 3):
    g = torch.Generator().manual_seed(1)
    masks = torch.zeros(1, 3, 6, 8)
    masks[0, 0, :, :4], masks[0, 1, :, 4:] = 1, 1
    masks[0, 2, :1] = 1
    return dict(x=torch.randn(2, 4, frames, 6, 8, generator=g), t=torch.rand(2, generator=g),
                text=torch.randn(2, 5, 8, generator=g), cond=torch.randn(2, 8, frames, 6, 8, generator=g),
                image=torch.randn(2, 7, 6, generator=g),
                audio=torch.randn(2, speakers, 1 + 4 * (frames - 1), 5, 2, 6, generator=g), speaker_masks=masks)


def _worker(rank: int, port: int, out_path: str):
    from avatarv.distributed import apply_ulysses

    _init(rank, port)
    try:
        model = apply_ulysses(build())
        outs = {}
        with torch.no_grad():
            for s in (1, 2):
                outs[s] = model(**inputs(s)).video
        if rank == 0:
            torch.save(outs, out_path)
    finally:
        _finish()


def test_ulysses_infinitetalk_equals_single_process(tmp_path):
    model = build()
    with torch.no_grad():
        want = {s: model(**inputs(s)).video for s in (1, 2)}
    out_path = str(tmp_path / "out.pt")
    mp.spawn(_worker, args=(free_port(), out_path), nprocs=WORLD, join=True)
    got = torch.load(out_path)
    for s in (1, 2):
        assert got[s].shape == want[s].shape
        err = (got[s] - want[s]).abs().max().item()
        assert err < 1e-5, (s, err)
    assert (want[1] - want[2]).abs().max() > 1e-3  # the second speaker and L-RoPE matter

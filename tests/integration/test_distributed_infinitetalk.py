"""Ulysses on 2 gloo ranks equals one process for InfiniteTalk's adapter: frame-local audio tokens sharded with the
frames, and two-speaker L-RoPE (frame 0's keys from rank 0, the map's min / max over every rank's real tokens);
3 latent frames over 2 ranks (padded to 4, cut)."""

from __future__ import annotations

from pathlib import Path

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


def _cli_worker(rank: int, port: int, weights: str, ref: str, speech: str, out: str, fsdp: bool):
    """One torchrun rank: the environment torchrun sets, then the command line's own job function."""
    import os

    import soundfile as sf

    from avatarv.pipelines.infinitetalk import InfiniteTalkOptions
    from avatarv.pipelines.infinitetalk_cli import WeightsArgs, run_infinitetalk

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    opts = InfiniteTalkOptions(resolution=(32, 48), frame_num=9, motion_frames=5, steps=1)
    run_infinitetalk(Path(ref), Path(out), [sf.read(speech, dtype="float32")[0]], WeightsArgs(weights=Path(weights)),
                     opts, device="cpu", fsdp=fsdp)


def test_torchrun_generation_equals_one_process(tmp_path):
    """The InfiniteTalk job on 2 ranks (Ulysses + FSDP2; Ulysses alone is the model test above) writes the video
    one process writes, once, at the output path."""
    import numpy as np
    import soundfile as sf

    from avatarv.media import read_video
    from avatarv.media.write import write_mp4
    from avatarv.pipelines.infinitetalk import InfiniteTalkOptions
    from avatarv.pipelines.infinitetalk_cli import WeightsArgs, run_infinitetalk
    from tests.infinitetalk_weights import write_weights

    weights = write_weights(tmp_path / "weights")
    rng = np.random.default_rng(0)
    ref, speech = tmp_path / "ref.mp4", tmp_path / "speech.wav"
    write_mp4(ref, rng.integers(0, 255, (10, 40, 60, 3), dtype=np.uint8), 25)
    t = np.arange(4800) / 16000  # 0.3 s: one chunk
    sf.write(speech, (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000)
    single = tmp_path / "single.mp4"
    run_infinitetalk(ref, single, [sf.read(speech, dtype="float32")[0]], WeightsArgs(weights=weights),
                     InfiniteTalkOptions(resolution=(32, 48), frame_num=9, motion_frames=5, steps=1), device="cpu")
    want = read_video(single).frames.astype(float)
    for fsdp in (True,):
        out = tmp_path / f"two-ranks-{fsdp}.mp4"
        mp.spawn(_cli_worker, args=(free_port(), str(weights), str(ref), str(speech), str(out), fsdp), nprocs=WORLD,
                 join=True)
        got = read_video(out).frames.astype(float)
        assert got.shape == want.shape
        assert np.abs(got - want).mean() < 0.5 and np.abs(got - want).max() <= 8, fsdp
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == ["ref.mp4", "single.mp4", "two-ranks-True.mp4"]

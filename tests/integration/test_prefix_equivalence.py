"""Prefix-to-video ≡ one long chunk, on a deterministic toy model.

The toy DiT knows the clean latents of every frame as a function of that frame's audio tokens only and
returns the exact rectified-flow velocity (x − x0)/t, so any sampler lands on x0. Its toy VAE maps latent j to
video frames 4j−3 … 4j (piecewise constant, quantised identically on both paths, so decode → encode → decode
is exact). Then the chunked job (first chunk from the scene image, later chunks prefix-to-video from the
re-encoded tail of the previous chunk, overlap cross-faded) must write exactly the frames of one chunk that
covers the whole speech: any error in chunk offsets, audio windows, prefix injection or seam blending shows
up as a frame difference. (With a real model the chunks differ from one long chunk by what the model makes of
its context; this test pins the plumbing.)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from avatarv.config import get_preset
from avatarv.media import read_video
from avatarv.models.dit.inputs import DiTOutput
from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions


class ToyDiT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        g = torch.Generator().manual_seed(0)
        self.proj = torch.randn(cfg.audio_dim, 3, generator=g) / cfg.audio_dim**0.5

    def target(self, audio: torch.Tensor, shape) -> torch.Tensor:  # x0 of each frame from its audio only
        b, z, f, h, w = shape
        per_frame = torch.tanh(4 * audio.mean(dim=2) @ self.proj)  # [B, F, 3]
        x0 = torch.zeros(shape)
        x0[:, :3] = per_frame.permute(0, 2, 1)[..., None, None] * 0.9
        return x0

    def forward(self, x, t, cond=None, audio=None, motion=None, ref=None, ref_cache=None, **_):
        t = t.view(-1, 1, 1, 1, 1).clamp(min=1e-6)
        v = (x - self.target(audio, x.shape)) / t
        mv = None if motion is None else motion / t.view(-1, 1, 1)  # motion x0 = 0
        return DiTOutput(video=v, motion=mv)


class ToyVAE(nn.Module):
    """latent j ↔ frames 4j−3 … 4j (frame 0 for j = 0); channels 0–2 ↔ RGB through tanh."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg

    def encode(self, frames) -> torch.Tensor:
        frames = np.asarray(frames)
        picks = frames[0::4]  # frame 4j is in latent j's group
        x = torch.from_numpy(picks.astype(np.float32) / 127.5 - 1).clamp(-0.999, 0.999)
        s = self.cfg.spatial_stride
        lat = torch.atanh(x)[:, ::s, ::s].permute(3, 0, 1, 2)[None]  # [1, 3, F, h, w]
        z = torch.zeros(1, self.cfg.z_dim, *lat.shape[2:])
        z[:, :3] = lat
        return z

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        s = self.cfg.spatial_stride
        rgb = torch.tanh(latents[0, :3]).permute(1, 2, 3, 0)  # [F, h, w, 3]
        rgb = rgb.repeat_interleave(s, 1).repeat_interleave(s, 2)
        u8 = ((rgb + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
        return np.concatenate([u8[:1], np.repeat(u8[1:], 4, axis=0)])


def run_job(tmp_path, reference, speech, chunk_latents: int, name: str, sampler: str):
    base = get_preset("tiny")
    cfg = replace(base, chunk_latent_frames=chunk_latents, overlap_latent_frames=2)
    pipe = AvatarPipeline(cfg, ToyDiT(cfg.dit), ToyVAE(cfg.vae))
    out = tmp_path / f"{name}.mp4"
    summary = pipe.generate(reference, speech, out, GenerationOptions(steps=3, sampler=sampler, seed=1, seconds=2.0))
    return summary, read_video(out)


@pytest.mark.parametrize("sampler", ["euler", "overshoot"])
def test_chunked_prefix_generation_equals_one_long_chunk(tmp_path, real_clips, real_speech, sampler):
    from avatarv.media import read_audio

    reference = read_video(next(p for p in real_clips if p.name == "man_suit_office.mp4"))
    speech = read_audio(real_speech[0])
    short, chunked = run_job(tmp_path, reference, speech, 5, "chunked", sampler)
    one, whole = run_job(tmp_path, reference, speech, 41, "whole", sampler)
    assert short["chunks"] >= 4 and one["chunks"] == 1
    assert chunked.frames.shape == whole.frames.shape == (50, 64, 64, 3)
    assert np.array_equal(chunked.frames, whole.frames)
    assert np.array_equal(chunked.audio, whole.audio)
    # …and the frames follow the audio (not a constant picture that would pass trivially)
    assert chunked.frames.reshape(50, -1).astype(float).mean(1).std() > 2

"""The vae-roundtrip benchmark system: the driving clip through a checkpoint's VAE, chunk by chunk, with its
own audio: the ceiling row of the pixel metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarv.errors import InputError
from avatarv.eval.benchmark import BenchmarkCase, get_system
from avatarv.media import read_video
from avatarv.pipelines.generate import AvatarPipeline


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "pipe"
    AvatarPipeline.random("tiny", seed=0).save(path)
    return path


def test_roundtrip_is_chunked_like_the_pipeline(checkpoint):
    system = get_system("vae-roundtrip", checkpoint=checkpoint, steps=8)  # generator options are ignored
    n = system.chunk_frames()
    assert n == 4 * (system.cfg.chunk_latent_frames - 1) + 1
    size = system.cfg.resolution
    frames = np.random.default_rng(0).integers(0, 256, (n + 6, size, size, 3), dtype=np.uint8)
    out = system.roundtrip(frames)
    assert out.shape == frames.shape and out.dtype == np.uint8
    with torch.no_grad():  # each chunk on its own: the first is the first chunk's encode/decode exactly
        first = np.asarray(system.vae.decode(system.vae.encode(frames[:n])))
    assert np.array_equal(out[:n], first)
    # the 6-frame tail is padded to 9 (4k + 1) with its last frame, and cut back
    with torch.no_grad():
        tail = np.asarray(system.vae.decode(system.vae.encode(np.concatenate([frames[n:], frames[-1:].repeat(3, 0)]))))
    assert np.array_equal(out[n:], tail[:6])


def test_generate_writes_the_roundtrip_with_the_driving_audio(checkpoint, tmp_path):
    from avatarv.world import make_clip

    system = get_system("vae-roundtrip", checkpoint=checkpoint)
    clip = make_clip(10_000, 0, seconds=1.0, size=system.cfg.resolution, seed=0)
    driving = clip.save(tmp_path / "driving.mp4")
    case = BenchmarkCase("c0", "id", "same", reference=driving, driving=driving)
    out = system.generate(case, tmp_path)
    got, src = read_video(out), read_video(driving)
    assert got.num_frames == src.num_frames and got.audio is not None
    assert abs(len(got.audio) - len(src.audio)) <= src.sample_rate // 25
    assert not np.array_equal(got.frames, src.frames)  # an untrained VAE changes the pixels
    assert system.last_meta["vae"].endswith("vae") and "vae_sha256" in system.fingerprint


def test_needs_a_checkpoint():
    with pytest.raises(InputError, match="--checkpoint"):
        get_system("vae-roundtrip", checkpoint=None)


def test_a_vae_folder_alone_is_measured_with_the_small_geometry(checkpoint):
    """A candidate VAE (no DiT yet) is a system too: its folder's strides, the small preset's chunk and size."""
    from avatarv.config.presets import get_preset

    system = get_system("vae-roundtrip", checkpoint=checkpoint / "vae")
    small = get_preset("small")
    assert system.vae_path == checkpoint / "vae"
    assert system.cfg.vae == system.vae.cfg and system.cfg.resolution == small.resolution
    assert system.chunk_frames() == 4 * (small.chunk_latent_frames - 1) + 1
    frames = np.random.default_rng(2).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    out = system.roundtrip(frames)  # resized to the preset's square, encoded and decoded
    assert out.shape == (5, small.resolution, small.resolution, 3)

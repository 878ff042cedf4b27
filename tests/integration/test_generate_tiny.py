"""End to end: reference video + speech → streamed mp4 with the tiny preset (random weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from avatarv.cli import main
from avatarv.media import probe, read_audio, read_video
from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions


@pytest.fixture(scope="module")
def real_inputs(real_clips, real_speech):
    ref = next(p for p in real_clips if p.name == "man_suit_office.mp4")
    speech = next(p for p in real_speech if p.name == "en_male_radio.wav")
    return ref, speech


def test_generate_tiny_end_to_end(tmp_path, real_inputs):
    ref_path, speech_path = real_inputs
    pipe = AvatarPipeline.random("tiny", seed=0)
    steps_seen = []
    out = tmp_path / "out.mp4"
    summary = pipe.generate(read_video(ref_path), read_audio(speech_path), out,
                            GenerationOptions(seconds=1.4, steps=2, seed=3),
                            progress=lambda chunk, i: steps_seen.append((chunk.index, i)))
    assert summary["frames"] == 35 and summary["chunks"] >= 2
    assert summary["ref_cache_builds"] == 1  # reference K/V computed once for all chunks and steps
    assert summary["ref_cache_hits"] == 2 * summary["chunks"] - 1  # …and reused by every other step
    assert summary["anchor_cache_builds"] == 1  # the appearance anchor: once, after the first chunk
    assert len(steps_seen) == 2 * summary["chunks"]
    back = read_video(out)
    assert back.frames.shape == (35, 64, 64, 3)
    assert abs(len(back.audio) / 16000 - 1.4) < 0.1
    info = probe(out)
    assert info is not None


def test_generate_is_deterministic(tmp_path, real_inputs):
    ref_path, speech_path = real_inputs
    ref, speech = read_video(ref_path), read_audio(speech_path)
    frames = []
    for i in range(2):
        out = tmp_path / f"o{i}.mp4"
        AvatarPipeline.random("tiny", seed=0).generate(ref, speech, out, GenerationOptions(seconds=0.6, steps=2))
        frames.append(read_video(out).frames)
    assert np.array_equal(frames[0], frames[1])


def test_write_behind_same_bytes_as_inline_and_errors_surface(tmp_path, real_inputs):
    """Writing chunk i on the worker while chunk i + 1 samples changes nothing in the file (mp4 bytes, motion
    track); an error in a write (here the frame filter) reaches the caller, and the output path is never written."""
    ref_path, speech_path = real_inputs
    ref, speech = read_video(ref_path), read_audio(speech_path)
    data = {}
    for behind in (False, True):
        out = tmp_path / f"b{int(behind)}.mp4"
        summary = AvatarPipeline.random("tiny", seed=0).generate(
            ref, speech, out, GenerationOptions(seconds=1.4, steps=2, seed=3, write_behind=behind,
                                                motion_path=str(tmp_path / f"m{int(behind)}.json")))
        assert summary["chunks"] >= 2 and ("write_behind" in summary["seconds_by_phase"])
        data[behind] = (out.read_bytes(), (tmp_path / f"m{int(behind)}.json").read_bytes())
    assert data[True] == data[False]

    calls = []

    def failing(frames):
        calls.append(len(frames))
        if len(calls) == 2:
            raise RuntimeError("filter broke on chunk 2")
        return frames

    out = tmp_path / "fail.mp4"
    with pytest.raises(RuntimeError, match="chunk 2"):
        AvatarPipeline.random("tiny", seed=0).generate(ref, speech, out, GenerationOptions(
            seconds=1.4, steps=2, seed=3, frame_filter=failing))
    assert not out.exists()  # the streamed part is kept as fail.partial.mp4 (StreamingMp4Writer.abort), never as the output
    assert calls[0] > 0 and len(calls) == 2


def test_generate_cli_errors(tmp_path, real_inputs, capsys):
    ref_path, speech_path = real_inputs
    out = tmp_path / "x.mp4"
    assert main(["generate", "--ref", str(tmp_path / "missing.mp4"), "--audio", str(speech_path),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("avatarv: ") and "missing.mp4" in err[-1]
    assert main(["generate", "--ref", str(ref_path), "--out", str(out)]) == 2
    assert "exactly one of --audio" in capsys.readouterr().err
    assert not out.exists()


def test_generate_cli_no_face(tmp_path, real_speech, capsys):
    from avatarv.media import write_mp4

    blank = tmp_path / "wall.mp4"
    write_mp4(blank, np.full((10, 64, 64, 3), 128, np.uint8), 25)
    out = tmp_path / "o.mp4"
    assert main(["generate", "--ref", str(blank), "--audio", str(real_speech[0]), "--out", str(out),
                 "--steps", "1", "--preset", "tiny"]) == 2
    assert "no face found" in capsys.readouterr().err
    assert not out.exists()


def test_generate_cli_json(tmp_path, real_inputs, capsys):
    ref_path, speech_path = real_inputs
    out = tmp_path / "c.mp4"
    assert main(["generate", "--ref", str(ref_path), "--audio", str(speech_path), "--out", str(out),
                 "--seconds", "0.5", "--steps", "1", "--preset", "tiny"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["random_weights"] is True and out.is_file()


def test_generate_cli_uses_the_bundled_checkpoint(tmp_path, real_inputs, capsys, monkeypatch):
    """Without --checkpoint or --preset, generate loads the bundled checkpoint from the search path (here a
    tiny pipeline saved under $AVATARV_CHECKPOINTS/world-small), never random weights; missing, it says where
    it looked and writes nothing."""
    ref_path, speech_path = real_inputs
    args = ["generate", "--ref", str(ref_path), "--audio", str(speech_path), "--seconds", "0.3", "--steps", "1"]
    monkeypatch.setenv("AVATARV_CHECKPOINTS", str(tmp_path / "models"))
    monkeypatch.chdir(tmp_path)  # no ./checkpoints here
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    missing = tmp_path / "m.mp4"
    assert main([*args, "--out", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "checkpoint 'world-small' not found" in err and str(tmp_path / "models") in err and not missing.exists()
    AvatarPipeline.random("tiny", seed=0).save(tmp_path / "models" / "world-small")
    out = tmp_path / "b.mp4"
    assert main([*args, "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["random_weights"] is False and out.is_file()
    assert main([*args, "--out", str(out), "--checkpoint", str(tmp_path), "--preset", "tiny"]) == 2
    assert "at most one of --checkpoint" in capsys.readouterr().err


def test_generate_with_sr_refiner_and_preview(tmp_path, real_inputs):
    ref_path, speech_path = real_inputs
    pipe = AvatarPipeline.random("tiny", seed=1, refiner=True)
    out, preview = tmp_path / "hr.mp4", tmp_path / "lr.mp4"
    summary = pipe.generate(read_video(ref_path), read_audio(speech_path), out,
                            GenerationOptions(seconds=1.0, steps=1, preview_path=str(preview)))
    assert summary["resolution"] == 128 and summary["refiner_cache_builds"] == 1
    hr, lr = read_video(out), read_video(preview)
    assert hr.frames.shape == (25, 128, 128, 3) and lr.frames.shape == (25, 64, 64, 3)


def test_generate_with_image_engine_and_scene_image(tmp_path, real_inputs):
    import cv2

    ref_path, speech_path = real_inputs
    pipe = AvatarPipeline.random("tiny", seed=2)
    ref, speech = read_video(ref_path), read_audio(speech_path)
    s = pipe.generate(ref, speech, tmp_path / "a.mp4", GenerationOptions(seconds=0.4, steps=1, scene_engine=True))
    assert 1 <= len(s["scene_views"]) <= 4 and len(set(s["scene_views"])) == len(s["scene_views"])
    scene = tmp_path / "scene.png"
    cv2.imwrite(str(scene), np.full((80, 120, 3), 200, np.uint8))
    s2 = pipe.generate(ref, speech, tmp_path / "b.mp4", GenerationOptions(seconds=0.4, steps=1, scene_image=str(scene)))
    assert s2["frames"] == 10 and s2["scene_views"] == []


def test_anchor_changes_later_chunks_only(tmp_path, real_inputs):
    ref_path, speech_path = real_inputs
    ref, speech = read_video(ref_path), read_audio(speech_path)
    outs = {}
    for anchor in (True, False):
        out = tmp_path / f"a{anchor}.mp4"
        AvatarPipeline.random("tiny", seed=0).generate(ref, speech, out,
                                                       GenerationOptions(seconds=1.2, steps=1, anchor=anchor))
        outs[anchor] = read_video(out).frames.astype(int)
    first = 17 - 5  # frames written by the first chunk (17 frames, its 5-frame tail is blended later)
    assert np.array_equal(outs[True][:first], outs[False][:first])
    assert np.abs(outs[True][first + 5 :] - outs[False][first + 5 :]).max() > 0


def test_reference_stride_takes_every_kth_frame(real_inputs, tmp_path):
    """``ref_frame_stride`` k: the reference is every k-th frame (same token count, k times the time span);
    a checkpoint keeps its stride (and the rest of its geometry) through save / from_checkpoint."""
    from dataclasses import replace

    from avatarv.pipelines.reference import prepare_reference

    ref_path, _ = real_inputs
    video = read_video(ref_path)
    pipe = AvatarPipeline.random("tiny", seed=0)
    cfg = pipe.cfg
    plain = prepare_reference(video, pipe.vae, cfg.resolution, cfg.max_ref_latent_frames)
    strided = prepare_reference(video, pipe.vae, cfg.resolution, cfg.max_ref_latent_frames, stride=3)
    n = (cfg.max_ref_latent_frames - 1) * 4 + 1
    assert plain.frames.shape == strided.frames.shape == (n, cfg.resolution, cfg.resolution, 3)
    left, top, side = strided.crop
    from avatarv.pipelines.reference import resize_square

    want = resize_square(video.frames[::3][:n, top : top + side, left : left + side], cfg.resolution)
    assert np.array_equal(strided.frames, want)
    assert not np.array_equal(plain.frames, strided.frames)
    with pytest.raises(ValueError, match="stride"):
        prepare_reference(video, pipe.vae, cfg.resolution, cfg.max_ref_latent_frames, stride=0)

    pipe.cfg = replace(cfg, ref_frame_stride=3, max_ref_latent_frames=2)
    pipe.save(tmp_path / "ckpt")
    back = AvatarPipeline.from_checkpoint(tmp_path / "ckpt")
    assert back.cfg.ref_frame_stride == 3 and back.cfg.max_ref_latent_frames == 2


def test_generate_in_bf16_stays_close_to_fp32(tmp_path, real_inputs):
    """Both precisions stay correct. The parts, on the same inputs: one DiT forward under the pipeline's bf16
    autocast within 3 % (relative L2) of fp32, the VAE's latents within 3 % and its decode within 2 grey levels.
    The whole job with bf16 forced (emulated and slow on a CPU without native bf16, so a short case) writes
    the same frames' shape and stays near fp32's (random weights amplify rounding over the sampler's steps:
    measured 2.7 grey levels, where another noise seed moves them 3.5)."""
    from avatarv.models.dit import RefInputs

    ref_path, speech_path = real_inputs
    ref, speech = read_video(ref_path), read_audio(speech_path)
    p32, p16 = AvatarPipeline.random("tiny", seed=0, dtype="fp32"), AvatarPipeline.random("tiny", seed=0, dtype="bf16")
    assert p16.dtype == torch.bfloat16 and p16.vae.compute_dtype == torch.bfloat16 and p32.dtype == torch.float32
    cfg, g = p32.cfg, torch.Generator().manual_seed(0)
    s, z = cfg.resolution // 8, cfg.dit.latent_channels
    x = torch.randn(1, z, 3, s, s, generator=g)
    refs = [RefInputs(torch.randn(1, z, 2, s, s, generator=g))]
    cond, t = torch.zeros(1, 4 + z, 3, s, s), torch.tensor([0.7])
    with torch.no_grad():
        want = p32.dit(x, t, cond=cond, ref=refs).video
        with p16.autocast():
            got = p16.dit(x, t, cond=cond, ref=refs).video.float()
    assert 0 < (got - want).norm() / want.norm() < 0.03
    pixels = ref.frames[:5, :cfg.resolution, :cfg.resolution]
    lat32, lat16 = p32.vae.encode(pixels), p16.vae.encode(pixels)
    assert 0 < (lat16 - lat32).norm() / lat32.norm() < 0.03
    assert np.abs(p16.vae.decode(lat32).astype(np.float32) - p32.vae.decode(lat32)).mean() < 2.0

    frames = {}
    for name, pipe in (("fp32", p32), ("bf16", p16)):
        out = tmp_path / f"{name}.mp4"
        pipe.generate(ref, speech, out, GenerationOptions(seconds=0.28, steps=2))
        frames[name] = read_video(out).frames.astype(np.float32)
    assert frames["bf16"].shape == frames["fp32"].shape
    assert 0 < np.abs(frames["bf16"] - frames["fp32"]).mean() < 5.0


def _mean_lab(frames: np.ndarray) -> np.ndarray:
    import cv2

    return np.mean([cv2.cvtColor(f.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3).mean(0)
                    for f in frames], axis=0)


def test_colour_anchor_holds_every_frame_to_the_scene_images_colour(tmp_path, real_inputs):
    from PIL import Image

    ref_path, speech_path = real_inputs
    rng = np.random.default_rng(0)
    scene = np.clip(rng.normal([170, 90, 60], 25, (64, 64, 3)), 0, 255).astype(np.uint8)  # a warm scene
    Image.fromarray(scene).save(tmp_path / "scene.png")
    ref, speech = read_video(ref_path), read_audio(speech_path)
    got = {}
    for strength in (0.0, 1.0):
        out = tmp_path / f"c{strength}.mp4"
        AvatarPipeline.random("tiny", seed=0).generate(
            ref, speech, out, GenerationOptions(seconds=0.6, steps=2, scene_image=str(tmp_path / "scene.png"),
                                                colour_correction=strength))
        frames = read_video(out).frames
        got[strength] = np.array([np.linalg.norm(_mean_lab(f[None]) - _mean_lab(scene[None])) for f in frames])
    assert got[0.0][3:].mean() > 10  # random weights: the frames' colour is nothing like the scene's …
    assert got[1.0].max() < 3  # … and with the anchor every written frame's mean colour is the scene's (ΔE)


def test_colour_anchor_function():
    from avatarv.pipelines.generate import colour_anchor

    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (3, 32, 32, 3)).astype(np.uint8)
    scene = np.full((16, 16, 3), (200, 40, 40), np.uint8)
    assert colour_anchor(None, scene, 1.0) is None
    assert np.abs(colour_anchor(frames, scene, 0.0).astype(int) - frames).max() <= 1  # off: the frames (rounding)
    moved = colour_anchor(frames, scene, 1.0)  # a smaller scene image is resized to the frames' side
    assert moved.shape == frames.shape and moved.dtype == np.uint8
    assert np.linalg.norm(_mean_lab(moved) - _mean_lab(scene[None])) < 2


def test_checkpoint_decoder_choice(tmp_path, real_inputs):
    from avatarv.errors import CheckpointError, InputError
    from avatarv.models.vae import VideoVAE
    from avatarv.models.vae.tiny_decoder import (
        TINY_DECODER_PRESETS,
        FastDecodeVAE,
        TinyDecoderConfig,
        TinyVideoDecoder,
    )

    pipe = AvatarPipeline.random("tiny", seed=0)
    pipe.save(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="tiny_decoder"):
        AvatarPipeline.from_checkpoint(tmp_path / "ckpt", decoder="tiny")
    with pytest.raises(InputError, match="decoder 'fast'"):
        AvatarPipeline.from_checkpoint(tmp_path / "ckpt", decoder="fast")
    assert isinstance(AvatarPipeline.from_checkpoint(tmp_path / "ckpt").vae, VideoVAE)  # auto, no folder: full
    torch.manual_seed(1)
    cfg = TinyDecoderConfig(**{**TINY_DECODER_PRESETS["debug"].__dict__, "latent_channels": pipe.cfg.vae.z_dim})
    TinyVideoDecoder(cfg).save_pretrained(tmp_path / "ckpt" / "tiny_decoder")
    assert isinstance(AvatarPipeline.from_checkpoint(tmp_path / "ckpt", decoder="full").vae, VideoVAE)
    fast = AvatarPipeline.from_checkpoint(tmp_path / "ckpt")  # auto: the folder is there
    assert isinstance(fast.vae, FastDecodeVAE)
    ref_path, speech_path = real_inputs
    summary = fast.generate(read_video(ref_path), read_audio(speech_path), tmp_path / "o.mp4",
                            GenerationOptions(seconds=0.6, steps=1))
    assert summary["decoder"] == "tiny" and read_video(tmp_path / "o.mp4").frames.shape == (15, 64, 64, 3)

"""The bundled stage-4 student (``checkpoints/world-small-distilled``, what ``make demo`` runs): the teacher's DiT
grown by the guidance embedding, the teacher's VAE, text encoder and tiny decoder byte for byte, its sampling in
``pipeline.json``; one chunk from a held-out world identity takes the student's 4 single-pass steps and starts
from the scene frame. Its quality against the teacher is ``benchmarks/distill.py`` (too slow for the suite)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from avatarv.models.dit import VideoRefDiT

ROOT = Path(__file__).resolve().parents[2] / "checkpoints"
STUDENT, TEACHER = ROOT / "world-small-distilled", ROOT / "world-small"
IMAGE_STUDENT, IMAGE_TEACHER = ROOT / "world-small-imageref-distilled", ROOT / "world-small-imageref"


def test_bundle_layout_and_metadata():
    meta = json.loads((STUDENT / "pipeline.json").read_text())
    # distilled for 4 steps, run at 3 (pipeline.json sampling_note: every metric within 5 % of the teacher, RTF < 1)
    assert meta["sampling"] == {"steps": 3, "sampler": "x0", "guidance": "ref=1.5,audio=2.5,text=2.5"}
    assert meta["distilled"]["recipe"]["student_steps"] == 4
    assert meta["distilled"]["teacher"] == "checkpoints/world-small"
    assert set(meta["distilled"]["stages"]) == {"cfg-video", "dmd-video"}
    assert meta["distilled"]["recipe"]["dmd_train_steps"] == 900 and "reproduce" in meta["distilled"]
    student = VideoRefDiT.from_pretrained(STUDENT / "dit")
    teacher = VideoRefDiT.from_pretrained(TEACHER / "dit")
    assert student.cfg == replace(teacher.cfg, num_guidance_scales=3)  # the scales are the student's input
    assert not any(p.isnan().any() for p in student.parameters())
    for folder in ("vae", "text_encoder", "tiny_decoder"):
        for f in (TEACHER / folder).iterdir():
            assert (STUDENT / folder / f.name).read_bytes() == f.read_bytes(), f"{folder}/{f.name}"


def test_one_chunk_from_a_held_out_identity(tmp_path):
    from avatarv.diffusion import GuidanceScales
    from avatarv.media import Video, read_video
    from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions
    from avatarv.world import make_clip

    clip = make_clip(10_000, 100, seconds=2.0, size=128, seed=1)  # identities ≥ 10 000 are never trained on
    speech = make_clip(10_001, 101, seconds=2.0, size=128, seed=1).audio
    pipe = AvatarPipeline.from_checkpoint(STUDENT)
    steps = []
    out = tmp_path / "o.mp4"
    summary = pipe.generate(Video(clip.frames, 25.0, clip.audio), speech, out,
                            GenerationOptions(seconds=1.0, steps=4, sampler="x0", colour_correction=1.0,
                                              guidance=GuidanceScales.parse("ref=1.5,audio=2.5,text=2.5")),
                            progress=lambda chunk, i: steps.append((chunk.index, i)))
    assert summary["decoder"] == "tiny" and summary["chunks"] == 1 and len(steps) == 4  # one DiT pass per step
    frames = read_video(out).frames
    assert frames.shape == (25, 128, 128, 3)

    def psnr(a, b):
        return 10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))

    # frame 0 is the scene frame given to the chunk, through the VAE and the tiny decoder (measured 19.0 dB)
    assert psnr(frames[0], clip.frames[0]) >= 17.0
    assert np.abs(frames[-1].astype(int) - frames[0]).mean() > 0.5  # and the chunk moves


def test_bundled_tail_encoder_matches_the_full_encoder_on_held_out_prefixes():
    """The student's tiny tail encoder on the chunk loop's job: 5-frame prefixes of a held-out world identity (the
    frames and their round trip through the VAE and the tiny decoder, as generated frames are blurred). Latents
    within 5 % of the full encoder's variance, and frames decoded from them within 30 dB of those decoded from the
    full encoder's (measured 1.6–2.4 % and 33.1–34.0 dB; an untrained encoder is ~100 % off)."""
    from avatarv.models.vae import VideoVAE
    from avatarv.models.vae.tiny_decoder import FastDecodeVAE
    from avatarv.models.vae.tiny_encoder import TinyVideoEncoder
    from avatarv.world import make_clip

    vae = VideoVAE.from_pretrained(STUDENT / "vae")
    fast = FastDecodeVAE.from_folder(vae, STUDENT / "tiny_decoder")
    tiny = TinyVideoEncoder.from_pretrained(STUDENT / "tiny_encoder")
    clip = make_clip(10_002, 102, seconds=1.0, size=128, seed=1).frames[:21]
    blurred = fast.decode(vae.encode(clip))
    for frames in (clip[3:8], clip[14:19], blurred[6:11]):
        full, small = vae.encode(frames), tiny.encode(frames)
        assert small.shape == full.shape == (1, 16, 2, 16, 16)
        rel = float(((small - full) ** 2).mean() / full.var())
        a, b = fast.decode(small).astype(np.float64), fast.decode(full).astype(np.float64)
        psnr = 10 * np.log10(255.0**2 / np.mean((a - b) ** 2))
        assert rel <= 0.05 and psnr >= 30.0, (rel, psnr)


def test_image_reference_student_bundle(tmp_path):
    """The image-reference variant's student: distilled from ``world-small-imageref`` (CFG, then DMD), its VAE and
    text encoder the image teacher's and its tiny decoder / tail encoder the video bundles' (links: one copy in the
    tree), and one chunk from a single reference image of a held-out identity in its own steps, one pass each."""
    from avatarv.diffusion import GuidanceScales
    from avatarv.eval.systems import image_reference
    from avatarv.media import Video
    from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions
    from avatarv.world import make_clip

    meta = json.loads((IMAGE_STUDENT / "pipeline.json").read_text())
    assert meta["distilled"]["teacher"] == "checkpoints/world-small-imageref"
    assert meta["distilled"]["recipe"]["variant"] == "image"
    assert set(meta["distilled"]["stages"]) == {"cfg-image", "dmd-image"}
    student = VideoRefDiT.from_pretrained(IMAGE_STUDENT / "dit")
    assert student.cfg == replace(VideoRefDiT.from_pretrained(IMAGE_TEACHER / "dit").cfg, num_guidance_scales=3)
    assert not any(p.isnan().any() for p in student.parameters())
    for folder, source in (("vae", IMAGE_TEACHER), ("text_encoder", IMAGE_TEACHER), ("tiny_decoder", TEACHER),
                           ("tiny_encoder", STUDENT)):
        for f in (source / folder).iterdir():
            assert (IMAGE_STUDENT / folder / f.name).read_bytes() == f.read_bytes(), f"{folder}/{f.name}"
    clip = make_clip(10_003, 103, seconds=2.0, size=128, seed=1)
    sampling = meta["sampling"]
    opts = GenerationOptions(seconds=1.0, steps=sampling["steps"], sampler=sampling["sampler"], colour_correction=1.0,
                             guidance=GuidanceScales.parse(sampling["guidance"]))
    steps = []
    summary = AvatarPipeline.from_checkpoint(IMAGE_STUDENT).generate(
        image_reference(Video(clip.frames, 25.0, clip.audio)), clip.audio, tmp_path / "o.mp4", opts,
        progress=lambda chunk, i: steps.append(i))
    assert summary["decoder"] == "tiny" and summary["ref_latent_frames"] == 1 and summary["chunks"] == 1
    assert len(steps) == sampling["steps"]  # one DiT pass per step

"""The bundled-model recipe end to end on the tiny preset: VAE → shards → stages 1–3 (both variants) → pipeline
checkpoints that load and generate; a rerun skips finished steps; the ablation differs only in stage 3."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from avatarv.resources import example
from avatarv.training.world_recipe import WorldRecipe, run, stage3_name, stage_configs


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    r = replace(WorldRecipe.smoke(out=str(root)), vae_steps=6, stage_steps=(4, 4, 4), ckpt_every=2)
    return r, run(r, progress=False)


def test_recipe_exports_both_variants_that_load(recipe_run):
    from avatarv.pipelines.generate import AvatarPipeline

    r, exports = recipe_run
    assert set(exports) == {"video", "image"}
    video = AvatarPipeline.from_checkpoint(exports["video"])
    image = AvatarPipeline.from_checkpoint(exports["image"])
    assert video.cfg.max_ref_latent_frames == r.ref_latents and image.cfg.max_ref_latent_frames == 1
    assert video.cfg.chunk_latent_frames == r.target_latents
    assert not video.random_weights
    # stored in bf16, computed in fp32
    from safetensors import safe_open

    with safe_open(str(exports["video"] / "dit" / "model.safetensors"), "pt") as f:
        assert f.get_tensor("patch_embedding.weight").dtype == torch.bfloat16
    assert next(video.dit.parameters()).dtype == torch.float32
    meta = json.loads((exports["video"] / "pipeline.json").read_text())
    assert {"vae", "shards", "stage1", "stage2", "stage3-video"} <= set(meta["stages"])
    assert meta["stages"]["vae"]["heldout_psnr_db"] > 0
    # every decoder phase is recorded; the smoke recipe's second one weighs the face (a 3-number phase)
    assert meta["stages"]["vae-decoder"]["frames"] == 5 and "face_weight" not in meta["stages"]["vae-decoder"]
    assert meta["stages"]["vae-decoder2"]["face_weight"] == 2.0
    l1w = [json.loads(ln) for ln in (r.root / "vae-decoder2" / "log.jsonl").read_text().splitlines()]
    assert all("l1_weighted" in rec for rec in l1w)
    # the two variants share stages 1–2: only stage 3 differs
    a = json.loads((r.root / "stage3-video" / "config.json").read_text())
    b = json.loads((r.root / "stage3-image" / "config.json").read_text())
    assert a["init_from"] == b["init_from"] and a["steps"] == b["steps"]
    assert a["method"]["ref_latent_frames"] == 0 and b["method"]["ref_latent_frames"] == 1
    for stage in ("stage1", "stage2", "stage3-video"):
        assert (r.root / stage / "loss.png").stat().st_size > 1000


def test_vae_latents_are_calibrated(recipe_run):
    from avatarv.models.vae import VideoVAE

    r, exports = recipe_run
    vae = VideoVAE.from_pretrained(exports["video"] / "vae")
    assert not np.allclose(vae.model.config.latents_std, 1.0)  # measured, not the default
    from avatarv.world import make_clip

    z = vae.encode(make_clip(1, 0, seconds=9 / 25, size=64).frames[:9])
    assert 0.2 < float(z.std()) < 5.0  # roughly unit variance after normalisation


def test_decoder_refinement_keeps_the_encoder_and_is_exported(recipe_run):
    """The refinement trains the decoder alone (so the shards, encoded after it, are the phases' latents) and
    its VAE is what the checkpoints ship; ``install_vae`` accepts a same-encoder VAE and refuses another."""
    from avatarv.errors import CheckpointError
    from avatarv.models.vae import VideoVAE
    from avatarv.training.vae_swap import encoder_mismatch, install_vae

    r, exports = recipe_run
    meta = json.loads((exports["video"] / "pipeline.json").read_text())
    refine = meta["stages"]["vae-refine"]
    assert refine["steps"] == r.vae_decoder_refine.steps and refine["crop_latents"] == 4
    assert np.isfinite(refine["heldout_psnr_db_9f"]) and np.isfinite(refine["heldout_psnr_db_9f_before"])
    phase = VideoVAE.from_pretrained(r.root / "vae-decoder2" / "vae")
    refined = VideoVAE.from_pretrained(r.root / "vae-refine" / "vae")
    shipped = VideoVAE.from_pretrained(exports["video"] / "vae")
    assert encoder_mismatch(phase, refined) is None and encoder_mismatch(phase, shipped) is None
    dec = [n for n in phase.model.state_dict() if n.startswith("decoder.")]
    assert any(not torch.equal(phase.model.state_dict()[n], refined.model.state_dict()[n]) for n in dec)
    # the phase VAE goes back in (same encoder): the checkpoint then decodes with its decoder
    import shutil

    ckpt = r.root / "swap-test"
    shutil.copytree(exports["video"], ckpt)
    install_vae(ckpt, r.root / "vae-decoder2" / "vae", info={"why": "test"})
    back = VideoVAE.from_pretrained(ckpt / "vae")
    for n in dec:
        torch.testing.assert_close(back.model.state_dict()[n], phase.model.state_dict()[n].to(torch.bfloat16).float())
    assert json.loads((ckpt / "pipeline.json").read_text())["stages"]["vae-refine"] == {"why": "test"}
    # a VAE with another encoder is refused and the checkpoint is left as it was
    other = VideoVAE(phase.cfg)
    other.save_pretrained(r.root / "other-vae")
    before = (ckpt / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="another encoder"):
        install_vae(ckpt, r.root / "other-vae")
    assert (ckpt / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == before
    assert not list(r.root.glob(".swap-test.tmp*"))


def test_rerun_skips_finished_steps(recipe_run):
    r, _ = recipe_run
    before = {p: p.stat().st_mtime_ns for p in r.root.glob("stage*/export/model.safetensors")}
    run(r, progress=False)
    after = {p: p.stat().st_mtime_ns for p in r.root.glob("stage*/export/model.safetensors")}
    assert before == after and len(before) == 4


def test_continued_recipe_starts_stage3_from_the_pipelines(recipe_run, tmp_path):
    """``init``: the pipelines' VAE and text encoder as they are, no stages 1–2, each variant's stage 3 from its
    own DiT (ref stride 2 here, as a continuation that lengthens the reference would use)."""
    import shutil

    from avatarv.errors import ConfigError
    from avatarv.models.dit import VideoRefDiT
    from avatarv.models.vae import VideoVAE

    r, exports = recipe_run
    init = exports["video"].parent
    c = replace(r, out=str(tmp_path / "more"), init=str(init), checkpoints=None, stage_steps=(0, 0, 2),
                ref_stride=2, identity_aux_start=0, identity_aux_ramp=1)
    more = run(c, progress=False)
    assert not (c.root / "stage1").exists() and not (c.root / "stage2").exists()
    assert not (c.root / "shards").exists() and (c.root / "shards-ref2" / "DONE").is_file()  # stage 3's only
    for variant in ("video", "image"):
        cfg = json.loads((c.root / stage3_name(c, variant) / "config.json").read_text())
        assert cfg["init_from"] == str(exports[variant] / "dit") and cfg["steps"] == 2
        meta = json.loads((more[variant] / "pipeline.json").read_text())
        assert meta["init"]["from"] == str(exports[variant]) and "stage3-" + variant in meta["init"]["stages"]
        assert meta["recipe"]["init"] == str(init) and "stage1" not in meta["stages"]
        old, new = VideoVAE.from_pretrained(exports[variant] / "vae"), VideoVAE.from_pretrained(more[variant] / "vae")
        assert all(torch.equal(v, new.model.state_dict()[k]) for k, v in old.model.state_dict().items())
        a = VideoRefDiT.from_pretrained(exports[variant] / "dit").state_dict()
        b = VideoRefDiT.from_pretrained(more[variant] / "dit").state_dict()
        assert any(not torch.equal(a[k], b[k]) for k in a)  # trained further
    assert json.loads((more["video"] / "pipeline.json").read_text())["overrides"]["ref_frame_stride"] == 2
    assert (c.root / "text_encoder" / "config.json").is_file()
    # variants whose VAEs differ cannot share the shards
    bad = tmp_path / "bad"
    shutil.copytree(init, bad)
    vae = VideoVAE(VideoVAE.from_pretrained(exports["image"] / "vae").cfg)
    shutil.rmtree(bad / exports["image"].name / "vae")
    vae.save_pretrained(bad / exports["image"].name / "vae")
    with pytest.raises(ConfigError, match="one set of shards"):
        run(replace(c, out=str(tmp_path / "bad-run"), init=str(bad)), progress=False)
    with pytest.raises(ConfigError, match="no pipeline checkpoint"):
        run(replace(c, out=str(tmp_path / "none-run"), init=str(tmp_path / "nowhere")), progress=False)


def test_stage_configs_of_the_ablation(tmp_path):
    r = WorldRecipe()
    s1, s2, s3v = stage_configs(r, tmp_path, "video")
    *_, s3i = stage_configs(r, tmp_path, "image")
    assert [s.method.name for s in (s1, s2, s3v)] == ["t2v", "a2v", "personality"]
    assert s3v.steps == s3i.steps and s3v.method.aux == s3i.method.aux
    assert s3i.method.ref_latent_frames == 1 and s3v.method.ref_latent_frames == 0
    assert not s3v.method.use_ref_motion  # the bundled pair was trained without reference motion tokens
    with_motion = WorldRecipe(ref_motion=True)
    s3m = stage_configs(with_motion, tmp_path, "video")[2]
    assert s3m.method.use_ref_motion and stage_configs(with_motion, tmp_path, "image")[2].method.use_ref_motion
    assert s3m.out_dir.endswith("stage3-video-refmotion") and s3v.out_dir.endswith("stage3-video")
    assert s3v.method.aux == (("identity", r.identity_aux_weight, 300, 150),)  # half / a quarter of 600 steps
    # a run stopped early keeps the schedule it was started with
    fixed = WorldRecipe(stage_steps=(300, 600, 400), identity_aux_start=500, identity_aux_ramp=250)
    assert stage_configs(fixed, tmp_path, "image")[2].method.aux == (("identity", r.identity_aux_weight, 500, 250),)
    assert s3v.method.known_noise == 0.0
    assert [s.method.known_noise for s in stage_configs(WorldRecipe(known_noise=0.3), tmp_path, "video")] == [0, 0.3, 0.3]
    assert not s3v.motion_norm and s3v.method.motion_weight == 0.5  # as the checkpoints of e425ae2 were trained
    normed = stage_configs(WorldRecipe(motion_norm=True, motion_weight=2.0), tmp_path, "image")
    assert [s.motion_norm for s in normed] == [False, False, True]  # stages 1–2 have no motion loss
    assert normed[2].method.motion_weight == 2.0
    # audio positions are added to a continued DiT in stage 3 only (a recipe from scratch has them by preset)
    assert not s3v.audio_positions
    assert [s.audio_positions for s in stage_configs(WorldRecipe(audio_positions=True), tmp_path, "video")] == [
        False, False, True]
    # reference behaviour: stage 3 only, and it brings the reference motion it pools
    behaviour = stage_configs(WorldRecipe(ref_behaviour=True), tmp_path, "image")
    assert [s.ref_behaviour for s in behaviour] == [False, False, True] and not s3v.ref_behaviour
    assert behaviour[2].method.use_ref_motion and behaviour[2].out_dir.endswith("stage3-image-behaviour")


def test_trained_checkpoint_reads_prompts(recipe_run, tmp_path):

    from avatarv.errors import InputError
    from avatarv.media import read_audio, read_video
    from avatarv.pipelines.generate import AvatarPipeline, GenerationOptions
    from avatarv.training.world_shards import scene_prompt

    r, exports = recipe_run
    trained = AvatarPipeline.from_checkpoint(exports["video"])
    assert trained.text_encoder is not None and trained.text_encoder.max_length == 64
    # a few smoke steps leave the DiT's outputs near zero; random live weights make every input's path visible
    pipe = AvatarPipeline.random("tiny")
    pipe.text_encoder = trained.text_encoder
    root = example("ref.mp4").parent
    ref, speech = read_video(root / "ref.mp4"), read_audio(root / "speech.wav")
    frames = {}
    for name, prompt in (("a", scene_prompt(0)), ("b", scene_prompt(3)), ("none", "")):
        out = tmp_path / f"{name}.mp4"
        pipe.generate(ref, speech, out, GenerationOptions(seconds=0.3, steps=2, prompt=prompt))
        frames[name] = read_video(out).frames
    assert not np.array_equal(frames["a"], frames["b"])  # the caption reaches the model
    summary = pipe.generate(ref, speech, tmp_path / "s.mp4",
                            GenerationOptions(seconds=0.3, steps=2, scene_prompt=scene_prompt(5)))
    assert len(summary["scene_views"]) > 0  # the image engine made the scene from the prompt and views
    plain = AvatarPipeline.random("tiny")
    with pytest.raises(InputError, match="no text encoder"):
        plain.generate(ref, speech, tmp_path / "x.mp4", GenerationOptions(seconds=0.3, steps=1, prompt="hello"))
    assert not (tmp_path / "x.mp4").exists()


def test_stage3_reads_the_strided_reference_shards(tmp_path):
    from dataclasses import replace

    r = replace(WorldRecipe(out=str(tmp_path)), ref_stride=4)
    s1, s2, s3 = stage_configs(r, tmp_path / "shards", "video", tmp_path / "shards-ref4")
    assert s1.data.path == s2.data.path == str(tmp_path / "shards")  # stages 1-2 never see the reference
    assert s3.data.path == str(tmp_path / "shards-ref4") and s3.out_dir.endswith("stage3-video-ref4")
    plain = stage_configs(WorldRecipe(out=str(tmp_path)), tmp_path / "shards", "video")[2]
    assert plain.data.path == str(tmp_path / "shards") and plain.out_dir.endswith("stage3-video")


def test_continued_recipe_with_vae_init_trains_the_vae_further_and_reshards(recipe_run, tmp_path):
    """``init`` + ``vae_init`` (WorldRecipe.v2's shape): the VAE starts from ``vae_init``, trains further (its
    encoder too, so the latents move), its latents are re-calibrated, the shards are encoded with it and both
    variants' stage 3 continue their own DiTs on it; the exported pipelines carry the new VAE."""
    from avatarv.models.vae import VideoVAE

    r, exports = recipe_run
    init = exports["video"].parent
    v2 = WorldRecipe.v2()
    assert v2.init and v2.vae_init and v2.vae_analyzer_weight > 0 and v2.stage_steps[:2] == (0, 0)
    c = replace(r, out=str(tmp_path / "v2"), init=str(init), vae_init=str(exports["video"] / "vae"), vae_steps=2,
                vae_frames=5, vae_scenes=2, vae_decoder_phases=((1, 5),), checkpoints=None, stage_steps=(0, 0, 2),
                identity_aux_weight=0.0)
    more = run(c, progress=False)
    old = VideoVAE.from_pretrained(exports["video"] / "vae")
    new = VideoVAE.from_pretrained(more["video"] / "vae")
    assert json.loads((c.root / "vae" / "DONE").read_text())["steps"] == 2
    enc = [k for k in old.model.state_dict() if k.startswith("encoder.")]
    assert any(not torch.equal(old.model.state_dict()[k], new.model.state_dict()[k]) for k in enc)
    assert (c.root / "shards" / "DONE").is_file()
    for variant in ("video", "image"):
        cfg = json.loads((c.root / stage3_name(c, variant) / "config.json").read_text())
        assert cfg["init_from"] == str(exports[variant] / "dit")
        vae = VideoVAE.from_pretrained(more[variant] / "vae")
        assert all(torch.equal(v, vae.model.state_dict()[k]) for k, v in new.model.state_dict().items())

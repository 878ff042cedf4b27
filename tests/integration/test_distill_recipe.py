"""train distill --smoke on a tiny teacher pipeline: shards, CFG distillation, DMD, the exported student pipeline
with its sampling in pipeline.json; generate uses that sampling unless told otherwise; a rerun skips finished
stages."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from avatarv.cli import main
from avatarv.models.dit import VideoRefDiT
from avatarv.pipelines.generate import AvatarPipeline


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    teacher = root / "ckpt" / "world-tiny"  # the world recipe's export name for the tiny preset
    AvatarPipeline.random("tiny", seed=0).save(teacher)
    out, export = root / "work", root / "ckpt" / "world-tiny-distilled"
    args = ["train", "distill", "--smoke", "--teacher", str(teacher), "--out", str(out), "--export", str(export),
            "--guidance", "ref=1.5,audio=2,text=2", "--student-steps", "2"]
    assert main(args) == 0
    return teacher, out, export, args


def test_stages_ran_and_the_student_pipeline_is_exported(distilled):
    teacher, out, export, _ = distilled
    for stage in ("cfg-video", "dmd-video"):
        assert (out / stage / "DONE").is_file(), stage
    meta = json.loads((export / "pipeline.json").read_text())
    assert meta["sampling"] == {"steps": 2, "sampler": "x0", "guidance": "ref=1.5,audio=2,text=2"}
    assert set(meta["distilled"]["stages"]) == {"cfg-video", "dmd-video"}
    student = VideoRefDiT.from_pretrained(export / "dit")
    assert student.cfg.num_guidance_scales == 3  # CFG-distilled: the scales are its input
    exported = VideoRefDiT.from_pretrained(out / "dmd-video" / "export")
    for k, v in student.state_dict().items():
        assert torch.equal(v, exported.state_dict()[k].to(torch.bfloat16).to(v.dtype))  # exported in bf16
    # the VAE is the teacher's
    assert (export / "vae").is_dir() and (out / "pipelines" / "cfg-video" / "pipeline.json").is_file()


def test_rerun_skips_finished_stages(distilled):
    _, out, export, args = distilled
    before = (out / "dmd-video" / "log.jsonl").read_text()
    assert main(args) == 0
    assert (out / "dmd-video" / "log.jsonl").read_text() == before


def test_generate_uses_the_checkpoints_sampling(distilled, tmp_path, monkeypatch):
    from avatarv.pipelines import cli as pcli

    _, _, export, _ = distilled
    seen = {}

    def fake_run(ref, out, speech, opts, source):
        seen.update(steps=opts.steps, sampler=opts.sampler, guidance=dict(opts.guidance.scales),
                    cache=opts.step_cache)
        return {"out": str(out)}

    monkeypatch.setattr(pcli, "run_generation", fake_run)
    monkeypatch.setattr("avatarv.provenance.watermark.mark_output", lambda out, enabled: {})
    wav = tmp_path / "s.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000)
    base = ["generate", "--ref", str(wav), "--audio", str(wav), "--out", str(tmp_path / "o.mp4"), "--checkpoint",
            str(export)]
    assert main(base) == 0
    assert seen == {"steps": 2, "sampler": "x0", "guidance": {"ref": 1.5, "audio": 2.0, "text": 2.0}, "cache": 0.0}
    assert main([*base, "--steps", "5", "--sampler", "euler", "--guidance", "audio=3", "--step-cache", "0.2"]) == 0
    assert seen == {"steps": 5, "sampler": "euler", "guidance": {"ref": 1.0, "audio": 3.0, "text": 1.0}, "cache": 0.2}


def test_demo_prefers_the_distilled_checkpoint(tmp_path, monkeypatch):
    from avatarv.pipelines.cli import PipelineSource, _demo_checkpoint

    root = tmp_path / "ckpts"
    for name, meta in (("world-small", {}), ("world-small-distilled", {"sampling": {"steps": 4, "sampler": "x0"}})):
        (root / name).mkdir(parents=True)
        (root / name / "pipeline.json").write_text(json.dumps(meta))
    monkeypatch.setenv("AVATARV_CHECKPOINTS", str(root))
    monkeypatch.chdir(tmp_path)
    assert _demo_checkpoint(teacher=False) == root / "world-small-distilled"
    assert _demo_checkpoint(teacher=True) == root / "world-small"
    assert PipelineSource(_demo_checkpoint(False)).sampling_defaults() == {"steps": 4, "sampler": "x0"}
    assert PipelineSource(_demo_checkpoint(True)).sampling_defaults() == {}
    (root / "world-small-distilled" / "pipeline.json").unlink()
    assert _demo_checkpoint(teacher=False) == root / "world-small"

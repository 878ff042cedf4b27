"""The weights folder: both documented layouts resolve, a missing part is named, ``avatarv weights check`` reports
what each part holds from headers alone.

InfiniteTalk's layout is the one its README downloads (MeiGen-AI/InfiniteTalk README "Model Preparation":
``weights/Wan2.1-I2V-14B-480P``, ``weights/chinese-wav2vec2-base``, ``weights/InfiniteTalk/{single,multi}/
infinitetalk.safetensors``; t5 / clip / vae file names from ``wan/configs/wan_multitalk_14B.py``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from avatarv.cli import main as avatarv_main
from avatarv.errors import CheckpointError
from avatarv.weights import check_weights, resolve_weights
from avatarv.weights.layout import CLIP_PTH, T5_PTH, VAE_PTH
from tests.unit.test_wan_shards import tiny_cfg, write_original_checkpoint

T5_STATE = {"token_embedding.weight": torch.zeros(10, 4, dtype=torch.bfloat16),
            "blocks.0.attn.q.weight": torch.zeros(4, 4, dtype=torch.bfloat16)}
CLIP_STATE = {"visual.proj": torch.zeros(8, 3, dtype=torch.float16)}
VAE_STATE = {"encoder.conv1.weight": torch.zeros(2, 3, 3, 3, 3), "decoder.head.0.gamma": torch.zeros(2, 1, 1, 1)}


def numel(state):
    return sum(v.numel() for v in state.values())


def wav2vec_folder(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"hidden_size": 16, "num_hidden_layers": 2}))
    (folder / "preprocessor_config.json").write_text("{}")
    torch.save({"feature_projection.projection.weight": torch.zeros(16, 4)}, folder / "pytorch_model.bin")
    save_file({"feature_projection.projection.weight": torch.zeros(16, 4)}, str(folder / "model.safetensors"))


def tokenizer_folder(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "tokenizer_config.json").write_text("{}")
    (folder / "spiece.model").write_bytes(b"\0")


@pytest.fixture()
def infinitetalk_dir(tmp_path):
    """``weights/`` as InfiniteTalk's README leaves it (three huggingface-cli downloads), in miniature."""
    root = tmp_path / "weights"
    cfg = tiny_cfg()
    _, wan, audio = write_original_checkpoint(root, cfg)
    torch.save(T5_STATE, wan / T5_PTH)
    tokenizer_folder(wan / "google" / "umt5-xxl")
    torch.save(CLIP_STATE, wan / CLIP_PTH)
    tokenizer_folder(wan / "xlm-roberta-large")
    torch.save(VAE_STATE, wan / VAE_PTH)
    wav2vec_folder(root / "chinese-wav2vec2-base")
    (root / "InfiniteTalk" / "multi").mkdir(parents=True)
    shutil.copy(audio, root / "InfiniteTalk" / "multi" / "infinitetalk.safetensors")
    return root


@pytest.fixture()
def avatarv_dir(infinitetalk_dir, tmp_path):
    """avatarv's layout, with the t5 / clip / vae parts in diffusers' form (text_encoder/ + tokenizer/, ...)."""
    src, root = infinitetalk_dir, tmp_path / "avatarv"
    wan = src / "Wan2.1-I2V-14B-480P"
    (root / "wan").mkdir(parents=True)
    for f in [*wan.glob("*.safetensors"), wan / "config.json", wan / "diffusion_pytorch_model.safetensors.index.json"]:
        shutil.copy(f, root / "wan" / f.name)
    (root / "audio").mkdir()
    shutil.copy(src / "InfiniteTalk" / "single" / "infinitetalk.safetensors", root / "audio" / "multitalk.safetensors")
    shutil.copytree(src / "chinese-wav2vec2-base", root / "wav2vec")
    for part, sub, state in (("t5", "text_encoder", T5_STATE), ("clip", "image_encoder", CLIP_STATE),
                             ("vae", "vae", VAE_STATE)):
        (root / part / sub).mkdir(parents=True)
        (root / part / sub / "config.json").write_text("{}")
        save_file(state, str(root / part / sub / ("model.safetensors" if part != "vae" else
                                                  "diffusion_pytorch_model.safetensors")))
    tokenizer_folder(root / "t5" / "tokenizer")
    (root / "lora").mkdir()
    save_file({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(2, 32),
               "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(32, 2)},
              str(root / "lora" / "style.safetensors"))
    return root


# ------------------------------------------------------------------------------------------------ resolve
def test_resolve_infinitetalk_readme_layout(infinitetalk_dir):
    parts = resolve_weights(infinitetalk_dir)
    wan = infinitetalk_dir / "Wan2.1-I2V-14B-480P"
    assert parts.layout == "infinitetalk"
    assert (parts.wan, parts.t5, parts.clip, parts.vae) == (wan, wan / T5_PTH, wan / CLIP_PTH, wan / VAE_PTH)
    assert parts.audio == infinitetalk_dir / "InfiniteTalk" / "single" / "infinitetalk.safetensors"
    assert parts.wav2vec == infinitetalk_dir / "chinese-wav2vec2-base" and parts.loras == ()
    multi = resolve_weights(infinitetalk_dir, audio_variant="multi")
    assert multi.audio == infinitetalk_dir / "InfiniteTalk" / "multi" / "infinitetalk.safetensors"


def test_resolve_avatarv_layout_with_diffusers_parts(avatarv_dir):
    parts = resolve_weights(avatarv_dir)
    assert parts.layout == "avatarv" and parts.wan == avatarv_dir / "wan"
    assert parts.audio == avatarv_dir / "audio" / "multitalk.safetensors"
    assert parts.t5 == avatarv_dir / "t5" / "text_encoder" and parts.clip == avatarv_dir / "clip" / "image_encoder"
    assert parts.vae == avatarv_dir / "vae" / "vae"
    assert [s.path.name for s in parts.loras] == ["style.safetensors"] and parts.loras[0].alpha_mode == "ignore"


def test_missing_parts_are_named_one_line_each(infinitetalk_dir):
    wan = infinitetalk_dir / "Wan2.1-I2V-14B-480P"
    (wan / CLIP_PTH).unlink()
    shutil.rmtree(infinitetalk_dir / "InfiniteTalk")
    shutil.rmtree(wan / "google")
    with pytest.raises(CheckpointError) as exc:
        resolve_weights(infinitetalk_dir)
    lines = str(exc.value).splitlines()
    assert "3 weight part(s) missing (infinitetalk layout)" in lines[0]
    assert f"  audio: expected {infinitetalk_dir}/InfiniteTalk/single/infinitetalk.safetensors" in lines
    assert f"  clip: expected {wan / CLIP_PTH}" in lines
    assert f"  t5 tokenizer: expected {wan}/google/umt5-xxl/" in lines
    # a part named alone fills the gap
    other = infinitetalk_dir / "elsewhere.safetensors"
    shutil.copy(infinitetalk_dir / "chinese-wav2vec2-base" / "model.safetensors", other)
    with pytest.raises(CheckpointError) as exc:
        resolve_weights(infinitetalk_dir, {"audio": other})
    assert "audio:" not in str(exc.value) and "clip:" in str(exc.value)


def test_parts_alone_without_a_folder(infinitetalk_dir):
    wan = infinitetalk_dir / "Wan2.1-I2V-14B-480P"
    named = {"wan": wan, "audio": infinitetalk_dir / "InfiniteTalk" / "multi" / "infinitetalk.safetensors",
             "wav2vec": infinitetalk_dir / "chinese-wav2vec2-base", "t5": wan / T5_PTH, "clip": wan / CLIP_PTH,
             "vae": wan / VAE_PTH}
    parts = resolve_weights(None, named)
    assert parts.layout == "parts" and parts.audio == named["audio"]
    with pytest.raises(CheckpointError, match="vae: expected --vae"):
        resolve_weights(None, {k: v for k, v in named.items() if k != "vae"})


# -------------------------------------------------------------------------------------------------- check
def test_check_counts_parameters_and_dtypes_from_headers(infinitetalk_dir):
    cfg = tiny_cfg()
    # Wan's data regions cut off after the headers: the check must not need them
    for shard in (infinitetalk_dir / "Wan2.1-I2V-14B-480P").glob("diffusion_pytorch_model-*.safetensors"):
        data = shard.read_bytes()
        shard.write_bytes(data[: 8 + int.from_bytes(data[:8], "little")])
    report = check_weights(infinitetalk_dir)
    assert report.ok, report.problems()
    by = {p.part: p for p in report.parts}
    from avatarv.models.dit.streaming_load import parameter_counts

    counts = parameter_counts(cfg)
    assert by["wan"].params == counts["wan"] and by["wan"].dtypes == {"F32": counts["wan"]}
    assert by["audio"].params == counts["audio_adapter"]
    assert by["t5"].dtypes == {"BF16": numel(T5_STATE)} and by["clip"].dtypes == {"F16": numel(CLIP_STATE)}
    assert by["vae"].dtypes == {"F32": numel(VAE_STATE)} and by["wav2vec"].params == 64
    assert "original layout, 3 file(s), dim 32, 2 layers, CLIP branch" in by["wan"].detail
    assert "window 3, 2 wav2vec layers × 16, 4 tokens × 12" in by["audio"].detail


def test_check_flags_an_audio_file_that_does_not_fit(infinitetalk_dir):
    audio = infinitetalk_dir / "InfiniteTalk" / "single" / "infinitetalk.safetensors"
    from safetensors.torch import load_file

    state = load_file(str(audio))
    del state["blocks.1.audio_cross_attn.proj.bias"]
    save_file(state, str(audio))
    report = check_weights(infinitetalk_dir)
    by = {p.part: p for p in report.parts}
    assert not report.ok and by["wan"].ok
    assert "no file has blocks.1.audio_cross_attn.proj.bias" in by["audio"].problem


def test_cli_check_complete_folder(avatarv_dir, capsys):
    rc = avatarv_main(["weights", "check", str(avatarv_dir)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "avatarv layout" in out
    for part in ("wan", "audio", "wav2vec", "t5", "clip", "vae", "lora"):
        assert any(line.split()[:2] == [part, "ok"] for line in out.splitlines()), (part, out)
    assert "BF16:56" in out and "F16:24" in out, out


def test_cli_check_names_a_missing_part(avatarv_dir, capsys):
    shutil.rmtree(avatarv_dir / "wav2vec")
    rc = avatarv_main(["weights", "check", str(avatarv_dir)])
    captured = capsys.readouterr()
    assert rc != 0
    assert any(line.split()[:2] == ["wav2vec", "MISSING"] for line in captured.out.splitlines())
    assert f"wav2vec: missing (expected {avatarv_dir / 'wav2vec'}/config.json" in captured.err

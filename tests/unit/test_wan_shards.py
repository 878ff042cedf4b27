"""Wan / InfiniteTalk checkpoints in their public layouts load strictly, shard by shard, into the run dtype.

Layouts written here as the public code writes them: Wan2.1-I2V-14B-480P's original shards
(``diffusion_pytorch_model-0000N-of-0000M.safetensors`` + ``diffusion_pytorch_model.safetensors.index.json``,
unprefixed keys), diffusers' ``WanTransformer3DModel.save_pretrained`` shards, and InfiniteTalk's
``infinitetalk.safetensors`` (MeiGen-AI/InfiniteTalk ``wan/multitalk.py`` merges the seven shards with it and loads
strictly; key names from ``wan/modules/multitalk_model.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from avatarv.config import DiTConfig
from avatarv.errors import CheckpointError
from avatarv.models.dit.model import VideoRefDiT
from avatarv.models.dit.streaming_load import (
    build_meta_dit,
    infinitetalk_14b_config,
    load_dit_streaming,
    parameter_counts,
)
from avatarv.models.dit.wan_weights import (
    INFINITETALK_AUDIO,
    KeyMapper,
    dit_config_from_wan,
    infinitetalk_adapter_config,
    load_wan_dit,
    load_wan_state_dict,
    map_wan_state_dict,
    read_safetensors_header,
    read_safetensors_shapes,
    wan_checkpoint_files,
)

AUDIO = dict(audio_adapter="infinitetalk", audio_dim=16, audio_layers=2, audio_frame_window=3, audio_hidden_dim=8,
             audio_context_tokens=4, audio_token_dim=12)
TINY = dict(dim=32, num_heads=2, num_layers=2, ffn_dim=64, latent_channels=4, cond_channels=8, text_dim=16,
            image_dim=24, freq_dim=32)

# The audio file's keys, exactly as InfiniteTalk ships them (multitalk_model.py: AudioProjModel, WanAttentionBlock).
AUDIO_KEYS = [f"audio_proj.{m}.{p}" for m in ("proj1", "proj1_vf", "proj2", "proj3", "norm") for p in ("weight", "bias")]
AUDIO_KEYS += [f"blocks.{n}.{m}.{p}" for n in range(2) for m in
               ("norm_x", "audio_cross_attn.q_linear", "audio_cross_attn.kv_linear", "audio_cross_attn.proj")
               for p in ("weight", "bias")]

# Our name → Wan2.1 original name (Wan2.1 wan/modules/model.py), written out independently of wan_weights' tables.
OURS_TO_ORIGINAL = [("cross_attn_norm", "norm3"), ("ffn.fc1", "ffn.0"), ("ffn.fc2", "ffn.2"), ("head.proj", "head.head"),
                    ("image_embedding.proj", "img_emb.proj")]


def tiny_cfg(**extras) -> DiTConfig:
    return DiTConfig(**{**TINY, **AUDIO, **extras})


def is_audio(key: str) -> bool:
    return key.startswith("audio_proj.") or ".norm_x." in key or ".audio_cross_attn." in key


def random_state(cfg: DiTConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    model = build_meta_dit(cfg)
    return {k: torch.randn(v.shape, generator=g) for k, v in model.state_dict().items()}


def to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        if is_audio(k) or k == "ref_embedding":
            continue
        for a, b in OURS_TO_ORIGINAL:
            k = k.replace(a, b)
        out[k] = v
    return out


def write_sharded(folder: Path, state: dict[str, torch.Tensor], shards: int, prefix: str = "") -> list[Path]:
    """Shards + index exactly as Wan2.1-I2V-14B-480P on the Hub (7 shards there, unprefixed keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted(state)
    weight_map, files = {}, []
    for i in range(shards):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = keys[i::shards]
        save_file({prefix + k: state[k].contiguous() for k in part}, str(folder / name))
        weight_map.update({prefix + k: name for k in part})
        files.append(folder / name)
    total = sum(v.numel() * v.element_size() for v in state.values())
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return files


def write_original_checkpoint(root: Path, cfg: DiTConfig, seed: int = 0, shards: int = 3):
    """An InfiniteTalk download in miniature: Wan's folder (config.json without text_dim, as Wan2.1-I2V's) and
    ``InfiniteTalk/single/infinitetalk.safetensors``. Returns (our state dict, wan folder, audio file)."""
    state = random_state(cfg, seed)
    wan = root / "Wan2.1-I2V-14B-480P"
    write_sharded(wan, to_original(state), shards)
    (wan / "config.json").write_text(json.dumps(dict(
        _class_name="WanModel", dim=cfg.dim, eps=1e-6, ffn_dim=cfg.ffn_dim, freq_dim=cfg.freq_dim,
        in_dim=cfg.in_channels, model_type="i2v", num_heads=cfg.num_heads, num_layers=cfg.num_layers,
        out_dim=cfg.latent_channels, text_len=512)))
    audio = root / "InfiniteTalk" / "single" / "infinitetalk.safetensors"
    audio.parent.mkdir(parents=True)
    save_file({k: v for k, v in state.items() if is_audio(k)}, str(audio))
    return state, wan, audio


def assert_loaded(model, state, dtype):
    got = model.state_dict()
    for k, v in state.items():
        if k == "ref_embedding":
            continue
        assert got[k].dtype == dtype, k
        assert torch.equal(got[k], v.to(dtype)), k


# ------------------------------------------------------------------------------------------------ key tables
@pytest.mark.parametrize("layout", ["original", "diffusers"])
def test_audio_keys_keep_their_names_in_both_layouts(layout):
    mapper = KeyMapper(layout)
    assert {k: mapper(k) for k in AUDIO_KEYS} == {k: k for k in AUDIO_KEYS}
    # the Wan table alone must never see them: blocks.N.audio_cross_attn.q_linear holds "cross_attn.q"
    wan_only = KeyMapper(layout)
    wan_only.table = wan_only.table[3:]
    assert all(wan_only(k) == KeyMapper.UNEXPECTED for k in AUDIO_KEYS)


def test_map_wan_state_dict_with_audio_adapter_merged():
    cfg = tiny_cfg()
    state = random_state(cfg)
    merged = {**to_original(state), **{k: v for k, v in state.items() if is_audio(k)}}
    mapped, report = map_wan_state_dict(merged)
    assert report.layout == "original" and not report.unexpected
    assert set(mapped) == set(state) - {"ref_embedding"}
    assert set(AUDIO_KEYS) <= set(mapped)


# ------------------------------------------------------------------------------------- files, config, loading
def test_index_lists_shards_and_ignores_other_files(tmp_path):
    cfg = tiny_cfg()
    _, wan, _ = write_original_checkpoint(tmp_path, cfg, shards=3)
    save_file({"stray": torch.zeros(1)}, str(wan / "unrelated.safetensors"))  # not in the index: not a shard
    files = wan_checkpoint_files(wan)
    assert [f.name for f in files] == [f"diffusion_pytorch_model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    (wan / files[1].name).unlink()
    with pytest.raises(CheckpointError, match="diffusion_pytorch_model-00002-of-00003.safetensors"):
        wan_checkpoint_files(wan)


def test_config_from_wan_json_and_audio_headers(tmp_path):
    """Wan2.1-I2V's config.json has no text_dim, no CLIP width and nothing of audio: headers say them."""
    cfg = tiny_cfg()
    _, wan, audio = write_original_checkpoint(tmp_path, cfg)
    wan_json = json.loads((wan / "config.json").read_text())
    assert "text_dim" not in wan_json
    audio_shapes = {k: s for k, (_, s) in read_safetensors_header(audio).items()}
    got = dit_config_from_wan(wan_json, read_safetensors_shapes(wan), audio_shapes, audio_dim=16)
    assert got == cfg
    prefixed = {"model.diffusion_model." + k: v for k, v in read_safetensors_shapes(wan).items()}  # raw headers
    assert dit_config_from_wan(wan_json, prefixed, audio_shapes, audio_dim=16) == cfg
    with pytest.raises(CheckpointError, match="do not factor"):  # 2·16 wav2vec channels are not 768-wide layers
        dit_config_from_wan(wan_json, read_safetensors_shapes(wan), audio_shapes)


def test_full_size_adapter_shapes_give_infinitetalk_settings():
    """InfiniteTalk's AudioProjModel at its defaults: proj1 [512, 5·12·768], proj1_vf [512, 8·12·768],
    proj3 [32·768, 512], kv_linear [2·5120, 768]."""
    shapes = {"audio_proj.proj1.weight": (512, 5 * 12 * 768), "audio_proj.proj1_vf.weight": (512, 8 * 12 * 768),
              "audio_proj.proj3.weight": (32 * 768, 512), "audio_proj.norm.weight": (768,),
              "blocks.0.audio_cross_attn.kv_linear.weight": (2 * 5120, 768)}
    assert infinitetalk_adapter_config(shapes) == INFINITETALK_AUDIO
    del shapes["audio_proj.norm.weight"]
    assert infinitetalk_adapter_config(shapes)["audio_norm_output"] is False


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_infinitetalk_original_layout_streams_strictly(tmp_path, dtype):
    cfg = tiny_cfg()
    state, wan, audio = write_original_checkpoint(tmp_path, cfg)
    model, report = load_dit_streaming([*wan_checkpoint_files(wan), audio], cfg, dtype)
    assert report.layout == "original" and not report.missing and not report.unexpected
    assert report.avatarv_only == ["ref_embedding"] and len(report.loaded) == len(state) - 1
    assert_loaded(model, state, dtype)
    assert not model.ref_embedding.any()  # our addition at its identity init
    assert not any(p.is_meta for p in model.parameters())


@pytest.mark.parametrize("name", ["multi/infinitetalk.safetensors", "multitalk.safetensors"])
def test_multi_and_multitalk_files_load_the_same_way(tmp_path, name):
    """InfiniteTalk's single and multi files and MultiTalk's multitalk.safetensors carry the same keys."""
    cfg = tiny_cfg()
    state, wan, audio = write_original_checkpoint(tmp_path, cfg)
    other = tmp_path / name
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_bytes(audio.read_bytes())
    audio.unlink()
    model, _ = load_dit_streaming([*wan_checkpoint_files(wan), other], cfg, torch.float32)
    assert_loaded(model, state, torch.float32)


def test_load_wan_dit_with_audio_file_builds_the_adapter(tmp_path):
    cfg = tiny_cfg()
    state, wan, audio = write_original_checkpoint(tmp_path, cfg)
    model, report = load_wan_dit(wan, audio=audio, audio_dim=16)
    assert model.cfg == cfg and not report.missing
    assert_loaded(model, state, torch.float32)


def test_diffusers_sharded_folder_streams_like_the_fp32_loader(tmp_path):
    """diffusers' own save_pretrained shards (+ index) of an I2V WanTransformer3DModel, and the audio file."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    ref = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=12,
                                out_channels=4, text_dim=16, freq_dim=32, ffn_dim=64, num_layers=2,
                                cross_attn_norm=True, qk_norm="rms_norm_across_heads", image_dim=24, added_kv_proj_dim=32,
                                rope_max_seq_len=64)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn_like(p))
    ref.save_pretrained(tmp_path / "transformer", max_shard_size="40KB")
    files = wan_checkpoint_files(tmp_path)  # a pipeline root: its transformer/ folder
    assert len(files) > 2 and files[0].name.startswith("diffusion_pytorch_model-00001-of-")
    cfg = tiny_cfg()
    audio_state = {k: v for k, v in random_state(cfg, seed=3).items() if is_audio(k)}
    save_file(audio_state, str(tmp_path / "infinitetalk.safetensors"))
    model, report = load_dit_streaming([*files, tmp_path / "infinitetalk.safetensors"], cfg, torch.bfloat16)
    assert report.layout == "diffusers" and not report.missing and not report.unexpected
    reference = VideoRefDiT(cfg)
    load_wan_state_dict(reference, {**ref.state_dict(), **audio_state})
    assert_loaded(model, reference.state_dict(), torch.bfloat16)


@pytest.mark.parametrize("stored", [torch.bfloat16, torch.float16, torch.float8_e4m3fn])
def test_dtype_comes_from_headers_and_casts_to_the_run_dtype(tmp_path, stored):
    cfg = tiny_cfg()
    state = random_state(cfg)
    state = {k: v.to(stored) for k, v in state.items()}
    save_file({"model.diffusion_model." + k: v for k, v in to_original(state).items()}, str(tmp_path / "wan.safetensors"))
    save_file({k: v for k, v in state.items() if is_audio(k)}, str(tmp_path / "audio.safetensors"))
    tag = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float8_e4m3fn: "F8_E4M3"}[stored]
    for run in (torch.float32, torch.bfloat16):
        model, report = load_dit_streaming([tmp_path / "wan.safetensors", tmp_path / "audio.safetensors"], cfg, run)
        assert report.source_dtypes == {tag: len(state) - 1}
        assert_loaded(model, {k: v.to(torch.float32) for k, v in state.items()}, run)


# ------------------------------------------------------------------------------------------------- strictness
def test_errors_name_the_key_and_the_file(tmp_path):
    cfg = tiny_cfg()
    state, wan, audio = write_original_checkpoint(tmp_path, cfg)
    files = wan_checkpoint_files(wan)
    bad = dict({k: v for k, v in state.items() if is_audio(k)})
    bad["blocks.0.audio_cross_attn.bogus.weight"] = torch.zeros(2)
    del bad["blocks.1.norm_x.bias"]
    save_file(bad, str(audio))
    with pytest.raises(CheckpointError) as exc:
        load_dit_streaming([*files, audio], cfg)
    msg = str(exc.value)
    assert f"unexpected key blocks.0.audio_cross_attn.bogus.weight in {audio}" in msg
    assert "no file has blocks.1.norm_x.bias" in msg
    # the audio file left out: every adapter parameter is missing (not silently left at init)
    with pytest.raises(CheckpointError, match="no file has blocks.0.audio_cross_attn.q_linear.weight"):
        load_dit_streaming(files, cfg)
    # the same key in two files
    save_file({"blocks.0.norm3.weight": torch.zeros(32)}, str(tmp_path / "dup.safetensors"))
    save_file({k: v for k, v in state.items() if is_audio(k)}, str(audio))
    with pytest.raises(CheckpointError, match=r"blocks.0.cross_attn_norm.weight in both .* and .*dup.safetensors"):
        load_dit_streaming([*files, audio, tmp_path / "dup.safetensors"], cfg)
    # a wrong shape (a DiT built with another ffn width)
    with pytest.raises(CheckpointError, match=r"blocks.0.ffn.0.weight in .*: checkpoint \(64, 32\) vs model \(48, 32\)"):
        load_dit_streaming([*files, audio], tiny_cfg(ffn_dim=48))


def test_avatarv_parameters_get_the_init_the_dit_gives_them(tmp_path):
    """Our additions (reference embedding, windowed audio, motion, guidance) are absent from Wan files; streamed,
    they must start exactly as in VideoRefDiT(cfg): zero where it zeroes, ones where it has ones, random (xavier)
    of the same spread elsewhere."""
    cfg = DiTConfig(**{**TINY, "audio_dim": 6, "motion_dim": 5, "num_guidance_scales": 2, "audio_positions": True})
    state = random_state(cfg)
    save_file(to_original({k: v for k, v in state.items()
                           if not k.startswith(("audio_", "motion_", "guidance_")) and ".audio_" not in k}),
              str(tmp_path / "wan.safetensors"))
    model, report = load_dit_streaming([tmp_path / "wan.safetensors"], cfg, torch.float32)
    assert len(report.avatarv_only) > 10
    torch.manual_seed(0)
    fresh = VideoRefDiT(cfg).state_dict()
    got = model.state_dict()
    for k in report.avatarv_only:
        ref, new = fresh[k], got[k]
        assert torch.equal(ref == 0, new == 0) and torch.equal(ref == 1, new == 1), k
        if ref.numel() > 16 and ref.std() > 0:
            assert 0.7 < (new.std() / ref.std()).item() < 1.4, k


# ---------------------------------------------------------------------------------------------- full size
def test_infinitetalk_14b_parameter_count():
    """Written out from Wan2.1 model.py (WanAttentionBlock, MLPProj, Head) and InfiniteTalk multitalk_model.py
    (AudioProjModel, norm_x, SingleStreamMutiAttention) at Wan2.1-I2V-14B's config."""
    d, f, L, lin = 5120, 13824, 40, lambda i, o: i * o + o  # noqa: E731
    block = (4 * lin(d, d) + 2 * d) + (4 * lin(d, d) + 2 * d + 2 * lin(d, d) + d) + 2 * d + lin(d, f) + lin(f, d)
    block += 6 * d
    wan = L * block + (36 * 4 * d + d) + lin(4096, d) + lin(d, d) + lin(256, d) + lin(d, d) + lin(d, 6 * d)
    wan += 2 * d + lin(d, 16 * 4) + (2 * 1280 + lin(1280, 1280) + lin(1280, d) + 2 * d)
    audio = L * (2 * d + lin(d, d) + lin(768, 2 * d) + lin(d, d))
    audio += lin(5 * 12 * 768, 512) + lin(8 * 12 * 768, 512) + lin(512, 512) + lin(512, 32 * 768) + 2 * 768
    counts = parameter_counts(infinitetalk_14b_config())
    assert counts["wan"] == wan and counts["audio_adapter"] == audio
    assert counts["total"] == wan + audio + counts["avatarv"] and counts["avatarv"] == d  # ref_embedding


# ------------------------------------------------------------------------------------------------- memory
MEM_CFG = dict(dim=768, num_heads=12, num_layers=5, ffn_dim=3072, latent_channels=4, text_dim=16, freq_dim=32)
MEM_SCRIPT = textwrap.dedent("""
    import re, sys, torch
    from avatarv.config import DiTConfig
    from avatarv.models.dit.streaming_load import build_meta_dit, load_dit_streaming
    from avatarv.models.dit.wan_weights import wan_checkpoint_files

    def kib(key):
        return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024

    cfg = DiTConfig(**{cfg})
    build_meta_dit(cfg)  # every module imported and run once before the baseline
    try:
        open("/proc/self/clear_refs", "w").write("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    base = max(kib("VmRSS"), kib("VmHWM"))
    if sys.argv[2] == "in-memory":  # what load_wan_dit does: the fp32 model, then the whole state dict
        from avatarv.models.dit.model import VideoRefDiT
        from avatarv.models.dit.wan_weights import load_wan_state_dict, read_safetensors_dir
        model = VideoRefDiT(cfg)
        load_wan_state_dict(model, read_safetensors_dir(sys.argv[1]))
        model.to(torch.bfloat16)
    else:
        model, _ = load_dit_streaming(wan_checkpoint_files(sys.argv[1]), cfg, torch.bfloat16)
    print(kib("VmHWM") - base)
""")


def test_streaming_peak_host_memory(tmp_path):
    """~210 MB fp32 in 8 shards, loaded as bf16: the peak over the interpreter's baseline stays below the bf16 model
    + one shard; the in-memory loader (the fp32 model, then the state dict, then the cast) needs > 2× that."""
    cfg = DiTConfig(**MEM_CFG)
    state = {k: v for k, v in random_state(cfg).items() if k != "ref_embedding"}
    files = write_sharded(tmp_path, to_original(state), shards=8)
    numel = sum(v.numel() for v in state.values())
    del state
    bound = 2 * numel + max(f.stat().st_size for f in files)
    script = MEM_SCRIPT.replace("{cfg}", repr(MEM_CFG))

    def peak(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", script, str(tmp_path), mode], capture_output=True, text=True,
                             check=True)
        return int(out.stdout.strip().splitlines()[-1])

    streamed = peak("streaming")
    assert streamed < bound, f"peak {streamed / 1e6:.0f} MB ≥ bf16 model + one shard {bound / 1e6:.0f} MB"
    assert peak("in-memory") > 2 * bound  # the measurement sees a loader that holds fp32 copies

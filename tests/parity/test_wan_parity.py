"""Our DiT loads Wan weights (diffusers and original layouts) and reproduces diffusers' WanTransformer3DModel."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import WanTransformer3DModel
from safetensors.torch import save_file

from avatarv.config import DiTConfig
from avatarv.errors import CheckpointError
from avatarv.models.dit import VideoRefDiT, load_wan_dit, load_wan_state_dict
from avatarv.models.dit.wan_weights import DIFFUSERS_TO_OURS, ORIGINAL_TO_OURS

HEADS, HEAD_DIM = 2, 12


def tiny_diffusers(in_channels: int = 4, seed: int = 0) -> WanTransformer3DModel:
    torch.manual_seed(seed)
    model = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=HEADS, attention_head_dim=HEAD_DIM, in_channels=in_channels,
        out_channels=4, text_dim=20, freq_dim=32, ffn_dim=40, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=64,
    ).eval()
    # diffusers zero-inits nothing we could hide behind: randomise every parameter, norms included.
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return model


def our_config(**extras) -> DiTConfig:
    base = dict(dim=HEADS * HEAD_DIM, num_heads=HEADS, num_layers=2, ffn_dim=40, latent_channels=4,
                text_dim=20, freq_dim=32)
    base.update(extras)
    return DiTConfig(**base)


def diffusers_to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Invert diffusers' own converter (``convert_wan_transformer_to_diffusers``) to get Wan's original keys."""
    rename = [
        ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
        ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
        ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
        ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
        ("condition_embedder.time_proj", "time_projection.1"),
        ("attn1", "self_attn"), ("attn2", "cross_attn"), (".to_out.0.", ".o."), (".to_q.", ".q."),
        (".to_k.", ".k."), (".to_v.", ".v."), ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"),
        (".norm2.", ".norm3."), ("proj_out", "head.head"),
    ]
    out = {}
    for k, v in state.items():
        new = k
        for a, b in rename:
            new = new.replace(a, b)
        if new == "scale_shift_table":
            new = "head.modulation"
        new = new.replace("scale_shift_table", "modulation")
        out["model.diffusion_model." + new] = v
    return out


def inputs(in_channels=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, in_channels, 3, 6, 8, generator=g)
    t = torch.tensor([0.3, 0.85])
    text = torch.randn(2, 7, 20, generator=g)
    return x, t, text


@torch.no_grad()
def test_parity_diffusers_layout():
    ref_model = tiny_diffusers()
    ours = VideoRefDiT(our_config()).eval()
    report = load_wan_state_dict(ours, ref_model.state_dict())
    assert report.layout == "diffusers" and not report.missing and not report.unexpected
    x, t, text = inputs()
    expected = ref_model(x, t * 1000, text, return_dict=False)[0]
    got = ours(x, t, text=text).video
    err = (got - expected).abs().max().item()
    assert err < 1e-5, err
    assert expected.abs().mean() > 0.1  # a real signal, not two zero outputs


@torch.no_grad()
def test_parity_original_layout(tmp_path):
    ref_model = tiny_diffusers(seed=3)
    original = diffusers_to_original(ref_model.state_dict())
    assert any(k.endswith("blocks.0.norm3.weight") for k in original)  # Wan's name for the cross-attn norm
    # Save as a local Wan checkpoint directory (original config.json + sharded safetensors) and load it.
    keys = sorted(original)
    save_file({k: original[k].contiguous() for k in keys[: len(keys) // 2]}, str(tmp_path / "shard-1.safetensors"))
    save_file({k: original[k].contiguous() for k in keys[len(keys) // 2 :]}, str(tmp_path / "shard-2.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(dict(
        dim=HEADS * HEAD_DIM, num_heads=HEADS, num_layers=2, ffn_dim=40, in_dim=4, out_dim=4, text_dim=20,
        freq_dim=32, eps=1e-6, patch_size=[1, 2, 2], model_type="t2v")))
    ours, report = load_wan_dit(tmp_path)
    assert report.layout == "original" and len(report.loaded) == len(original)
    x, t, text = inputs(seed=4)
    expected = ref_model(x, t * 1000, text, return_dict=False)[0]
    err = (ours.eval()(x, t, text=text).video - expected).abs().max().item()
    assert err < 1e-5, err


@torch.no_grad()
def test_parity_i2v_condition_channels():
    """Wan I2V layout: noisy latents + (4 mask + 4 latent) condition channels concatenated before patchify."""
    ref_model = tiny_diffusers(in_channels=12, seed=5)
    ours = VideoRefDiT(our_config(cond_channels=8)).eval()
    load_wan_state_dict(ours, ref_model.state_dict())
    x, t, text = inputs(in_channels=12, seed=6)
    expected = ref_model(x, t * 1000, text, return_dict=False)[0]
    got = ours(x[:, :4], t, text=text, cond=x[:, 4:]).video
    assert (got - expected).abs().max().item() < 1e-5


@torch.no_grad()
def test_zero_init_new_modules_keep_wan_path():
    """With audio, motion and guidance modules at init and an empty reference, the DiT is exactly Wan."""
    ref_model = tiny_diffusers(seed=7)
    ours = VideoRefDiT(our_config(audio_dim=6, motion_dim=5, num_guidance_scales=2)).eval()
    report = load_wan_state_dict(ours, ref_model.state_dict())
    assert report.avatarv_only and all(("audio" in k or "motion" in k or "guidance" in k or "ref_" in k)
                                       for k in report.avatarv_only)
    x, t, text = inputs(seed=8)
    expected = ref_model(x, t * 1000, text, return_dict=False)[0]
    audio = torch.randn(2, 3, 4, 6)
    got = ours(x, t, text=text, audio=audio, guidance=torch.tensor([[5.0, 3.0], [1.0, 2.0]])).video
    assert (got - expected).abs().max().item() < 1e-5


def test_loader_reports_missing_and_unexpected_keys():
    ref_model = tiny_diffusers()
    state = dict(ref_model.state_dict())
    state.pop("blocks.1.attn1.to_q.weight")
    state["blocks.0.attn1.bogus.weight"] = torch.zeros(1)
    ours = VideoRefDiT(our_config())
    with pytest.raises(CheckpointError) as exc:
        load_wan_state_dict(ours, state)
    msg = str(exc.value)
    assert "missing 1 keys: blocks.1.self_attn.q.weight" in msg and "blocks.0.attn1.bogus.weight" in msg


def test_loader_reports_shape_mismatch():
    ours = VideoRefDiT(our_config(ffn_dim=48))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_wan_state_dict(ours, tiny_diffusers().state_dict())


def test_key_tables_cover_every_parameter_both_ways():
    ref_model = tiny_diffusers()
    ours_keys = set(VideoRefDiT(our_config()).state_dict())
    import re

    for table, keys in ((DIFFUSERS_TO_OURS, ref_model.state_dict()), (ORIGINAL_TO_OURS,
                        diffusers_to_original(ref_model.state_dict()))):
        mapped = set()
        for k in keys:
            k = k.removeprefix("model.diffusion_model.")
            hits = [re.sub(p, r, k) for p, r in table if re.match(p, k)]
            assert len(hits) >= 1, k
            mapped.add(hits[0])
        assert mapped == ours_keys - {"ref_embedding"}  # ours only, identity-initialised


def test_wan_parameter_counts_match_diffusers():
    """Plain Wan configs (no avatarv extras) have exactly diffusers' parameter count: 1.3B and 14B T2V."""
    for dim, heads, layers, ffn in ((1536, 12, 30, 8960), (5120, 40, 40, 13824)):
        with torch.device("meta"):
            theirs = WanTransformer3DModel(num_attention_heads=heads, attention_head_dim=128, ffn_dim=ffn,
                                           num_layers=layers, in_channels=16, out_channels=16)
        n_theirs = sum(p.numel() for p in theirs.parameters())
        n_ours = VideoRefDiT.count_parameters(DiTConfig(dim=dim, num_heads=heads, num_layers=layers, ffn_dim=ffn))
        assert n_ours == n_theirs + dim  # + ref_embedding, our only always-on parameter

"""Wan2.1 I2V's CLIP image branch: our DiT loads it (diffusers and original layouts) and reproduces diffusers'
``WanTransformer3DModel`` with ``image_dim`` / ``added_kv_proj_dim`` set (the I2V config)."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import WanTransformer3DModel
from safetensors.torch import save_file

from avatarv.errors import CheckpointError
from avatarv.models.dit import VideoRefDiT, load_wan_dit, load_wan_state_dict
from avatarv.models.dit.conditions import Conditions
from avatarv.models.dit.wan_weights import dit_config_from_wan, read_safetensors_shapes
from tests.parity.test_wan_parity import HEAD_DIM, HEADS, diffusers_to_original, our_config

DIM = HEADS * HEAD_DIM
IMAGE_DIM = 16  # CLIP ViT-H/14 hidden size is 1280; small here
CLIP_TOKENS = 257
TEXT_LEN = 512  # diffusers' WanAttnProcessor splits the context at (length − 512): the text must be 512 long
IN_CHANNELS = 12  # I2V: 4 latent + 4 mask + 4 condition latent channels (36 = 16 + 4 + 16 in Wan2.1-I2V)


def tiny_i2v(seed: int = 0) -> WanTransformer3DModel:
    torch.manual_seed(seed)
    model = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=HEADS, attention_head_dim=HEAD_DIM, in_channels=IN_CHANNELS,
        out_channels=4, text_dim=20, freq_dim=32, ffn_dim=40, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=IMAGE_DIM, added_kv_proj_dim=DIM, rope_max_seq_len=64,
    ).eval()
    with torch.no_grad():  # every parameter random, norms included
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return model


def i2v_to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers I2V keys → Wan2.1's (``img_emb.proj.N``, ``cross_attn.k_img`` …), inverting diffusers' converter."""
    image = [
        ("condition_embedder.image_embedder.norm1.", "img_emb.proj.0."),
        ("condition_embedder.image_embedder.ff.net.0.proj.", "img_emb.proj.1."),
        ("condition_embedder.image_embedder.ff.net.2.", "img_emb.proj.3."),
        ("condition_embedder.image_embedder.norm2.", "img_emb.proj.4."),
        (".attn2.add_k_proj.", ".attn2.k_img."), (".attn2.add_v_proj.", ".attn2.v_img."),
        (".attn2.norm_added_k.", ".attn2.norm_k_img."),
    ]
    renamed = {}
    for k, v in state.items():
        for a, b in image:
            k = k.replace(a, b)
        renamed[k] = v
    return diffusers_to_original(renamed)


def i2v_inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, IN_CHANNELS, 3, 6, 8, generator=g)
    t = torch.tensor([0.3, 0.85])
    text = torch.randn(2, TEXT_LEN, 20, generator=g)
    clip = torch.randn(2, CLIP_TOKENS, IMAGE_DIM, generator=g)
    return x, t, text, clip


def check_parity(ref_model, ours, seed) -> float:
    x, t, text, clip = i2v_inputs(seed)
    with torch.no_grad():
        expected = ref_model(x, t * 1000, text, encoder_hidden_states_image=clip, return_dict=False)[0]
        got = ours.eval()(x[:, :4], t, text=text, cond=x[:, 4:], image=clip).video
        without_image = ours(x[:, :4], t, text=text, cond=x[:, 4:]).video
    assert expected.abs().mean() > 0.1  # a real signal
    assert (without_image - expected).abs().max() > 1e-2  # the image branch matters
    return (got - expected).abs().max().item()


def test_i2v_parity_diffusers_layout(tmp_path):
    ref_model = tiny_i2v(seed=11)
    ref_model.save_pretrained(tmp_path)  # config.json (image_dim, added_kv_proj_dim) + safetensors, as shipped
    ours, report = load_wan_dit(tmp_path)
    assert report.layout == "diffusers" and not report.skipped_image_branch
    assert ours.cfg.image_dim == IMAGE_DIM and ours.cfg.cond_channels == 8 and ours.cfg.text_dim == 20
    assert any(k.startswith("image_embedding.") for k in report.loaded)
    assert "blocks.1.cross_attn.k_img.weight" in report.loaded
    err = check_parity(ref_model, ours, seed=12)
    assert err <= 1e-5, err


@pytest.mark.parametrize("omit_in_dim", [False, True])
def test_i2v_parity_original_layout(tmp_path, omit_in_dim):
    ref_model = tiny_i2v(seed=13)
    original = i2v_to_original(ref_model.state_dict())
    assert "model.diffusion_model.img_emb.proj.4.weight" in original
    assert "model.diffusion_model.blocks.0.cross_attn.norm_k_img.weight" in original
    keys = sorted(original)
    save_file({k: original[k].contiguous() for k in keys[: len(keys) // 2]}, str(tmp_path / "shard-1.safetensors"))
    save_file({k: original[k].contiguous() for k in keys[len(keys) // 2 :]}, str(tmp_path / "shard-2.safetensors"))
    # Wan2.1-I2V's config.json: no text_dim (WanModel's default 4096), no image dim (1280, fixed in WanModel);
    # here both differ from the defaults, so they must come off the tensor shapes.
    config = dict(_class_name="WanModel", dim=DIM, eps=1e-6, ffn_dim=40, freq_dim=32, in_dim=IN_CHANNELS,
                  model_type="i2v", num_heads=HEADS, num_layers=2, out_dim=4, text_len=TEXT_LEN)
    if omit_in_dim:
        del config["in_dim"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    ours, report = load_wan_dit(tmp_path)
    assert report.layout == "original" and len(report.loaded) == len(original)
    assert (ours.cfg.text_dim, ours.cfg.image_dim, ours.cfg.in_channels) == (20, IMAGE_DIM, IN_CHANNELS)
    err = check_parity(ref_model, ours, seed=14)
    assert err <= 1e-5, err


def test_config_from_original_wan_i2v_json_defaults():
    """The released Wan2.1-I2V-14B config.json, with no checkpoint at hand: WanModel's defaults fill the gaps."""
    cfg = dit_config_from_wan({"_class_name": "WanModel", "dim": 5120, "eps": 1e-06, "ffn_dim": 13824,
                               "freq_dim": 256, "in_dim": 36, "model_type": "i2v", "num_heads": 40,
                               "num_layers": 40, "out_dim": 16, "text_len": 512})
    assert (cfg.text_dim, cfg.image_dim, cfg.latent_channels, cfg.cond_channels) == (4096, 1280, 16, 20)
    t2v = dit_config_from_wan({"dim": 1536, "ffn_dim": 8960, "freq_dim": 256, "in_dim": 16, "model_type": "t2v",
                               "num_heads": 12, "num_layers": 30, "out_dim": 16})
    assert (t2v.text_dim, t2v.image_dim, t2v.cond_channels) == (4096, 0, 0)


def test_shapes_read_from_headers_only(tmp_path):
    save_file({"model.diffusion_model.text_embedding.0.weight": torch.zeros(8, 20)}, str(tmp_path / "a.safetensors"))
    assert read_safetensors_shapes(tmp_path) == {"text_embedding.0.weight": (8, 20)}


def test_missing_image_key_is_an_error_naming_it():
    state = dict(tiny_i2v().state_dict())
    state.pop("blocks.1.attn2.add_k_proj.weight")
    ours = VideoRefDiT(our_config(cond_channels=8, image_dim=IMAGE_DIM))
    with pytest.raises(CheckpointError, match=r"missing 1 keys: blocks\.1\.cross_attn\.k_img\.weight"):
        load_wan_state_dict(ours, state)
    original = i2v_to_original(tiny_i2v().state_dict())
    original.pop("model.diffusion_model.img_emb.proj.0.bias")
    with pytest.raises(CheckpointError, match=r"missing 1 keys: image_embedding\.proj\.0\.bias"):
        load_wan_state_dict(ours, original)


def test_unexpected_image_key_is_an_error_naming_it():
    ours = VideoRefDiT(our_config(cond_channels=8, image_dim=IMAGE_DIM))
    state = dict(tiny_i2v().state_dict())
    state["condition_embedder.image_embedder.pos_embed"] = torch.zeros(1, 2 * CLIP_TOKENS, IMAGE_DIM)  # FLF2V's
    with pytest.raises(CheckpointError, match=r"unexpected 1 keys: condition_embedder\.image_embedder\.pos_embed"):
        load_wan_state_dict(ours, state)
    original = i2v_to_original(tiny_i2v().state_dict())
    original["model.diffusion_model.img_emb.emb_pos"] = torch.zeros(1, 2 * CLIP_TOKENS, IMAGE_DIM)
    with pytest.raises(CheckpointError, match=r"unexpected 1 keys: img_emb\.emb_pos"):
        load_wan_state_dict(ours, original)


def test_image_branch_into_a_dit_without_one():
    """image_dim 0: the I2V checkpoint's image branch is skipped (reported) only when the caller allows it."""
    state = tiny_i2v().state_dict()
    ours = VideoRefDiT(our_config(cond_channels=8))
    n_image = 8 + 2 * 5  # image embedder: 2 norms + 2 linears (w, b); per block: k_img, v_img (w, b), norm_k_img
    with pytest.raises(CheckpointError, match=f"unexpected {n_image} keys"):
        load_wan_state_dict(ours, state)
    report = load_wan_state_dict(ours, state, skip_image_branch=True)
    assert len(report.skipped_image_branch) == n_image and not report.unexpected


def test_image_dim_zero_adds_nothing():
    """image_dim 0 (the default): no image parameters, and an image input is refused."""
    plain = VideoRefDiT(our_config())
    assert not any("img" in k or "image" in k for k in plain.state_dict())
    with_image = VideoRefDiT(our_config(image_dim=IMAGE_DIM))
    extra = set(with_image.state_dict()) - set(plain.state_dict())
    assert len(extra) == 8 + 2 * 5 and set(plain.state_dict()) <= set(with_image.state_dict())
    x = torch.randn(1, 4, 1, 4, 4)
    with pytest.raises(ValueError, match="image_dim"):
        plain(x, torch.tensor([0.5]), text=torch.randn(1, 3, 20), image=torch.randn(1, CLIP_TOKENS, IMAGE_DIM))


def test_conditions_keep_the_image_in_every_guidance_pass():
    """Wan2.1 image2video.py and InfiniteTalk multitalk.py pass clip_fea in the conditional and every
    unconditional pass (arg_null, arg_null_text, arg_null_audio): guidance never drops the image."""
    image = torch.randn(2, CLIP_TOKENS, IMAGE_DIM)
    cond = Conditions(text=torch.randn(2, 5, 20), audio=torch.randn(2, 3, 4, 6), image=image)
    for kept in (frozenset(), frozenset({"text"}), frozenset({"audio", "text"})):
        assert cond.select(kept).dit_kwargs()["image"] is image
    assert cond.kept({"text": torch.tensor([True, False])}).image is image
    assert "image" not in Conditions(text=torch.randn(2, 5, 20)).dit_kwargs()  # DiTs without the branch: unchanged

"""Wan LoRA files merge into the DiT as InfiniteTalk's ``wan/wan_lora.py`` and diffusers' Wan LoRA converter say.

``wan_lora.py`` (``WanLoraWrapper._apply_lora_weights``): ``diffusion_model.<module>.lora_down.weight`` /
``lora_up.weight`` → ``W += scale · up @ down`` (alpha ignored), ``.diff`` → ``W += scale · diff``, ``.diff_b`` →
``b += scale · diff_b``. diffusers (``lora_conversion_utils._convert_non_diffusers_wan_lora_to_diffusers``,
``get_alpha_scales``): the pair scaled by alpha / rank.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from avatarv.errors import CheckpointError
from avatarv.models.dit.lora import LoraSpec, merge_loras
from avatarv.models.dit.streaming_load import load_dit_streaming
from avatarv.models.dit.wan_weights import wan_checkpoint_files
from tests.unit.test_wan_shards import tiny_cfg, write_original_checkpoint

RANK = 4


def pair(out_f: int, in_f: int, seed: int, conv: tuple[int, ...] = ()):
    g = torch.Generator().manual_seed(seed)
    down = torch.randn(RANK, in_f, *conv, generator=g)
    up = torch.randn(out_f, RANK, *[1] * len(conv), generator=g)
    return down, up


def kohya_lora(path, alpha: float | None = None):
    """InfiniteTalk's scheme (Wan original names, ``diffusion_model.``, lora_down/up, diff, diff_b), optional alpha.
    Returns {our param: (kind, tensors)} to compute the expectation by hand."""
    d, f = 32, 64
    tensors, expect = {}, {}
    for i, (wan, ours, shape) in enumerate([
        ("blocks.0.self_attn.q", "blocks.0.self_attn.q.weight", (d, d)),
        ("blocks.1.ffn.0", "blocks.1.ffn.fc1.weight", (f, d)),
        ("blocks.0.cross_attn.k_img", "blocks.0.cross_attn.k_img.weight", (d, d)),
        ("blocks.1.audio_cross_attn.q_linear", "blocks.1.audio_cross_attn.q_linear.weight", (d, d)),
        ("patch_embedding", "patch_embedding.weight", (d, 12)),
    ]):
        conv = (1, 2, 2) if wan == "patch_embedding" else ()
        down, up = pair(shape[0], shape[1], seed=i, conv=conv)
        tensors[f"diffusion_model.{wan}.lora_down.weight"] = down
        tensors[f"diffusion_model.{wan}.lora_up.weight"] = up
        if alpha is not None:
            tensors[f"diffusion_model.{wan}.alpha"] = torch.tensor(alpha)
        expect[ours] = ("pair", down, up)
    g = torch.Generator().manual_seed(99)
    for wan, ours, shape in [("blocks.0.norm3.diff", "blocks.0.cross_attn_norm.weight", (d,)),
                             ("blocks.0.self_attn.q.diff_b", "blocks.0.self_attn.q.bias", (d,)),
                             ("blocks.1.modulation.diff", "blocks.1.modulation", (1, 6, d))]:
        tensors[f"diffusion_model.{wan}"] = t = torch.randn(shape, generator=g)
        expect[ours] = ("diff", t)
    save_file(tensors, str(path))
    return expect


def diffusers_lora(path, alpha: float):
    """diffusers / peft names: ``transformer.blocks.N.attn1.to_k.lora_A.weight`` / ``lora_B``, with alpha."""
    tensors, expect = {}, {}
    for i, (name, ours) in enumerate([("blocks.0.attn1.to_k", "blocks.0.self_attn.k.weight"),
                                      ("blocks.1.attn2.to_out.0", "blocks.1.cross_attn.o.weight")]):
        down, up = pair(32, 32, seed=10 + i)
        tensors[f"transformer.{name}.lora_A.weight"] = down
        tensors[f"transformer.{name}.lora_B.weight"] = up
        tensors[f"transformer.{name}.alpha"] = torch.tensor(alpha)
        expect[ours] = ("pair", down, up)
    save_file(tensors, str(path))
    return expect


def expected(base: dict[str, torch.Tensor], loras, dtype) -> dict[str, torch.Tensor]:
    """W + s·(alpha factor)·up @ down (and + s·diff), summed in fp32, cast once: written out."""
    out = {k: v.float().clone() for k, v in base.items()}
    for expect, scale, factor in loras:
        for name, (kind, *t) in expect.items():
            if kind == "pair":
                down, up = t
                out[name] += (scale * factor * (up.flatten(1) @ down.flatten(1))).reshape(out[name].shape)
            else:
                out[name] += scale * t[0].reshape(out[name].shape)
    return {k: v.to(dtype) for k, v in out.items()}


@pytest.fixture()
def checkpoint(tmp_path):
    cfg = tiny_cfg()
    state, wan, audio = write_original_checkpoint(tmp_path, cfg)
    return cfg, state, [*wan_checkpoint_files(wan), audio]


@pytest.mark.parametrize("alpha_mode, factor", [("ignore", 1.0), ("scale", 8.0 / RANK)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_streamed_merge_equals_written_out_sum(tmp_path, checkpoint, alpha_mode, factor, dtype):
    cfg, state, files = checkpoint
    a = kohya_lora(tmp_path / "a.safetensors", alpha=8.0)
    b = diffusers_lora(tmp_path / "b.safetensors", alpha=8.0)
    specs = [LoraSpec(tmp_path / "a.safetensors", 0.7, alpha_mode), LoraSpec(tmp_path / "b.safetensors", -1.5, alpha_mode)]
    model, report = load_dit_streaming(files, cfg, dtype, lora=specs)
    # diff / diff_b carry no alpha: only the pairs take the factor
    want = expected(state, [({k: v for k, v in a.items() if v[0] == "pair"}, 0.7, factor),
                            ({k: v for k, v in a.items() if v[0] == "diff"}, 0.7, 1.0), (b, -1.5, factor)], dtype)
    got = model.state_dict()
    assert sorted(report.lora_merged) == sorted({*a, *b})
    for k in want:
        if k != "ref_embedding":
            assert torch.equal(got[k], want[k]), k  # bit-exact: merged in fp32, cast once


def test_alpha_free_file_is_the_same_in_both_modes(tmp_path, checkpoint):
    cfg, _, files = checkpoint
    kohya_lora(tmp_path / "a.safetensors", alpha=None)
    runs = [load_dit_streaming(files, cfg, torch.float32, lora=[LoraSpec(tmp_path / "a.safetensors", 1.0, m)])[0]
            for m in ("ignore", "scale")]
    assert all(torch.equal(x, y) for x, y in zip(runs[0].state_dict().values(), runs[1].state_dict().values(), strict=True))


def test_merge_into_a_loaded_model_matches_streaming(tmp_path, checkpoint):
    cfg, _, files = checkpoint
    kohya_lora(tmp_path / "a.safetensors", alpha=16.0)
    spec = LoraSpec(tmp_path / "a.safetensors", 0.5, "scale")
    streamed, _ = load_dit_streaming(files, cfg, torch.float32, lora=[spec])
    plain, _ = load_dit_streaming(files, cfg, torch.float32)
    changed = merge_loras(plain, [spec])
    assert "blocks.0.self_attn.q.weight" in changed and "blocks.0.self_attn.k.weight" not in changed
    for k, v in streamed.state_dict().items():
        assert torch.equal(plain.state_dict()[k], v), k


def test_default_alpha_mode_is_infinitetalks():
    assert LoraSpec("x.safetensors").alpha_mode == "ignore"
    with pytest.raises(CheckpointError, match="alpha_mode"):
        LoraSpec("x.safetensors", alpha_mode="rank")


@pytest.mark.parametrize("tensors, message", [
    ({"diffusion_model.blocks.0.self_attn.zz.lora_down.weight": torch.zeros(4, 32),
      "diffusion_model.blocks.0.self_attn.zz.lora_up.weight": torch.zeros(32, 4)},
     "'diffusion_model.blocks.0.self_attn.zz.lora_down.weight' names no parameter"),
    ({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 32)}, "has no up partner"),
    ({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 30),
      "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(32, 4)}, "does not fit blocks.0.self_attn.q"),
    ({"diffusion_model.blocks.0.self_attn.q.hada_w1_a": torch.zeros(4, 32)}, "unknown LoRA key"),
    ({"diffusion_model.blocks.7.self_attn.q.diff": torch.zeros(32, 32)}, "blocks.7.self_attn.q.diff' names no"),
])
def test_bad_lora_keys_are_named(tmp_path, checkpoint, tensors, message):
    cfg, _, files = checkpoint
    save_file(tensors, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match=message) as exc:
        load_dit_streaming(files, cfg, lora=[LoraSpec(tmp_path / "bad.safetensors")])
    assert "bad.safetensors" in str(exc.value)

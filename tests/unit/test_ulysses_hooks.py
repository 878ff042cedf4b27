"""Sequence parallelism is applied from outside (issue #28 item 3): the DiT's code knows nothing of it.

``avatarv.distributed.apply_ulysses`` hooks the model's parameter-free stages (``tokens_in``, ``audio_context``,
``tokens_out``) and wraps the self-attentions; on one gloo rank the hooked model equals the plain one, and
``remove_ulysses`` gives the plain model back. The 2-rank parity tests are in tests/integration/test_distributed.py.
"""

from __future__ import annotations

import inspect
import re

import pytest
import torch
import torch.distributed as dist

from avatarv.config import DiTConfig
from avatarv.models.dit import RefInputs, RefKVCache, VideoRefDiT
from avatarv.models.dit import model as dit_model

CFG = DiTConfig(dim=32, num_heads=4, num_layers=2, ffn_dim=48, latent_channels=4, cond_channels=8, text_dim=8,
                freq_dim=16, audio_dim=6, motion_dim=5, audio_positions=True)

FORBIDDEN = re.compile(r"sequence_parallel|ulysses|shard|gather|frame_valid|\bsp\b|all_to_all|distributed",
                       re.IGNORECASE)


@pytest.mark.parametrize("method", ["forward", "_reference_stream", "_reference_kv", "__init__"])
def test_dit_code_does_not_mention_sequence_parallelism(method):
    source = inspect.getsource(getattr(VideoRefDiT, method))
    assert not FORBIDDEN.findall(source), (method, FORBIDDEN.findall(source))


def test_dit_module_has_no_parallel_state():
    assert "sequence_parallel" not in inspect.getsource(dit_model)
    assert not hasattr(VideoRefDiT(CFG), "sequence_parallel")
    stages = [VideoRefDiT(CFG).get_submodule(n) for n in ("tokens_in", "tokens_out", "audio_context")]
    assert all(not list(s.parameters()) for s in stages)  # the stages add no weights: checkpoints unchanged


def _model() -> VideoRefDiT:
    torch.manual_seed(0)
    model = VideoRefDiT(CFG)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def _inputs(frames: int = 3):
    g = torch.Generator().manual_seed(1)
    ref = RefInputs(torch.randn(1, 4, 3, 6, 8, generator=g), torch.randn(1, 3, 5, generator=g),
                    torch.tensor([[True, False, True]]))
    kw = dict(x=torch.randn(2, 4, frames, 6, 8, generator=g), t=torch.rand(2, generator=g),
              text=torch.randn(2, 5, 8, generator=g), cond=torch.randn(2, 8, frames, 6, 8, generator=g),
              audio=torch.randn(2, frames, 4, 6, generator=g), motion=torch.randn(2, frames, 5, generator=g))
    return kw, ref


@pytest.fixture
def one_rank(tmp_path):
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_hooks_on_one_rank_equal_the_plain_model_and_come_off(one_rank):
    from avatarv.distributed import UlyssesAttention, apply_ulysses, remove_ulysses

    model = _model()
    kw, ref = _inputs()
    with torch.no_grad():
        plain = model(**kw, ref=ref)
        apply_ulysses(model)
        assert all(isinstance(b.self_attn.attn_fn, UlyssesAttention) for b in model.blocks)
        assert model.tokens_in._forward_pre_hooks and model.tokens_out._forward_pre_hooks
        assert model.audio_context._forward_hooks
        with pytest.raises(RuntimeError, match="already"):
            apply_ulysses(model)
        cache = RefKVCache()
        hooked = model(**kw, ref=ref, ref_cache=cache)
        assert cache.key_mask is not None  # the reference stream went through the hook (all-valid mask added)
        # one rank: nothing is padded, but the gen tokens now carry an all-valid key mask (masked kernel path)
        torch.testing.assert_close(hooked.video, plain.video, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(hooked.motion, plain.motion, atol=1e-6, rtol=1e-6)
        remove_ulysses(model)
        assert not model.tokens_in._forward_pre_hooks and not model.audio_context._forward_hooks
        assert not any(isinstance(b.self_attn.attn_fn, UlyssesAttention) for b in model.blocks)
        again = model(**kw, ref=ref)
    assert torch.equal(again.video, plain.video) and torch.equal(again.motion, plain.motion)

"""Offloading is exact and keeps only what it says on the device (CPU path; the CUDA streams run in
benchmarks/gpu_check.py).

Residency is observed from inside the computation: a hook on every block's q projection notes, while that
block computes, which blocks the handle holds on the device (``resident``) and
which blocks' parameters really point at device copies (``loaded``: storage other than the host copy's) —
for the generated stream (``block(...)``) and the reference stream (``block.forward_ref(...)``) alike.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avatarv.config import DiTConfig
from avatarv.distributed.offload import offload_blocks, offload_modules
from avatarv.models.dit import RefInputs, VideoRefDiT

CFG = DiTConfig(dim=32, num_heads=2, num_layers=4, ffn_dim=48, latent_channels=16, cond_channels=20, text_dim=12,
                freq_dim=16, image_dim=10, audio_adapter="infinitetalk", audio_dim=6, audio_layers=2,
                audio_hidden_dim=8, audio_token_dim=12, audio_context_tokens=4)


def tiny_model() -> VideoRefDiT:
    torch.manual_seed(0)
    model = VideoRefDiT(CFG).eval()
    with torch.no_grad():  # zero-initialised outputs made random: every block changes the result
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def tiny_inputs(frames: int = 2, h: int = 4, w: int = 6) -> dict:
    g = torch.Generator().manual_seed(1)
    video_frames = 1 + 4 * (frames - 1)
    return dict(
        x=torch.randn(1, 16, frames, h, w, generator=g), t=torch.tensor([0.4]),
        text=torch.randn(1, 7, CFG.text_dim, generator=g), cond=torch.randn(1, 20, frames, h, w, generator=g),
        audio=torch.randn(1, 1, video_frames, 5, CFG.audio_layers, CFG.audio_dim, generator=g),
        image=torch.randn(1, 257, CFG.image_dim, generator=g),
        ref=RefInputs(latents=torch.randn(1, 16, 2, h, w, generator=g)),
    )


def record(model) -> tuple[list, list]:
    """A forward pre-hook on every block's q projection (run by both streams, the last reference block
    included) records (block, resident, loaded) while that block computes; the handle goes in the box."""
    log, box = [], []

    def recorder(index: int):
        def hook(module, args):
            handle = box[0]
            n = len(handle.blocks)
            log.append((index, handle.resident, tuple(i for i in range(n) if handle.loaded(i))))

        return hook

    for i, block in enumerate(model.blocks):
        block.self_attn.q.register_forward_pre_hook(recorder(i))
    return log, box


@pytest.mark.parametrize("prefetch", [0, 1, 2])
def test_block_offload_is_bitwise_exact_and_bounded(prefetch):
    model = tiny_model()
    args = tiny_inputs()
    with torch.no_grad():
        want = model(**args).video
        want_kv, _ = model.compute_ref_kv(args["ref"])
    log, box = record(model)
    handle = offload_blocks(model, "cpu", prefetch=prefetch)
    box.append(handle)
    with torch.no_grad():
        got = model(**args).video  # reference stream (forward_ref) then generated stream (block calls)
        got_again = model(**args).video
        kv, _ = model.compute_ref_kv(args["ref"])
    assert torch.equal(got, want) and torch.equal(got_again, want)
    assert all(torch.equal(a, b) for pair, want_pair in zip(kv, want_kv, strict=True)
               for a, b in zip(pair, want_pair, strict=True))
    n = CFG.num_layers
    # 3 reference passes (two forwards + compute_ref_kv) and 2 generated passes, each block once per pass
    assert [i for i, _, _ in log] == list(range(n)) * 5
    for i, resident, loaded in log:
        expected = tuple(sorted({(i + j) % n for j in range(prefetch + 1)}))
        assert resident == expected, (i, resident)
        assert len(resident) <= prefetch + 1
        assert loaded == resident  # the bookkeeping is the tensors' truth, and block i computes on its copy
    handle.remove()


def test_blocks_are_dropped_between_uses_and_rest_stays():
    model = tiny_model()
    handle = offload_blocks(model, "cpu", prefetch=1)
    assert handle.resident == () and not any(handle.loaded(i) for i in range(CFG.num_layers))
    with torch.no_grad():
        model(**tiny_inputs())
    assert handle.resident == (0,)  # the last block prefetched block 0 for the next call (wrap-around)
    assert handle.loaded(0) and not any(handle.loaded(i) for i in range(1, CFG.num_layers))
    handle.remove()


def test_remove_restores_the_model():
    model = tiny_model()
    params = dict(model.named_parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    handle = offload_blocks(model, "cpu")
    with pytest.raises(RuntimeError, match="already"):
        offload_blocks(model, "cpu")
    with torch.no_grad():
        model(**tiny_inputs())
    handle.remove()
    assert dict(model.named_parameters()) == params  # the same Parameter objects
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    for block in model.blocks:
        assert not block._forward_pre_hooks and not block._forward_hooks
        assert "forward_ref" not in block.__dict__
    offload_blocks(model, "cpu").remove()  # can be applied again


def test_remove_keeps_an_earlier_forward_ref_wrapper():
    """A forward_ref wrapper attached before (as FSDP2's register_fsdp_forward_method does) comes back."""
    model = tiny_model()
    block = model.blocks[0]
    earlier = block.forward_ref
    block.forward_ref = earlier  # now an instance attribute
    offload_blocks(model, "cpu").remove()
    assert block.__dict__["forward_ref"] is earlier


def test_block_offload_refuses_autograd():
    model = tiny_model()
    handle = offload_blocks(model, "cpu")
    with pytest.raises(RuntimeError, match="inference"):
        model(**tiny_inputs())
    assert handle.resident == ()  # the failed call left nothing on the device
    handle.remove()
    model.requires_grad_(False)
    handle = offload_blocks(model, "cpu")
    model(**tiny_inputs())  # frozen weights: allowed with grad mode on
    handle.remove()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where CUDA is absent")
def test_cuda_request_without_cuda_is_refused():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        offload_blocks(tiny_model(), "cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        offload_modules({"a": nn.Linear(2, 2)}, "cuda")


def test_module_offload_loads_only_inside_use():
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))
    norm = nn.BatchNorm1d(4).eval()  # has buffers
    dit = tiny_model()
    x = torch.randn(3, 8)
    args = tiny_inputs()
    with torch.no_grad():
        want_enc = norm(enc(x))
        want_dit = dit(**args).video
    offloader = offload_modules({"enc": enc, "norm": norm, "dit": dit}, "cpu")
    assert offloader.resident == () and not any(offloader.loaded(n) for n in ("enc", "norm", "dit"))
    with torch.no_grad():
        with offloader.use("enc", "norm") as (e, nm):
            assert offloader.resident == ("enc", "norm")
            assert offloader.loaded("enc") and offloader.loaded("norm") and not offloader.loaded("dit")
            with offloader.use("enc"):  # nested: still held by the outer use after this one ends
                pass
            assert offloader.loaded("enc")
            got_enc = nm(e(x))
        assert offloader.resident == () and not offloader.loaded("enc") and not offloader.loaded("norm")
        with offloader.use("dit") as d:
            assert offloader.resident == ("dit",)
            got_dit = d(**args).video
    assert torch.equal(got_enc, want_enc) and torch.equal(got_dit, want_dit)
    with pytest.raises(KeyError, match="no offloaded module named vae"):
        with offloader.use("vae"):
            pass
    try:
        with offloader.use("enc"):
            raise ValueError("boom")
    except ValueError:
        pass
    assert offloader.resident == () and not offloader.loaded("enc")  # dropped on the way out of an error
    offloader.remove()
    assert next(enc.parameters()).device.type == "cpu"

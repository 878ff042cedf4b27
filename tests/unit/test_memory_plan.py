"""The memory plan's arithmetic against numbers written out by hand, its encoder sizes against the public
architectures built on the meta device, and its activation estimate against the live bytes of a real forward."""

from __future__ import annotations

import json
import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from avatarv.config import DiTConfig
from avatarv.distributed import memory_plan as mp
from avatarv.models.dit import VideoRefDiT

TINY = DiTConfig(dim=12, num_heads=2, num_layers=2, ffn_dim=16, latent_channels=16, cond_channels=20, text_dim=4,
                 freq_dim=4, image_dim=4, audio_adapter="infinitetalk", audio_dim=3, audio_layers=2,
                 audio_hidden_dim=5, audio_context_tokens=2, audio_token_dim=6)


def test_tiny_dit_parameters_counted_by_hand():
    # one block (D = 12, F = 16): modulation 6·12 = 72; self-attention q, k, v, o 4·(144 + 12) + RMS norms 24 = 648;
    # cross_attn_norm 24; cross-attention 624 + norms 24 + k_img, v_img 312 + norm_k_img 12 = 972; norm_x 24;
    # audio_cross_attn q_linear 156 + kv_linear 6·24 + 24 = 168 + proj 156 = 480; ffn 12·16 + 16 + 16·12 + 12 = 412
    block = 72 + 648 + 24 + 972 + 24 + 480 + 412
    assert block == 2632
    block_linear = 4 * 144 + 4 * 144 + 2 * 144 + (144 + 144 + 144) + 2 * 192
    # the rest: ref_embedding 12; patch conv 36·4·12 + 12; text MLP 4·12 + 12 + 144 + 12; time MLP the same;
    # time projection 12·72 + 72; CLIP branch LN 8 + 16 + 4 + 48 + 12 + LN 24; head 24 + 12·64 + 64;
    # audio_proj proj1 (5·2·3 → 5) 155, proj1_vf (8·2·3 → 5) 245, proj2 30, proj3 (5 → 2·6) 72, LayerNorm 12
    rest = 12 + 1740 + 216 + 216 + 936 + 112 + 856 + 514
    rest_linear = (48 + 144) * 2 + 864 + (16 + 48) + 768 + (150 + 240 + 25 + 60)
    p = mp.dit_parameters(TINY)
    assert (p.total, p.per_block, p.blocks, p.rest) == (rest + 2 * block, block, 2 * block, rest) == (9866, 2632, 5264,
                                                                                                      4602)
    assert (p.block_linear_weights, p.linear_weights) == (block_linear, rest_linear + 2 * block_linear) == (2256, 7067)
    assert p.bytes("bf16") == 2 * 9866
    # fp8: Linear weights 1 byte, the rest bf16
    assert p.block_bytes("fp8") == 2256 + 2 * (2632 - 2256) == 3008
    assert p.rest_bytes("fp8") == 2555 + 2 * (4602 - 2555) == 6649
    assert p.bytes("fp8") == 6649 + 2 * 3008


def test_infinitetalk_14b_counts():
    cfg = mp.infinitetalk_config("wan-14b")
    assert (cfg.dim, cfg.num_layers, cfg.ffn_dim, cfg.num_heads) == (5120, 40, 13824, 40)
    p = mp.dit_parameters(cfg)
    assert p.total == VideoRefDiT.count_parameters(cfg) == 18_882_051_904
    # InfiniteTalk's per-block adapter: norm_x 2D, q_linear D² + D, kv_linear 768·2D + 2D, proj D² + D
    d = 5120
    adapter = 2 * d + (d * d + d) + (768 * 2 * d + 2 * d) + (d * d + d)
    # audio_proj: 5·12·768 → 512, 8·12·768 → 512, 512 → 512, 512 → 32·768 (with biases), LayerNorm 2·768
    audio_proj = (46080 * 512 + 512) + (73728 * 512 + 512) + (512 * 512 + 512) + (512 * 24576 + 24576) + 1536
    assert audio_proj == 74_214_400
    wan_i2v = p.total - 40 * adapter - audio_proj - d  # and avatarv's ref_embedding
    assert wan_i2v == 16_394_878_784  # Wan2.1-I2V-14B (~16.4 B)
    diffusers = pytest.importorskip("diffusers")
    with torch.device("meta"):  # diffusers' Wan2.1-I2V-14B transformer config
        wan = diffusers.WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=36, out_channels=16,
            text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
            qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=1280, added_kv_proj_dim=5120)
    assert sum(q.numel() for q in wan.parameters()) == wan_i2v


def test_resolution_tokens():
    r480, r720 = mp.RESOLUTIONS
    assert (r480.latent_frames, r480.latent_size, r480.tokens_per_frame, r480.tokens) == (21, (60, 104), 1560, 32760)
    assert (r720.latent_frames, r720.latent_size, r720.tokens_per_frame, r720.tokens) == (21, (90, 160), 3600, 75600)


def test_activation_arithmetic_14b_480p():
    cfg = mp.infinitetalk_config("wan-14b")
    r480 = mp.RESOLUTIONS[0]
    # attention stage 11·5120 = 56320 > FFN stage 4·5120 + 2·13824 = 48128 elements per token
    assert mp.block_activation_bytes(cfg, 32760) == 32760 * 56320 * 2 == 3_690_086_400
    parts = mp.dit_activation_bytes(cfg, r480, speakers=2)
    assert parts["stream"] == 2 * 32760 * 5120 * 2  # the block's input and the forward's embedded tokens
    assert parts["rope"] == 2 * 32760 * 64 * 4 + 32760 * 3 * 8
    assert parts["contexts"] == (512 + 257) * 5120 * 2 + 21 * 32 * 2 * 768 * 2
    assert parts["lrope_map"] == 2 * 20 * 32760 * 1560 * 2
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
    wan13 = mp.infinitetalk_config("wan-1.3b")  # FFN-bound: 4·1536 + 2·8960 = 24064 > 11·1536 = 16896
    assert mp.block_activation_bytes(wan13, 100) == 100 * 24064 * 2


def test_modes_on_hand_numbers():
    params = mp.DiTParams(total=1000, blocks=800, per_block=200, linear_weights=900, block_linear_weights=180)
    encoders = (mp.ModuleSize("t5", 300, "bf16", ""), mp.ModuleSize("vae", 50, "fp32", ""))
    res = mp.Resolution("x", 64, 64, frames=5)  # 2 latent frames of 4·4 tokens: 32 tokens
    cfg = DiTConfig(dim=12, num_heads=2, num_layers=4, ffn_dim=16, audio_adapter="infinitetalk", audio_dim=3,
                    audio_context_tokens=2, audio_token_dim=6)
    act = mp.dit_activation_bytes(cfg, res)["total"]
    # stream 2·32·12·2 = 1536; block 32·max(132, 48 + 32)·2 = 8448; rope 2·32·3·4 + positions 32·3·8 = 1536;
    # contexts 769·12·2 + audio 2 frames · 2 tokens · 6 · 2
    assert act == 1536 + 8448 + 1536 + 18456 + 48 == 30024
    none = mp.memory_plan(cfg, res, "bf16", "none", params=params, encoders=encoders)
    assert (none.weights_on_device, none.peak, none.host, none.peak_stage) == (2000 + 600 + 200, 2800 + act, 0, "dit")
    model = mp.memory_plan(cfg, res, "bf16", "model", params=params, encoders=encoders)
    assert (model.weights_on_device, model.peak, model.host) == (2000, 2000 + act, 2800)
    blocks = mp.memory_plan(cfg, res, "bf16", "blocks", prefetch=1, params=params, encoders=encoders)
    assert blocks.weights_on_device == 2 * 200 + 2 * 400  # the rest + 2 of the 4 blocks
    fp8 = mp.memory_plan(cfg, res, "fp8", "blocks", prefetch=2, params=params, encoders=encoders)
    assert fp8.weights_on_device == (180 + 2 * 20) + 3 * (180 + 2 * 20)  # the rest's 180 Linear weights in 1 byte
    big_t5 = (mp.ModuleSize("t5", 10**6, "bf16", ""),)
    plan = mp.memory_plan(cfg, res, "bf16", "blocks", params=params, encoders=big_t5)
    assert (plan.peak, plan.peak_stage) == (2 * 10**6, "t5")  # the largest stage sets the peak
    with pytest.raises(ValueError, match="mode"):
        mp.memory_plan(cfg, res, mode="disk", params=params)


def test_encoder_sizes_by_hand_and_against_public_architectures():
    # UMT5-XXL encoder: 256384·4096 + 24·(4·4096·4096 + 32·64 + 3·4096·10240 + 2·4096) + 4096
    assert mp.umt5_encoder_parameters(256384, 4096, 10240, 24, 64, 64, 32) == 5_680_910_336
    # CLIP ViT-H/14: conv 3·14·14·1280, class 1280, positions 257·1280, pre-LN 2560, 32 × 19_677_440, post-LN 2560
    assert mp.clip_vision_parameters(1280, 32, 5120, 14, 224) == 752_640 + 1280 + 328_960 + 2560 + 32 * 19_677_440 + 2560
    sizes = {e.name: e.params for e in mp.ENCODERS}
    assert sizes["t5"] == 5_680_910_336 and sizes["clip"] == 630_766_080
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        t5 = transformers.UMT5EncoderModel(transformers.UMT5Config(
            vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
            feed_forward_proj="gated-gelu", relative_attention_num_buckets=32))
        clip = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(
            hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, patch_size=14,
            image_size=224))
        wav2vec = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config())
    assert sum(p.numel() for p in t5.parameters()) == sizes["t5"]
    assert sum(p.numel() for p in clip.parameters()) == sizes["clip"]
    assert sum(p.numel() for p in wav2vec.parameters()) == sizes["wav2vec"]
    diffusers = pytest.importorskip("diffusers")
    with torch.device("meta"):
        vae = diffusers.AutoencoderKLWan()
    assert sum(p.numel() for p in vae.parameters()) == sizes["vae"]


class LiveBytes(TorchDispatchMode):
    """Counts the bytes of tensors created inside the mode while they are alive; ``peak`` is the maximum."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = self.peak = 0

    def _freed(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key, size = storage.data_ptr(), storage.nbytes()
                if size and key not in self.live:  # views share their base's storage: counted once
                    self.live[key] = size
                    self.current += size
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(t, self._freed, key)
        return out


@pytest.mark.parametrize("ffn_dim", [346, 1024])  # attention-bound (F/D = 2.7, as 14B) and FFN-bound (F/D = 8)
def test_activation_estimate_matches_live_bytes_of_a_forward(ffn_dim):
    """The whole InfiniteTalk-layout DiT forward in bf16 (one speaker): the live bytes at its peak are the plan's
    estimate within 5 % — the estimate breaks when the block's memory behaviour changes."""
    cfg = DiTConfig(dim=128, num_heads=2, num_layers=2, ffn_dim=ffn_dim, latent_channels=16, cond_channels=20,
                    text_dim=16, freq_dim=32, image_dim=16, audio_adapter="infinitetalk", audio_dim=8, audio_layers=2,
                    audio_hidden_dim=16, audio_context_tokens=4, audio_token_dim=16, attn_backend="sdpa")
    res = mp.Resolution("t", 16 * 22, 16 * 22, frames=9)  # 3 latent frames × 22·22 tokens = 1452 tokens
    f = res.latent_frames
    h, w = res.latent_size
    torch.manual_seed(0)
    model = VideoRefDiT(cfg).to(torch.bfloat16).eval()
    g = torch.Generator().manual_seed(0)
    bf = dict(dtype=torch.bfloat16)
    inputs = dict(
        x=torch.randn(1, 16, f, h, w, generator=g).to(**bf), t=torch.tensor([0.5]),
        text=torch.randn(1, mp.TEXT_TOKENS, 16, generator=g).to(**bf),
        cond=torch.randn(1, 20, f, h, w, generator=g).to(**bf),
        audio=torch.randn(1, 1, 1 + 4 * (f - 1), 5, 2, 8, generator=g).to(**bf),
        image=torch.randn(1, mp.CLIP_TOKENS, 16, generator=g).to(**bf),
    )
    with torch.no_grad():
        counter = LiveBytes()
        with counter:
            model(**inputs)
    estimate = mp.dit_activation_bytes(cfg, res)["total"]
    assert 0.95 <= counter.peak / estimate <= 1.05, (counter.peak, estimate)


def test_printer_prints_table_and_one_json_line(capsys):
    record = mp.main([])
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1]) == json.loads(json.dumps(record))
    plans = record["plans"]
    assert len(plans) == 2 * 2 * 3  # resolutions × DiT dtypes × modes
    by_key = {(p["resolution"], p["dit_dtype"], p["mode"]): p for p in plans}
    for res in ("480p", "720p"):
        for dtype in ("bf16", "fp8"):
            none, model, blocks = (by_key[(res, dtype, m)] for m in mp.MODES)
            assert none["peak"] > model["peak"] >= blocks["peak"]
            assert none["peak_2_speakers"] >= none["peak"]
    assert by_key[("480p", "bf16", "model")]["weights_on_device"] == round(18_882_051_904 * 2 / 2**30, 2)

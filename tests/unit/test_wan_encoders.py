"""InfiniteTalk / Wan2.1 encoder loaders on tiny random models written in the exact published layouts.

Wan's own modules are transcribed minimally below (``wan/modules/t5.py`` ``T5Encoder``, ``wan/modules/clip.py``
``VisionTransformer``, the module tree of ``wan/modules/vae.py`` ``WanVAE_``) so the key tables are checked
against Wan's real names and maths, not against their own inverse.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from avatarv.errors import CheckpointError

torch.set_num_threads(2)


# ============================================================== wav2vec2 front end (InfiniteTalk)
@pytest.fixture(scope="module")
def wav2vec_dir(tmp_path_factory):
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                         conv_dim=(16,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_extract_norm="group",
                         do_stable_layer_norm=False)  # chinese-wav2vec2-base's kind (post-LN encoder)
    folder = tmp_path_factory.mktemp("chinese-wav2vec2-base")
    Wav2Vec2Model(cfg).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(folder)
    return folder


def _speech(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(len(t)))


def _infinitetalk_forward(model, audio16k: np.ndarray, seq_len: int) -> torch.Tensor:
    """get_embedding + InfiniteTalk's Wav2Vec2Model.forward, written out on a post-LN encoder."""
    x = torch.from_numpy(((audio16k - audio16k.mean()) / np.sqrt(audio16k.var() + 1e-7)).astype(np.float32))[None]
    feats = model.feature_extractor(x).transpose(1, 2)  # [1, T50, C]
    feats = F.interpolate(feats.transpose(1, 2), size=seq_len, align_corners=True, mode="linear").transpose(1, 2)
    h, _ = model.feature_projection(feats)  # [1, F, D]
    enc = model.encoder
    h = enc.layer_norm(h + enc.pos_conv_embed(h))
    layers = []
    for layer in enc.layers:
        h = layer(h, attention_mask=None)
        h = h[0] if isinstance(h, tuple) else h
        layers.append(h)
    return torch.stack(layers, dim=1)[0].transpose(0, 1)  # [L, F, D] → [F, L, D]


def test_wav2vec_embed_matches_infinitetalk_forward(wav2vec_dir):
    from avatarv.models.encoders.infinitetalk_audio import InfiniteTalkAudioEncoder

    enc = InfiniteTalkAudioEncoder(wav2vec_dir)
    audio = _speech(1.3)  # 20800 samples: 65 CNN frames at 50 Hz → 32 video frames
    emb = enc.embed(audio)
    assert emb.shape == (32, 3, 32)  # [frames, layers, hidden]
    with torch.no_grad():
        ref = _infinitetalk_forward(enc.model, audio, 32)
    torch.testing.assert_close(emb, ref, atol=1e-5, rtol=1e-5)
    other = enc.embed(audio, num_frames=20)  # the interpolation happens before the transformer
    assert other.shape == (20, 3, 32)
    with torch.no_grad():
        torch.testing.assert_close(other, _infinitetalk_forward(enc.model, audio, 20), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(other[-1], emb[-1], atol=1e-3)
    # the hook is gone after the call: the plain model gives native-rate features again
    assert enc.model(torch.zeros(1, 16000), output_hidden_states=True).hidden_states[1].shape[1] == 49


def test_loudness_prepare_hits_minus_23_lufs():
    import pyloudnorm

    from avatarv.models.encoders.infinitetalk_audio import InfiniteTalkAudioEncoder, loudness_normalise

    stereo = np.stack([_speech(3.0, 44100) * 0.05, _speech(3.0, 44100, seed=1) * 0.05], axis=1)  # quiet
    out = InfiniteTalkAudioEncoder.prepare(stereo, 44100)
    assert out.ndim == 1 and abs(len(out) - 48000) <= 1
    assert abs(pyloudnorm.Meter(16000).integrated_loudness(out) - (-23.0)) < 0.5
    silent = np.zeros(16000)
    np.testing.assert_array_equal(loudness_normalise(silent), silent)  # −inf LUFS: unchanged
    short = _speech(0.2)
    np.testing.assert_array_equal(loudness_normalise(short), short)  # under one 0.4 s block: unchanged


def test_windows_match_per_frame_loop_with_clamped_ends():
    from avatarv.models.encoders.infinitetalk_audio import audio_windows

    emb = torch.randn(9, 3, 4)  # [T, layers, D]
    frames = [0, 1, 4, 7, 8]
    got = audio_windows(emb, frames)
    assert got.shape == (5, 5, 3, 4)
    for i, f in enumerate(frames):
        for j, off in enumerate(range(-2, 3)):
            torch.testing.assert_close(got[i, j], emb[min(max(f + off, 0), 8)], rtol=0, atol=0)


def test_two_speakers_add_and_para():
    from avatarv.models.encoders.infinitetalk_audio import combine_speakers

    a, b = np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0])
    s1, s2, total = combine_speakers(a, b, "add")
    np.testing.assert_array_equal(s1, [1, 2, 3, 0, 0])
    np.testing.assert_array_equal(s2, [0, 0, 0, 10, 20])
    np.testing.assert_array_equal(total, [1, 2, 3, 10, 20])
    s1, s2, total = combine_speakers(a, np.array([10.0, 20.0, 30.0]), "para")
    np.testing.assert_array_equal(total, [11, 22, 33])
    s1, s2, total = combine_speakers(None, b, "para")
    np.testing.assert_array_equal(s1, [0, 0])
    np.testing.assert_array_equal(total, b)


# ============================================================== UMT5 (Wan T5Encoder transcribed)
class WanT5LayerNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.float().pow(2).mean(dim=-1, keepdim=True) + self.eps))


class WanT5Attention(nn.Module):
    def __init__(self, dim, dim_attn, num_heads):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim_attn // num_heads
        self.q, self.k = nn.Linear(dim, dim_attn, bias=False), nn.Linear(dim, dim_attn, bias=False)
        self.v, self.o = nn.Linear(dim, dim_attn, bias=False), nn.Linear(dim_attn, dim, bias=False)

    def forward(self, x, mask, pos_bias):
        b, n, c = x.size(0), self.num_heads, self.head_dim
        q, k, v = (p(x).view(b, -1, n, c) for p in (self.q, self.k, self.v))
        bias = x.new_zeros(b, n, q.size(1), k.size(1)) + pos_bias
        bias.masked_fill_(mask.view(b, 1, 1, -1) == 0, torch.finfo(x.dtype).min)
        attn = F.softmax((torch.einsum("binc,bjnc->bnij", q, k) + bias).float(), dim=-1)  # no scaling (T5)
        return self.o(torch.einsum("bnij,bjnc->binc", attn, v).reshape(b, -1, n * c))


class WanT5FeedForward(nn.Module):
    def __init__(self, dim, dim_ffn):
        super().__init__()
        gelu = nn.GELU(approximate="tanh")  # Wan's GELU class: the tanh formula
        self.gate = nn.Sequential(nn.Linear(dim, dim_ffn, bias=False), gelu)
        self.fc1, self.fc2 = nn.Linear(dim, dim_ffn, bias=False), nn.Linear(dim_ffn, dim, bias=False)

    def forward(self, x):
        return self.fc2(self.fc1(x) * self.gate(x))


class WanT5RelativeEmbedding(nn.Module):
    def __init__(self, num_buckets, num_heads, max_dist=128):
        super().__init__()
        self.num_buckets, self.max_dist = num_buckets, max_dist
        self.embedding = nn.Embedding(num_buckets, num_heads)

    def forward(self, lq, lk):
        rel_pos = torch.arange(lk).unsqueeze(0) - torch.arange(lq).unsqueeze(1)
        num_buckets = self.num_buckets // 2  # bidirectional
        buckets = (rel_pos > 0).long() * num_buckets
        rel_pos = torch.abs(rel_pos)
        max_exact = num_buckets // 2
        large = max_exact + (torch.log(rel_pos.float() / max_exact) / math.log(self.max_dist / max_exact)
                             * (num_buckets - max_exact)).long()
        large = torch.min(large, torch.full_like(large, num_buckets - 1))
        buckets = buckets + torch.where(rel_pos < max_exact, rel_pos, large)
        return self.embedding(buckets).permute(2, 0, 1).unsqueeze(0)  # [1, N, Lq, Lk]


class WanT5Block(nn.Module):
    def __init__(self, dim, dim_attn, dim_ffn, num_heads, num_buckets):
        super().__init__()
        self.norm1, self.attn = WanT5LayerNorm(dim), WanT5Attention(dim, dim_attn, num_heads)
        self.norm2, self.ffn = WanT5LayerNorm(dim), WanT5FeedForward(dim, dim_ffn)
        self.pos_embedding = WanT5RelativeEmbedding(num_buckets, num_heads)  # shared_pos=False (umt5)

    def forward(self, x, mask):
        x = x + self.attn(self.norm1(x), mask, self.pos_embedding(x.size(1), x.size(1)))
        return x + self.ffn(self.norm2(x))


class WanT5Encoder(nn.Module):
    def __init__(self, vocab=16, dim=16, dim_attn=16, dim_ffn=24, num_heads=4, num_layers=2, num_buckets=32):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList([WanT5Block(dim, dim_attn, dim_ffn, num_heads, num_buckets)
                                     for _ in range(num_layers)])
        self.norm = WanT5LayerNorm(dim)

    def forward(self, ids, mask):
        x = self.token_embedding(ids)
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)


WORDS = "a photo of cat dog woman man talking speaks the to".split()
LONG = "a woman talking to the cat the man speaks to a dog a photo of the cat talking to the woman"  # 21 words
PROMPTS = ["a woman talking to the cat", "the   man speaks", LONG]


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


@pytest.fixture(scope="module")
def wan_t5(tmp_path_factory):
    """A Wan checkpoint folder: models_t5_umt5-xxl-enc-bf16.pth + google/umt5-xxl/ tokenizer."""
    from avatarv.models.encoders.umt5 import T5_PTH_NAME, T5_TOKENIZER_DIR

    torch.manual_seed(1)
    wan = WanT5Encoder().eval()
    for p in wan.parameters():
        nn.init.normal_(p, std=0.5)
    folder = tmp_path_factory.mktemp("wan_t5")
    torch.save(wan.state_dict(), folder / T5_PTH_NAME)
    _tiny_tokenizer().save_pretrained(folder / T5_TOKENIZER_DIR)
    return wan, folder


def test_umt5_from_wan_pth_matches_wan_t5_encoder(wan_t5):
    from avatarv.models.encoders.umt5 import load_umt5_encoder

    wan, folder = wan_t5
    enc = load_umt5_encoder(folder, text_len=24)
    out = enc.encode(PROMPTS)
    tokens = _tiny_tokenizer()(["a woman talking to the cat", "the man speaks", LONG], padding="max_length",
                               max_length=24, truncation=True, return_tensors="pt")
    with torch.no_grad():
        ref = wan(tokens.input_ids, tokens.attention_mask)  # [B, 24, 16]
    assert [o.shape for o in out] == [(7, 16), (4, 16), (22, 16)]  # true length incl. </s>
    for o, r, n in zip(out, ref, tokens.attention_mask.sum(1).tolist(), strict=True):
        torch.testing.assert_close(o, r[:n], atol=1e-5, rtol=1e-5)


def test_umt5_diffusers_layout_equals_wan_layout(wan_t5, tmp_path):
    from avatarv.models.encoders.umt5 import load_umt5_encoder

    _, folder = wan_t5
    from_pth = load_umt5_encoder(folder / "models_t5_umt5-xxl-enc-bf16.pth", text_len=24)
    from_pth.model.save_pretrained(tmp_path / "text_encoder")  # diffusers pipeline layout
    _tiny_tokenizer().save_pretrained(tmp_path / "tokenizer")
    from_dir = load_umt5_encoder(tmp_path, text_len=24)
    for a, b in zip(from_pth.encode(PROMPTS), from_dir.encode(PROMPTS), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_umt5_missing_and_unexpected_keys_are_named(wan_t5, tmp_path):
    from avatarv.models.encoders.umt5 import T5_PTH_NAME, load_umt5_encoder

    wan, folder = wan_t5
    (tmp_path / "google").symlink_to(folder / "google")
    state = dict(wan.state_dict())
    del state["blocks.1.ffn.fc2.weight"]
    torch.save(state, tmp_path / T5_PTH_NAME)
    with pytest.raises(CheckpointError, match=r"missing 1 keys: blocks\.1\.ffn\.fc2\.weight") as err:
        load_umt5_encoder(tmp_path)
    assert T5_PTH_NAME in str(err.value)
    state = {**wan.state_dict(), "blocks.0.attn.extra.weight": torch.zeros(2)}
    torch.save(state, tmp_path / T5_PTH_NAME)
    with pytest.raises(CheckpointError, match=r"unexpected 1 keys: blocks\.0\.attn\.extra\.weight") as err:
        load_umt5_encoder(tmp_path)
    assert T5_PTH_NAME in str(err.value)


# ============================================================== CLIP vision (Wan VisionTransformer transcribed)
class WanViTBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-5), nn.LayerNorm(dim, eps=1e-5)
        self.attn = nn.Module()
        self.attn.to_qkv, self.attn.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(0.0))

    def self_attn(self, x):
        b, s, c = x.shape
        q, k, v = self.attn.to_qkv(x).view(b, s, 3, self.heads, c // self.heads).unbind(2)  # [B, S, N, d]
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.attn.proj(out.transpose(1, 2).reshape(b, s, c))

    def forward(self, x):
        x = x + self.self_attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class WanVisionTransformer(nn.Module):
    def __init__(self, image_size=28, patch_size=14, dim=32, heads=4, layers=3, out_dim=8):
        super().__init__()
        self.patch_embedding = nn.Conv2d(3, dim, patch_size, stride=patch_size, bias=False)  # pre_norm → no bias
        self.cls_embedding = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, (image_size // patch_size) ** 2 + 1, dim))
        self.pre_norm = nn.LayerNorm(dim, eps=1e-5)
        self.transformer = nn.Sequential(*[WanViTBlock(dim, heads) for _ in range(layers)])
        self.post_norm = nn.LayerNorm(dim, eps=1e-5)
        self.head = nn.Parameter(torch.randn(dim, out_dim))

    def forward(self, x, use_31_block=False):
        x = self.patch_embedding(x).flatten(2).permute(0, 2, 1)
        x = torch.cat([self.cls_embedding.expand(x.size(0), -1, -1), x], dim=1) + self.pos_embedding
        x = self.pre_norm(x)
        return self.transformer[:-1](x) if use_31_block else self.transformer(x)


def _wan_clip_preprocess(images: torch.Tensor, size: int) -> torch.Tensor:
    """CLIPModel.visual: bicubic resize, [-1, 1] → [0, 1], open-clip normalisation."""
    x = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False).mul(0.5).add(0.5)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    return (x - mean) / std


@pytest.fixture(scope="module")
def wan_clip(tmp_path_factory):
    from avatarv.models.encoders.clip_vision import CLIP_PTH_NAME

    torch.manual_seed(2)
    visual = WanVisionTransformer().eval()
    for p in visual.parameters():  # non-trivial norms and biases
        nn.init.normal_(p, std=0.3)
    state = {f"visual.{k}": v for k, v in visual.state_dict().items()}
    state.update({"textual.token_embedding.weight": torch.randn(5, 4), "textual.head.0.weight": torch.randn(4, 4),
                  "log_scale": torch.tensor(2.0)})  # the text tower Wan's file also holds
    folder = tmp_path_factory.mktemp("wan_clip")
    torch.save(state, folder / CLIP_PTH_NAME)
    return visual, folder


def test_clip_from_wan_pth_matches_wan_use_31_block(wan_clip):
    from avatarv.models.encoders.clip_vision import load_clip_vision

    visual, folder = wan_clip
    enc = load_clip_vision(folder, num_heads=4)
    assert sorted(enc.skipped) == ["log_scale", "textual.head.0.weight", "textual.token_embedding.weight",
                                   "visual.head"]
    images = torch.rand(2, 3, 40, 36) * 2 - 1
    got = enc.encode(images)
    assert got.shape == (2, 5, 32)  # [B, 1 + (28/14)², D]
    with torch.no_grad():
        ref = visual(_wan_clip_preprocess(images, 28), use_31_block=True)
        full = visual(_wan_clip_preprocess(images, 28))
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, full, atol=1e-3)  # the last block is really left out


def test_clip_hidden_state_choice_is_block_n_minus_1(wan_clip):
    from avatarv.models.encoders.clip_vision import load_clip_vision

    enc = load_clip_vision(wan_clip[1], num_heads=4)
    pixels = torch.randn(1, 3, 28, 28)
    m = enc.model
    with torch.no_grad():
        h = m.pre_layrnorm(m.embeddings(pixels))  # [1, 5, 32]; Wan's pre_norm before the blocks
        for layer in m.encoder.layers[:-1]:
            h = layer(h, attention_mask=None)
            h = h[0] if isinstance(h, tuple) else h
        got = m(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
    torch.testing.assert_close(got, h, atol=1e-6, rtol=1e-6)


def test_clip_diffusers_layout_equals_wan_layout(wan_clip, tmp_path):
    import json

    from transformers import CLIPVisionModelWithProjection

    from avatarv.models.encoders.clip_vision import load_clip_vision

    enc = load_clip_vision(wan_clip[1], num_heads=4)
    published = CLIPVisionModelWithProjection(enc.model.config)  # vision_model.* + visual_projection
    published.vision_model.load_state_dict(enc.model.state_dict(), strict=True)
    published.save_pretrained(tmp_path / "image_encoder")
    (tmp_path / "image_processor").mkdir()
    (tmp_path / "image_processor" / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}))
    from_dir = load_clip_vision(tmp_path)
    images = torch.rand(2, 3, 30, 50) * 2 - 1
    torch.testing.assert_close(from_dir.encode(images), enc.encode(images), rtol=0, atol=0)
    assert from_dir.skipped == ["visual_projection.weight"]
    video = torch.stack([images, -images], dim=2)  # [B, 3, T=2, H, W] as Wan's cond_image
    torch.testing.assert_close(enc.encode(video)[1::2], enc.encode(-images), rtol=1e-5, atol=1e-5)  # batch of 4 vs 2


def test_clip_missing_key_is_named(wan_clip, tmp_path):
    from avatarv.models.encoders.clip_vision import CLIP_PTH_NAME, load_clip_vision

    state = torch.load(wan_clip[1] / CLIP_PTH_NAME)
    del state["visual.transformer.1.mlp.2.bias"]
    torch.save(state, tmp_path / CLIP_PTH_NAME)
    with pytest.raises(CheckpointError, match=r"missing 1 keys: visual\.transformer\.1\.mlp\.2\.bias"):
        load_clip_vision(tmp_path, num_heads=4)


# ============================================================== VAE (.pth key table)
def _wan_vae_names(dim=8, z_dim=4, dim_mult=(1, 2, 4, 4), num_res_blocks=2, temporal=(False, True, True)):
    """Parameter names and shapes of Wan's ``WanVAE_`` (vae.py module tree; no forward needed) as ``_video_vae``
    builds it (temperal_downsample False, True, True)."""

    def conv3(i, o, k):  # CausalConv3d
        return nn.Conv3d(i, o, k)

    class RMS(nn.Module):
        def __init__(self, d, images=False):
            super().__init__()
            self.gamma = nn.Parameter(torch.ones((d, 1, 1) if images else (d, 1, 1, 1)))

    def res(i, o):
        m = nn.Module()
        m.residual = nn.Sequential(RMS(i), nn.SiLU(), conv3(i, o, 3), RMS(o), nn.SiLU(), nn.Dropout(), conv3(o, o, 3))
        if i != o:
            m.shortcut = conv3(i, o, 1)
        return m

    def attn(d):
        m = nn.Module()
        m.norm, m.to_qkv, m.proj = RMS(d, images=True), nn.Conv2d(d, 3 * d, 1), nn.Conv2d(d, d, 1)
        return m

    def resample(d, mode):
        m = nn.Module()
        if mode.startswith("up"):
            m.resample = nn.Sequential(nn.Upsample(scale_factor=2.0), nn.Conv2d(d, d // 2, 3))
            if mode == "upsample3d":
                m.time_conv = conv3(d, 2 * d, (3, 1, 1))
        else:
            m.resample = nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(d, d, 3))
            if mode == "downsample3d":
                m.time_conv = conv3(d, d, (3, 1, 1))
        return m

    enc, dec, vae = nn.Module(), nn.Module(), nn.Module()
    dims = [dim * u for u in [1, *dim_mult]]
    enc.conv1, blocks = conv3(3, dims[0], 3), []
    for i, (i_dim, o_dim) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        for _ in range(num_res_blocks):
            blocks.append(res(i_dim, o_dim))
            i_dim = o_dim
        if i != len(dim_mult) - 1:
            blocks.append(resample(o_dim, "downsample3d" if temporal[i] else "downsample2d"))
    enc.downsamples = nn.Sequential(*blocks)
    enc.middle = nn.Sequential(res(o_dim, o_dim), attn(o_dim), res(o_dim, o_dim))
    enc.head = nn.Sequential(RMS(o_dim), nn.SiLU(), conv3(o_dim, 2 * z_dim, 3))
    dims = [dim * u for u in [dim_mult[-1], *dim_mult[::-1]]]
    dec.conv1 = conv3(z_dim, dims[0], 3)
    dec.middle = nn.Sequential(res(dims[0], dims[0]), attn(dims[0]), res(dims[0], dims[0]))
    blocks = []
    for i, (i_dim, o_dim) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        if i in (1, 2, 3):
            i_dim //= 2
        for _ in range(num_res_blocks + 1):
            blocks.append(res(i_dim, o_dim))
            i_dim = o_dim
        if i != len(dim_mult) - 1:
            blocks.append(resample(o_dim, "upsample3d" if temporal[::-1][i] else "upsample2d"))
    dec.upsamples = nn.Sequential(*blocks)
    dec.head = nn.Sequential(RMS(o_dim), nn.SiLU(), conv3(o_dim, 3, 3))
    vae.encoder, vae.conv1, vae.conv2, vae.decoder = enc, conv3(2 * z_dim, 2 * z_dim, 1), conv3(z_dim, z_dim, 1), dec
    return {k: tuple(v.shape) for k, v in vae.state_dict().items()}


def _tiny_diffusers_vae():
    from diffusers import AutoencoderKLWan

    torch.manual_seed(3)
    vae = AutoencoderKLWan(base_dim=8, z_dim=4, latents_mean=[0.0] * 4, latents_std=[1.0] * 4).eval()
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # the attention projections start at zero
    return vae


def test_vae_key_table_matches_wan_module_tree():
    from avatarv.models.vae.wan_vae_pth import wan_vae_key_table

    wan = _wan_vae_names()
    ours = {k: tuple(v.shape) for k, v in _tiny_diffusers_vae().state_dict().items()}
    table = wan_vae_key_table()
    assert set(wan) <= set(table)
    mapped = {table[k]: shape for k, shape in wan.items()}
    assert mapped == ours  # a bijection with equal shapes


def test_vae_pth_roundtrip_is_bitwise(tmp_path):
    from avatarv.models.vae.wan_vae_pth import (
        VAE_PTH_NAME,
        build_wan_vae,
        video_vae_from_wan_pth,
        wan_vae_key_table,
    )

    vae = _tiny_diffusers_vae()
    inverse = {v: k for k, v in wan_vae_key_table().items()}
    torch.save({inverse[k]: v.clone() for k, v in vae.state_dict().items()}, tmp_path / VAE_PTH_NAME)
    loaded = build_wan_vae(tmp_path)
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        torch.testing.assert_close(loaded.encode(x).latent_dist.mode(), z, rtol=0, atol=0)
        torch.testing.assert_close(loaded.decode(z).sample, vae.decode(z).sample, rtol=0, atol=0)
    wrapped = video_vae_from_wan_pth(tmp_path / VAE_PTH_NAME)
    assert (wrapped.cfg.base_dim, wrapped.cfg.z_dim) == (8, 4)
    torch.testing.assert_close(wrapped.model.state_dict()["decoder.conv_out.weight"],
                               vae.state_dict()["decoder.conv_out.weight"], rtol=0, atol=0)


def test_vae_missing_key_is_named(tmp_path):
    from avatarv.models.vae.wan_vae_pth import VAE_PTH_NAME, build_wan_vae, wan_vae_key_table

    inverse = {v: k for k, v in wan_vae_key_table().items()}
    state = {inverse[k]: v for k, v in _tiny_diffusers_vae().state_dict().items()}
    del state["decoder.upsamples.4.shortcut.weight"]
    torch.save(state, tmp_path / VAE_PTH_NAME)
    with pytest.raises(CheckpointError, match=r"missing 1 keys: decoder\.upsamples\.4\.shortcut\.weight"):
        build_wan_vae(tmp_path / VAE_PTH_NAME)


# ============================================================== bad input
def test_missing_paths_raise_checkpoint_errors_naming_them(tmp_path):
    from avatarv.models.encoders.clip_vision import load_clip_vision
    from avatarv.models.encoders.infinitetalk_audio import InfiniteTalkAudioEncoder
    from avatarv.models.encoders.umt5 import load_umt5_encoder
    from avatarv.models.vae.wan_vae_pth import build_wan_vae

    nowhere = tmp_path / "nowhere"
    for load in (InfiniteTalkAudioEncoder, load_umt5_encoder, load_clip_vision, build_wan_vae):
        with pytest.raises(CheckpointError, match="nowhere"):
            load(nowhere)
    empty = tmp_path / "empty"
    empty.mkdir()
    for load in (InfiniteTalkAudioEncoder, load_umt5_encoder, load_clip_vision, build_wan_vae):
        with pytest.raises(CheckpointError, match="empty"):
            load(empty)
    (tmp_path / "corrupt.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"corrupt\.pth"):
        build_wan_vae(tmp_path / "corrupt.pth")

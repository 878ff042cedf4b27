"""InfiniteTalk's ``WanModel`` written out from its published code, as the parity reference for avatarv's DiT.

A line-by-line transcription of MeiGen-AI/InfiniteTalk ``wan/modules/multitalk_model.py`` (``rope_params``,
``rope_apply``, ``WanRMSNorm``, ``WanLayerNorm``, ``WanSelfAttention``, ``WanI2VCrossAttention``,
``WanAttentionBlock``, ``Head``, ``MLPProj``, ``AudioProjModel``, ``WanModel.forward`` without TeaCache),
``wan/modules/attention.py`` (``SingleStreamAttention``, ``SingleStreamMutiAttention``) and
``wan/utils/multitalk_utils.py`` (``get_attn_map_with_target``, ``calculate_x_ref_attn_map``,
``normalize_and_scale``, ``RotaryPositionalEmbedding1D``). Only the kernels differ: flash / xformers attention
become ``scaled_dot_product_attention`` (same maths), einops become reshapes, CUDA autocast is dropped
(fp32 here). Test code: it is not part of the package.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_embedding_1d(dim, position):
    half = dim // 2
    position = position.type(torch.float64)
    sinusoid = torch.outer(position, torch.pow(10000, -torch.arange(half).to(position).div(half)))
    return torch.cat([torch.cos(sinusoid), torch.sin(sinusoid)], dim=1)


def rope_params(max_seq_len, dim, theta=10000):
    freqs = torch.outer(torch.arange(max_seq_len),
                        1.0 / torch.pow(theta, torch.arange(0, dim, 2).to(torch.float64).div(dim)))
    return torch.polar(torch.ones_like(freqs), freqs)


def rope_apply(x, grid_sizes, freqs):
    s, n, c = x.size(1), x.size(2), x.size(3) // 2
    freqs = freqs.split([c - 2 * (c // 3), c // 3, c // 3], dim=1)
    output = []
    for i, (f, h, w) in enumerate(grid_sizes.tolist()):
        seq_len = f * h * w
        x_i = torch.view_as_complex(x[i, :s].to(torch.float64).reshape(s, n, -1, 2))
        freqs_i = torch.cat([
            freqs[0][:f].view(f, 1, 1, -1).expand(f, h, w, -1),
            freqs[1][:h].view(1, h, 1, -1).expand(f, h, w, -1),
            freqs[2][:w].view(1, 1, w, -1).expand(f, h, w, -1),
        ], dim=-1).reshape(seq_len, 1, -1)
        x_i = torch.view_as_real(x_i * freqs_i).flatten(2)
        x_i = torch.cat([x_i, x[i, seq_len:]])
        output.append(x_i)
    return torch.stack(output).float()


def flash_attention(q, k, v, k_lens=None):
    """[B, L, N, d] layout, as Wan's flash_attention (no padding in these tests)."""
    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)


class WanRMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return self._norm(x.float()).type_as(x) * self.weight

    def _norm(self, x):
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)


class WanLayerNorm(nn.LayerNorm):
    def __init__(self, dim, eps=1e-6, elementwise_affine=False):
        super().__init__(dim, elementwise_affine=elementwise_affine, eps=eps)

    def forward(self, inputs):
        return F.layer_norm(inputs.float(), self.normalized_shape, None if self.weight is None else self.weight.float(),
                            None if self.bias is None else self.bias.float(), self.eps).to(inputs.dtype)


def normalize_and_scale(column, source_range, target_range, epsilon=1e-8):
    source_min, source_max = source_range
    new_min, new_max = target_range
    normalized = (column - source_min) / (source_max - source_min + epsilon)
    return normalized * (new_max - new_min) + new_min


def calculate_x_ref_attn_map(visual_q, ref_k, ref_target_masks, mode="mean"):
    scale = 1.0 / visual_q.shape[-1] ** 0.5
    visual_q = (visual_q * scale).transpose(1, 2)
    ref_k = ref_k.transpose(1, 2)
    attn = visual_q @ ref_k.transpose(-2, -1)
    source = attn.softmax(-1)
    maps = []
    for ref_target_mask in ref_target_masks.to(visual_q.dtype):
        ref_target_mask = ref_target_mask[None, None, None, ...]
        m = (source * ref_target_mask).sum(-1) / ref_target_mask.sum()
        m = m.permute(0, 2, 1)
        maps.append(m.mean(-1))
    return torch.concat(maps, dim=0)


def get_attn_map_with_target(visual_q, ref_k, shape, ref_target_masks=None, split_num=2):
    n_t, n_h, n_w = shape
    ref_k = ref_k[:, : n_h * n_w]
    _, seq_lens, heads, _ = visual_q.shape
    class_num, _ = ref_target_masks.shape
    maps = torch.zeros(class_num, seq_lens).to(visual_q.device).to(visual_q.dtype)
    split_chunk = heads // split_num
    for i in range(split_num):
        sl = slice(i * split_chunk, (i + 1) * split_chunk)
        maps += calculate_x_ref_attn_map(visual_q[:, :, sl, :], ref_k[:, :, sl, :], ref_target_masks)
    return maps / split_num


def rotate_half(x):
    x = x.unflatten(-1, (-1, 2))
    x1, x2 = x.unbind(dim=-1)
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


class RotaryPositionalEmbedding1D(nn.Module):
    def __init__(self, head_dim):
        super().__init__()
        self.head_dim = head_dim
        self.base = 10000

    def forward(self, x, pos_indices):
        freqs = 1.0 / (self.base ** (torch.arange(0, self.head_dim, 2)[: (self.head_dim // 2)].float() / self.head_dim))
        freqs = torch.einsum("..., f -> ... f", pos_indices.float(), freqs)
        freqs = freqs.repeat_interleave(2, dim=-1)
        x_ = x.float()
        cos, sin = freqs.cos()[None, None], freqs.sin()[None, None]
        return ((x_ * cos) + (rotate_half(x_) * sin)).type_as(x)


class SingleStreamMutiAttention(nn.Module):
    def __init__(self, dim, encoder_hidden_states_dim, num_heads, class_range=24, class_interval=4):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q_linear = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(encoder_hidden_states_dim, dim * 2)
        self.rope_h1 = (0, class_interval)
        self.rope_h2 = (class_range - class_interval, class_range)
        self.rope_bak = int(class_range // 2)
        self.rope_1d = RotaryPositionalEmbedding1D(self.head_dim)

    def _single(self, x, encoder_hidden_states, shape):  # SingleStreamAttention.forward
        n_t = shape[0]
        x = x.reshape(x.shape[0] * n_t, -1, x.shape[-1])
        b, n, c = x.shape
        q = self.q_linear(x).view(b, n, self.num_heads, self.head_dim)
        _, n_a, _ = encoder_hidden_states.shape
        kv = self.kv_linear(encoder_hidden_states).view(b, n_a, 2, self.num_heads, self.head_dim)
        k, v = kv.permute(2, 0, 1, 3, 4).unbind(0)
        x = flash_attention(q, k, v).reshape(b, n, c)
        x = self.proj(x)
        return x.reshape(-1, n_t * n, c)

    def forward(self, x, encoder_hidden_states, shape=None, x_ref_attn_map=None, human_num=None):
        encoder_hidden_states = encoder_hidden_states.squeeze(0)
        if human_num == 1:
            return self._single(x, encoder_hidden_states, shape)
        n_t = shape[0]
        x = x.reshape(x.shape[0] * n_t, -1, x.shape[-1])
        b, n, c = x.shape
        q = self.q_linear(x).view(b, n, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
        max_values = x_ref_attn_map.max(1).values[:, None, None]
        min_values = x_ref_attn_map.min(1).values[:, None, None]
        max_min_values = torch.cat([max_values, min_values], dim=2)
        h1_max, h1_min = max_min_values[0, :, 0].max(), max_min_values[0, :, 1].min()
        h2_max, h2_min = max_min_values[1, :, 0].max(), max_min_values[1, :, 1].min()
        human1 = normalize_and_scale(x_ref_attn_map[0], (h1_min, h1_max), self.rope_h1)
        human2 = normalize_and_scale(x_ref_attn_map[1], (h2_min, h2_max), self.rope_h2)
        back = torch.full((x_ref_attn_map.size(1),), self.rope_bak, dtype=human1.dtype)
        max_indices = x_ref_attn_map.argmax(dim=0)
        normalized_map = torch.stack([human1, human2, back], dim=1)
        normalized_pos = normalized_map[range(x_ref_attn_map.size(1)), max_indices]
        # "(B N_t) H S C -> B H (N_t S) C"
        q = q.reshape(b // n_t, n_t, self.num_heads, n, self.head_dim).permute(0, 2, 1, 3, 4).flatten(2, 3)
        q = self.rope_1d(q, normalized_pos)
        q = q.unflatten(2, (n_t, n)).permute(0, 2, 1, 3, 4).flatten(0, 1)
        _, n_a, _ = encoder_hidden_states.shape
        kv = self.kv_linear(encoder_hidden_states).view(b, n_a, 2, self.num_heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
        per_frame = torch.zeros(n_a, dtype=k.dtype)
        per_frame[: per_frame.size(0) // 2] = (self.rope_h1[0] + self.rope_h1[1]) / 2
        per_frame[per_frame.size(0) // 2:] = (self.rope_h2[0] + self.rope_h2[1]) / 2
        encoder_pos = torch.concat([per_frame] * n_t, dim=0)
        k = k.reshape(b // n_t, n_t, self.num_heads, n_a, self.head_dim).permute(0, 2, 1, 3, 4).flatten(2, 3)
        k = self.rope_1d(k, encoder_pos)
        k = k.unflatten(2, (n_t, n_a)).permute(0, 2, 1, 3, 4).flatten(0, 1)
        x = F.scaled_dot_product_attention(q, k, v)  # [B, H, M, K]
        x = x.transpose(1, 2).reshape(b, n, c)
        x = self.proj(x)
        return x.reshape(-1, n_t * n, c)


class WanSelfAttention(nn.Module):
    def __init__(self, dim, num_heads, eps=1e-6):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = WanRMSNorm(dim, eps=eps)
        self.norm_k = WanRMSNorm(dim, eps=eps)

    def forward(self, x, seq_lens, grid_sizes, freqs, ref_target_masks=None):
        b, s, n, d = *x.shape[:2], self.num_heads, self.head_dim
        q = self.norm_q(self.q(x)).view(b, s, n, d)
        k = self.norm_k(self.k(x)).view(b, s, n, d)
        v = self.v(x).view(b, s, n, d)
        q = rope_apply(q, grid_sizes, freqs)
        k = rope_apply(k, grid_sizes, freqs)
        x = flash_attention(q, k, v, k_lens=seq_lens).type_as(x)
        x = self.o(x.flatten(2))
        with torch.no_grad():
            x_ref_attn_map = get_attn_map_with_target(q.type_as(x), k.type_as(x), grid_sizes[0],
                                                      ref_target_masks=ref_target_masks)
        return x, x_ref_attn_map


class WanI2VCrossAttention(nn.Module):
    def __init__(self, dim, num_heads, eps=1e-6):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = WanRMSNorm(dim, eps=eps)
        self.norm_k = WanRMSNorm(dim, eps=eps)
        self.k_img = nn.Linear(dim, dim)
        self.v_img = nn.Linear(dim, dim)
        self.norm_k_img = WanRMSNorm(dim, eps=eps)

    def forward(self, x, context, context_lens):
        context_img = context[:, :257]
        context = context[:, 257:]
        b, n, d = x.size(0), self.num_heads, self.head_dim
        q = self.norm_q(self.q(x)).view(b, -1, n, d)
        k = self.norm_k(self.k(context)).view(b, -1, n, d)
        v = self.v(context).view(b, -1, n, d)
        k_img = self.norm_k_img(self.k_img(context_img)).view(b, -1, n, d)
        v_img = self.v_img(context_img).view(b, -1, n, d)
        img_x = flash_attention(q, k_img, v_img)
        x = flash_attention(q, k, v)
        return self.o(x.flatten(2) + img_x.flatten(2))


class WanAttentionBlock(nn.Module):
    def __init__(self, dim, ffn_dim, num_heads, eps=1e-6, output_dim=768):
        super().__init__()
        self.norm1 = WanLayerNorm(dim, eps)
        self.self_attn = WanSelfAttention(dim, num_heads, eps)
        self.norm3 = WanLayerNorm(dim, eps, elementwise_affine=True)
        self.cross_attn = WanI2VCrossAttention(dim, num_heads, eps)
        self.norm2 = WanLayerNorm(dim, eps)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)
        self.audio_cross_attn = SingleStreamMutiAttention(dim, output_dim, num_heads)
        self.norm_x = WanLayerNorm(dim, eps, elementwise_affine=True)

    def forward(self, x, e, seq_lens, grid_sizes, freqs, context, context_lens, audio_embedding=None,
                ref_target_masks=None, human_num=None):
        dtype = x.dtype
        e = (self.modulation + e).chunk(6, dim=1)
        y, x_ref_attn_map = self.self_attn((self.norm1(x).float() * (1 + e[1]) + e[0]).type_as(x), seq_lens,
                                           grid_sizes, freqs, ref_target_masks=ref_target_masks)
        x = (x + y * e[2]).to(dtype)
        x = x + self.cross_attn(self.norm3(x), context, context_lens)
        x = x + self.audio_cross_attn(self.norm_x(x), encoder_hidden_states=audio_embedding, shape=grid_sizes[0],
                                      x_ref_attn_map=x_ref_attn_map, human_num=human_num)
        y = self.ffn((self.norm2(x).float() * (1 + e[4]) + e[3]).to(dtype))
        return (x + y * e[5]).to(dtype)


class Head(nn.Module):
    def __init__(self, dim, out_dim, patch_size, eps=1e-6):
        super().__init__()
        self.norm = WanLayerNorm(dim, eps)
        self.head = nn.Linear(dim, math.prod(patch_size) * out_dim)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)

    def forward(self, x, e):
        e = (self.modulation + e.unsqueeze(1)).chunk(2, dim=1)
        return self.head(self.norm(x) * (1 + e[1]) + e[0])


class MLPProj(nn.Module):
    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, in_dim), nn.GELU(),
                                  nn.Linear(in_dim, out_dim), nn.LayerNorm(out_dim))

    def forward(self, image_embeds):
        return self.proj(image_embeds)


class AudioProjModel(nn.Module):
    def __init__(self, seq_len=5, seq_len_vf=12, blocks=12, channels=768, intermediate_dim=512, output_dim=768,
                 context_tokens=32, norm_output_audio=False):
        super().__init__()
        self.context_tokens, self.output_dim = context_tokens, output_dim
        self.proj1 = nn.Linear(seq_len * blocks * channels, intermediate_dim)
        self.proj1_vf = nn.Linear(seq_len_vf * blocks * channels, intermediate_dim)
        self.proj2 = nn.Linear(intermediate_dim, intermediate_dim)
        self.proj3 = nn.Linear(intermediate_dim, context_tokens * output_dim)
        self.norm = nn.LayerNorm(output_dim) if norm_output_audio else nn.Identity()

    def forward(self, audio_embeds, audio_embeds_vf):
        video_length = audio_embeds.shape[1] + audio_embeds_vf.shape[1]
        b = audio_embeds.shape[0]
        audio_embeds = audio_embeds.flatten(0, 1).flatten(1)  # "bz f w b c -> (bz f) (w b c)"
        audio_embeds_vf = audio_embeds_vf.flatten(0, 1).flatten(1)
        audio_embeds = torch.relu(self.proj1(audio_embeds)).unflatten(0, (b, -1))
        audio_embeds_vf = torch.relu(self.proj1_vf(audio_embeds_vf)).unflatten(0, (b, -1))
        c = torch.concat([audio_embeds, audio_embeds_vf], dim=1)
        bc, n_t, c_a = c.shape
        c = torch.relu(self.proj2(c.view(bc * n_t, c_a)))
        tokens = self.proj3(c).reshape(bc * n_t, self.context_tokens, self.output_dim)
        tokens = self.norm(tokens)
        return tokens.unflatten(0, (-1, video_length))


class WanModel(nn.Module):
    """InfiniteTalk's WanModel (i2v, audio adapter), fp32, no TeaCache."""

    def __init__(self, in_dim=36, dim=64, ffn_dim=96, freq_dim=32, text_dim=24, out_dim=16, num_heads=4,
                 num_layers=2, eps=1e-6, audio_window=5, intermediate_dim=32, output_dim=24, context_tokens=4,
                 vae_scale=4, image_dim=1280, audio_layers=12, audio_dim=768, text_len=512):
        super().__init__()
        self.patch_size, self.dim, self.freq_dim, self.out_dim = (1, 2, 2), dim, freq_dim, out_dim
        self.text_len, self.audio_window, self.vae_scale = text_len, audio_window, vae_scale
        self.patch_embedding = nn.Conv3d(in_dim, dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim))
        self.time_embedding = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim * 6))
        self.blocks = nn.ModuleList([WanAttentionBlock(dim, ffn_dim, num_heads, eps, output_dim)
                                     for _ in range(num_layers)])
        self.head = Head(dim, out_dim, self.patch_size, eps)
        d = dim // num_heads
        self.freqs = torch.cat([rope_params(1024, d - 4 * (d // 6)), rope_params(1024, 2 * (d // 6)),
                                rope_params(1024, 2 * (d // 6))], dim=1)
        self.img_emb = MLPProj(image_dim, dim)
        self.audio_proj = AudioProjModel(seq_len=audio_window, seq_len_vf=audio_window + vae_scale - 1,
                                         blocks=audio_layers, channels=audio_dim, intermediate_dim=intermediate_dim,
                                         output_dim=output_dim, context_tokens=context_tokens, norm_output_audio=True)

    def forward(self, x, t, context, seq_len, clip_fea=None, y=None, audio=None, ref_target_masks=None):
        _, T, H, W = x[0].shape
        n_h, n_w = H // 2, W // 2
        x = [torch.cat([u, v], dim=0) for u, v in zip(x, y, strict=True)]
        x = [self.patch_embedding(u.unsqueeze(0)) for u in x]
        grid_sizes = torch.stack([torch.tensor(u.shape[2:], dtype=torch.long) for u in x])
        x = [u.flatten(2).transpose(1, 2) for u in x]
        seq_lens = torch.tensor([u.size(1) for u in x], dtype=torch.long)
        x = torch.cat([torch.cat([u, u.new_zeros(1, seq_len - u.size(1), u.size(2))], dim=1) for u in x])
        e = self.time_embedding(sinusoidal_embedding_1d(self.freq_dim, t).float())
        e0 = self.time_projection(e).unflatten(1, (6, self.dim))
        context = self.text_embedding(torch.stack([
            torch.cat([u, u.new_zeros(self.text_len - u.size(0), u.size(1))]) for u in context]))
        context = torch.concat([self.img_emb(clip_fea), context], dim=1)
        audio_cond = audio
        first = audio_cond[:, :1, ...]
        latter = audio_cond[:, 1:, ...]
        latter = latter.unflatten(1, (-1, self.vae_scale))  # "b (n_t n) w s c -> b n_t n w s c"
        mid = self.audio_window // 2
        l_first = latter[:, :, :1, : mid + 1].flatten(2, 3)
        l_last = latter[:, :, -1:, mid:].flatten(2, 3)
        l_middle = latter[:, :, 1:-1, mid: mid + 1].flatten(2, 3)
        latter_s = torch.concat([l_first, l_middle, l_last], dim=2)
        audio_embedding = self.audio_proj(first, latter_s)
        human_num = len(audio_embedding)
        audio_embedding = torch.concat(audio_embedding.split(1), dim=2)
        masks = F.interpolate(ref_target_masks.unsqueeze(0).to(torch.float32), size=(n_h, n_w), mode="nearest")
        masks = (masks.squeeze(0) > 0)
        masks = masks.view(masks.shape[0], -1).to(x.dtype)
        kwargs = dict(e=e0, seq_lens=seq_lens, grid_sizes=grid_sizes, freqs=self.freqs, context=context,
                      context_lens=None, audio_embedding=audio_embedding, ref_target_masks=masks, human_num=human_num)
        for block in self.blocks:
            x = block(x, **kwargs)
        x = self.head(x, e)
        out = []
        c = self.out_dim
        for u, v in zip(x, grid_sizes.tolist(), strict=True):
            u = u[: math.prod(v)].view(*v, *self.patch_size, c)
            u = torch.einsum("fhwpqrc->cfphqwr", u)
            out.append(u.reshape(c, *[i * j for i, j in zip(v, self.patch_size, strict=True)]))
        return torch.stack(out).float()

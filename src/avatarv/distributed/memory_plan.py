"""Device-memory plan for InfiniteTalk-14B inference: weights, activations and the peak per offload mode.

    python -m avatarv.distributed.memory_plan [--preset wan-14b] [--prefetch 1] [--batch 1]

prints a table (480p and 720p × DiT weights in bf16 / fp8 × offload none / model / blocks) and one JSON line.
Everything is computed, nothing measured on a GPU here:

- **DiT weights**: parameters counted with ``VideoRefDiT.count_parameters`` on the meta device for the preset's
  DiT with InfiniteTalk's fields (:func:`infinitetalk_config`), split into the blocks and the rest. bf16: 2 bytes
  each. fp8: 1 byte for every ``nn.Linear`` weight (99.9 % of the parameters), bf16 for the rest (biases, norms,
  modulation, the patch-embedding convolution) — per-tensor scales are not counted.
- **DiT activations** (inference, no autograd, batch 1 per forward; InfiniteTalk's three CFG passes run one
  after another): per block the peak of live tensors is ``N · max(11·D, 4·D + 2·F) · 2`` bytes for N tokens,
  width D and FFN width F in bf16, measured by counting the bytes of live tensors (a ``TorchDispatchMode``)
  over this repository's ``VideoRefBlock`` in bf16: the attention stage holds 11 copies of ``[N, D]`` at its
  peak (the modulated input, q, k, v, the fp32 RoPE rotation temporaries of ``apply_rope``), the FFN stage 4
  copies plus its hidden layer and that layer's GELU (``2·F``). 14B (F/D = 2.7) is attention-bound, 1.3B
  (F/D = 5.8) FFN-bound. Attention itself adds O(N) with a flash / SDPA kernel (never the N² score matrix).
  On top: the residual stream ``[N, D]`` entering the block and the embedded tokens the forward keeps (one
  more ``[N, D]``), the RoPE tables and positions, the text (512) and CLIP (257) contexts, the audio tokens;
  with two speakers L-RoPE's reference attention map (``reference_attention_map``: ``[H/2, N, n0]`` scores and
  their softmax for each half of the heads, n0 = tokens of latent frame 0). ``tests/unit/test_memory_plan.py``
  counts the live bytes of a whole forward the same way: the estimate is 2 % (attention-bound) and 4 %
  (FFN-bound) below them.
- **Encoders**: UMT5-XXL encoder, CLIP ViT-H/14 vision tower, Wan2.1 VAE, wav2vec2-base, sizes in
  :data:`ENCODERS` (computed from the public configs, each source stated; the unit test checks them against
  ``transformers`` / ``diffusers`` models built on the meta device). Their activations are not estimated:
  T5 and CLIP run on ≤ 512 tokens; the VAE's decode working set (frame by frame, causal caches) is not
  modelled here and has to be measured.

Modes (``--offload``): ``none`` — every model resident, peak = all weights + the DiT's activations;
``model`` — one model resident at a time (:func:`avatarv.distributed.offload.offload_modules`), peak = the
largest stage, the DiT's; ``blocks`` — the encoders as in ``model`` and the DiT's blocks streamed
(:func:`avatarv.distributed.offload.offload_blocks`): its non-block weights + ``prefetch + 1`` blocks; the
largest stage may then be T5's (10.6 GiB of bf16 weights, loaded whole).
``host`` is the host memory holding the offloaded weights (pinned).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from avatarv.config import DiTConfig, get_preset

GIB = 2**30
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1}
MODES = ("none", "model", "blocks")
TEXT_TOKENS = 512  # Wan pads every prompt to 512 tokens, all attended
CLIP_TOKENS = 257  # CLIP ViT-H/14 hidden states at 224 px: 16 × 16 patches + class token

# Live tensors of one block at its peak, in units of [N, D] (attention stage) and per FFN width (FFN stage):
# measured, see the module docstring.
ATTENTION_STAGE_UNITS = 11
FFN_STAGE_UNITS = 4
FFN_HIDDEN_COPIES = 2  # fc1's output and its GELU


@dataclass(frozen=True)
class Resolution:
    """A video size: pixels → latents (Wan VAE: 4× in time, causal; 8× in space) → tokens (1×2×2 patches)."""

    name: str
    height: int
    width: int
    frames: int = 81

    @property
    def latent_frames(self) -> int:
        return 1 + (self.frames - 1) // 4

    @property
    def latent_size(self) -> tuple[int, int]:
        return self.height // 8, self.width // 8

    @property
    def tokens_per_frame(self) -> int:
        h, w = self.latent_size
        return (h // 2) * (w // 2)

    @property
    def tokens(self) -> int:
        return self.latent_frames * self.tokens_per_frame


RESOLUTIONS = (Resolution("480p", 480, 832), Resolution("720p", 720, 1280))


def infinitetalk_config(preset: str = "wan-14b") -> DiTConfig:
    """The preset's DiT as InfiniteTalk has it: Wan2.1 I2V (20 condition channels, CLIP image branch 1280) plus
    the InfiniteTalk audio adapter (wav2vec width 768); no avatarv motion stream, no windowed-audio positions."""
    return replace(get_preset(preset).dit, cond_channels=20, image_dim=1280, audio_adapter="infinitetalk",
                   audio_dim=768, motion_dim=0, audio_positions=False)


@dataclass(frozen=True)
class DiTParams:
    """Parameter counts of a DiT: all, its blocks (and one block), the rest, and how many are Linear weights."""

    total: int
    blocks: int
    per_block: int
    linear_weights: int  # of all parameters
    block_linear_weights: int  # of one block

    @property
    def rest(self) -> int:
        return self.total - self.blocks

    def block_bytes(self, dtype: str) -> int:
        return _bytes(self.per_block, self.block_linear_weights, dtype)

    def rest_bytes(self, dtype: str) -> int:
        rest_linear = self.linear_weights - self.block_linear_weights * (self.blocks // self.per_block)
        return _bytes(self.rest, rest_linear, dtype)

    def bytes(self, dtype: str) -> int:
        return self.rest_bytes(dtype) + self.block_bytes(dtype) * (self.blocks // self.per_block)


def _bytes(params: int, linear_weights: int, dtype: str) -> int:
    """fp8 stores Linear weights in 1 byte and keeps everything else in bf16."""
    if dtype == "fp8":
        return linear_weights * BYTES["fp8"] + (params - linear_weights) * BYTES["bf16"]
    return params * BYTES[dtype]


def dit_parameters(cfg: DiTConfig) -> DiTParams:
    from avatarv.models.dit import VideoRefDiT

    total = VideoRefDiT.count_parameters(cfg)
    with torch.device("meta"):
        model = VideoRefDiT(cfg)
    blocks = sum(p.numel() for p in model.blocks.parameters())
    block0 = model.blocks[0]
    return DiTParams(
        total=total, blocks=blocks, per_block=sum(p.numel() for p in block0.parameters()),
        linear_weights=sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear)),
        block_linear_weights=sum(m.weight.numel() for m in block0.modules() if isinstance(m, nn.Linear)),
    )


# ------------------------------------------------------------------ encoders
def umt5_encoder_parameters(vocab: int, dim: int, ffn: int, layers: int, heads: int, head_dim: int,
                            buckets: int) -> int:
    """UMT5 encoder (T5 v1.1 layout, no biases): token embedding; per layer q, k, v, o, a relative-position
    bias table of its own (UMT5, unlike T5's shared one), gated-GELU FFN (wi_0, wi_1, wo), two RMS norms;
    a final RMS norm."""
    inner = heads * head_dim
    per_layer = 4 * dim * inner + buckets * heads + 3 * dim * ffn + 2 * dim
    return vocab * dim + layers * per_layer + dim


def clip_vision_parameters(width: int, layers: int, mlp: int, patch: int, image: int, channels: int = 3) -> int:
    """CLIP ViT vision tower up to the last block's output: patch conv (no bias), class and position embeddings,
    pre-norm; per layer q, k, v, o and the MLP with biases and two LayerNorms; post-norm. No projection (Wan's
    image branch reads hidden states, not the projected embedding)."""
    positions = (image // patch) ** 2 + 1
    per_layer = 4 * (width * width + width) + 2 * width * mlp + mlp + width + 4 * width
    return channels * patch * patch * width + width + positions * width + 2 * width + layers * per_layer + 2 * width


@dataclass(frozen=True)
class ModuleSize:
    name: str
    params: int
    dtype: str
    source: str

    @property
    def bytes(self) -> int:
        return self.params * BYTES[self.dtype]


ENCODERS = (
    ModuleSize("t5", umt5_encoder_parameters(256384, 4096, 10240, 24, 64, 64, 32), "bf16",
               "UMT5-XXL encoder, Wan2.1 wan/modules/t5.py umt5_xxl (vocab 256384, dim 4096, ffn 10240, 24 layers, "
               "64 heads, 32 buckets, shared_pos False) = google/umt5-xxl config; Wan ships it in bf16"),
    ModuleSize("clip", clip_vision_parameters(1280, 32, 5120, 14, 224), "bf16",
               "CLIP ViT-H/14 vision tower (open_clip ViT-H-14: width 1280, 32 layers, MLP 5120, 224 px); Wan's "
               "checkpoint also holds the XLM-R text tower, which image features do not need"),
    ModuleSize("vae", 126_892_531, "bf16",
               "Wan2.1 VAE (base_dim 96, z_dim 16) = diffusers AutoencoderKLWan() defaults counted on the meta "
               "device (Wan2.1_VAE.pth is 508 MB in fp32)"),
    ModuleSize("wav2vec", 94_371_712, "bf16",
               "wav2vec2-base (InfiniteTalk's chinese-wav2vec2-base: hidden 768, 12 layers, ffn 3072) = "
               "transformers Wav2Vec2Model(Wav2Vec2Config()) on the meta device"),
)


# --------------------------------------------------------------- activations
def block_activation_bytes(cfg: DiTConfig, tokens: int, dtype_bytes: int = 2) -> int:
    """Peak live bytes inside one block for ``tokens`` tokens (inputs excluded)."""
    units = max(ATTENTION_STAGE_UNITS * cfg.dim, FFN_STAGE_UNITS * cfg.dim + FFN_HIDDEN_COPIES * cfg.ffn_dim)
    return tokens * units * dtype_bytes


def dit_activation_bytes(cfg: DiTConfig, res: Resolution, speakers: int = 1, batch: int = 1,
                         dtype_bytes: int = 2) -> dict[str, int]:
    """The DiT's live activations at the peak of a forward, by part (bytes), and their ``total``."""
    n, d = res.tokens, cfg.dim
    parts = {
        # the residual stream entering the block, and the embedded tokens that forward's locals keep alive
        # through the block loop (measured: one more [N, D] than the blocks' own)
        "stream": 2 * n * d * dtype_bytes,
        "block": block_activation_bytes(cfg, n, dtype_bytes),
        "rope": 2 * n * (cfg.head_dim // 2) * 4 + n * 3 * 8,  # cos, sin [N, d/2] fp32; positions [N, 3] int64
        "contexts": (TEXT_TOKENS + CLIP_TOKENS) * d * dtype_bytes
        + res.latent_frames * cfg.audio_context_tokens * speakers * cfg.audio_token_dim * dtype_bytes,
        "lrope_map": 0,
    }
    if speakers > 1:  # scores and softmax over latent frame 0's keys for half the heads at a time
        parts["lrope_map"] = 2 * (cfg.num_heads // 2) * n * res.tokens_per_frame * dtype_bytes
    parts = {k: v * batch for k, v in parts.items()}
    parts["total"] = sum(parts.values())
    return parts


# ---------------------------------------------------------------------- plan
@dataclass(frozen=True)
class MemoryPlan:
    resolution: str
    tokens: int
    dit_dtype: str
    mode: str
    speakers: int
    weights_on_device: int  # bytes, at the DiT stage
    activations: int
    peak: int
    peak_stage: str  # which model's stage sets the peak ("dit", or an encoder's name)
    host: int  # weights kept in host memory

    def gib(self) -> dict[str, object]:
        d = asdict(self)
        for k in ("weights_on_device", "activations", "peak", "host"):
            d[k] = round(d[k] / GIB, 2)
        return d


def memory_plan(cfg: DiTConfig, res: Resolution, dit_dtype: str = "bf16", mode: str = "none", prefetch: int = 1,
                speakers: int = 1, batch: int = 1, params: DiTParams | None = None,
                encoders: tuple[ModuleSize, ...] = ENCODERS) -> MemoryPlan:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    params = params or dit_parameters(cfg)
    act = dit_activation_bytes(cfg, res, speakers, batch)["total"]
    dit = params.bytes(dit_dtype)
    enc = sum(e.bytes for e in encoders)
    if mode == "none":
        on_device, host = dit + enc, 0
        stages = {"dit": on_device + act}
    else:
        if mode == "model":
            on_device = dit
        else:
            layers = params.blocks // params.per_block
            on_device = params.rest_bytes(dit_dtype) + min(prefetch + 1, layers) * params.block_bytes(dit_dtype)
        host = dit + enc  # with blocks: the DiT's non-block weights are counted in both (a rounding error)
        stages = {"dit": on_device + act, **{e.name: e.bytes for e in encoders}}  # encoder activations: not estimated
    stage = max(stages, key=stages.get)
    return MemoryPlan(res.name, res.tokens, dit_dtype, mode, speakers, on_device, act, stages[stage], stage, host)


def plans(cfg: DiTConfig, prefetch: int = 1, batch: int = 1) -> list[tuple[MemoryPlan, MemoryPlan]]:
    """(1 speaker, 2 speakers) for every resolution × DiT dtype × mode."""
    params = dit_parameters(cfg)
    out = []
    for res in RESOLUTIONS:
        for dtype in ("bf16", "fp8"):
            for mode in MODES:
                out.append(tuple(memory_plan(cfg, res, dtype, mode, prefetch, s, batch, params) for s in (1, 2)))
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="wan-14b")
    ap.add_argument("--prefetch", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args(argv)
    cfg = infinitetalk_config(args.preset)
    params = dit_parameters(cfg)
    rows = plans(cfg, args.prefetch, args.batch)
    print(f"InfiniteTalk on {args.preset}: DiT {params.total / 1e9:.2f} B parameters ({params.blocks // params.per_block}"
          f" blocks of {params.per_block / 1e6:.1f} M, rest {params.rest / 1e6:.1f} M); batch {args.batch} per "
          f"forward, prefetch {args.prefetch}")
    for e in ENCODERS:
        print(f"  {e.name:8s} {e.params / 1e9:6.3f} B params, {e.dtype}, {e.bytes / GIB:5.2f} GiB  ({e.source})")
    header = (f"{'res':5s} {'tokens':>7s} {'dit':5s} {'offload':8s} {'weights':>8s} {'activ.':>7s} {'peak':>7s}"
              f" {'peak 2spk':>9s} {'stage':>6s} {'host':>7s}   (GiB)")
    print(header)
    for one, two in rows:
        print(f"{one.resolution:5s} {one.tokens:7d} {one.dit_dtype:5s} {one.mode:8s} {one.weights_on_device / GIB:8.2f}"
              f" {one.activations / GIB:7.2f} {one.peak / GIB:7.2f} {two.peak / GIB:9.2f} {one.peak_stage:>6s}"
              f" {one.host / GIB:7.2f}")
    print("activations: the DiT's at batch 1 (2 speakers add L-RoPE's frame-0 attention map); stage: the model whose "
          "turn sets the 1-speaker peak")
    print("not included: the VAE decode working set, encoder activations, CUDA context (~0.5 GiB), allocator slack")
    record = {
        "memory_plan": args.preset + "+infinitetalk", "dit_params": params.total, "block_params": params.per_block,
        "encoders": {e.name: {"params": e.params, "dtype": e.dtype} for e in ENCODERS},
        "prefetch": args.prefetch, "batch": args.batch,
        "plans": [{**one.gib(), "peak_2_speakers": two.gib()["peak"]} for one, two in rows],
    }
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main()

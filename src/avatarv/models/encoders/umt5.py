"""Wan2.1's text encoder (UMT5-XXL encoder, d_model 4096) from either published layout, as Wan encodes text.

Layouts:

- diffusers / transformers: ``text_encoder/`` (``config.json`` + safetensors, ``UMT5EncoderModel``) with
  ``tokenizer/`` beside it (or inside the same folder);
- Wan's original: ``models_t5_umt5-xxl-enc-bf16.pth`` (``wan/modules/t5.py``: ``T5Encoder`` built by
  ``umt5_xxl(encoder_only=True)``, shared_pos=False) with the ``google/umt5-xxl`` tokenizer folder beside it.
  Its names map to transformers' ``UMT5EncoderModel`` by :func:`wan_t5_key_table`; the config is read off the
  tensor shapes (vocab, d_model, d_ff, layers, heads = columns of the relative-position table, buckets) with Wan's
  fixed settings: gated tanh-GELU feed-forward (Wan's ``GELU`` = ``gelu_new``), RMS norm eps 1e-6, relative
  attention max distance 128, no attention scaling (both), a position bias per layer (UMT5 = shared_pos False).

``UMT5Encoder.encode`` follows ``wan/modules/t5.py`` ``T5EncoderModel.__call__`` and ``wan/modules/tokenizers.py``
``HuggingfaceTokenizer`` (clean='whitespace', padding to ``text_len`` = 512, truncation, special tokens): the
hidden states of each prompt trimmed to its true token count (``wan/multitalk.py`` passes them on as
``context``). ``ftfy.fix_text`` of Wan's ``basic_clean`` is applied when ftfy is installed.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import torch

from avatarv.errors import CheckpointError
from avatarv.models.vae.wan_vae_pth import load_exactly, read_wan_pth, rename_with_table

T5_PTH_NAME = "models_t5_umt5-xxl-enc-bf16.pth"
T5_TOKENIZER_DIR = "google/umt5-xxl"
TEXT_LEN = 512  # Wan2.1 configs: text_len


def wan_t5_key_table(num_layers: int) -> dict[str, str]:
    """Every key of Wan's ``T5Encoder`` state dict → its ``UMT5EncoderModel`` name."""
    table = {"token_embedding.weight": "shared.weight", "norm.weight": "encoder.final_layer_norm.weight"}
    for i in range(num_layers):
        wan, ours = f"blocks.{i}", f"encoder.block.{i}.layer"
        table[f"{wan}.norm1.weight"] = f"{ours}.0.layer_norm.weight"
        for proj in "qkvo":
            table[f"{wan}.attn.{proj}.weight"] = f"{ours}.0.SelfAttention.{proj}.weight"
        table[f"{wan}.pos_embedding.embedding.weight"] = f"{ours}.0.SelfAttention.relative_attention_bias.weight"
        table[f"{wan}.norm2.weight"] = f"{ours}.1.layer_norm.weight"
        table[f"{wan}.ffn.gate.0.weight"] = f"{ours}.1.DenseReluDense.wi_0.weight"  # gelu(wi_0 x) * wi_1 x
        table[f"{wan}.ffn.fc1.weight"] = f"{ours}.1.DenseReluDense.wi_1.weight"
        table[f"{wan}.ffn.fc2.weight"] = f"{ours}.1.DenseReluDense.wo.weight"
    return table


def umt5_config_from_wan(state: dict[str, torch.Tensor]):
    """The ``UMT5Config`` of a Wan ``T5Encoder`` state dict, from its tensor shapes (umt5-xxl: 256384 × 4096,
    d_ff 10240, 24 layers, 64 heads, 32 buckets)."""
    from transformers import UMT5Config

    vocab, d_model = state["token_embedding.weight"].shape  # [vocab, dim]
    num_layers = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    num_buckets, heads = state["blocks.0.pos_embedding.embedding.weight"].shape  # [buckets, heads]
    dim_attn = state["blocks.0.attn.q.weight"].shape[0]  # [dim_attn, dim]
    d_ff = state["blocks.0.ffn.fc1.weight"].shape[0]  # [dim_ffn, dim]
    return UMT5Config(vocab_size=int(vocab), d_model=int(d_model), d_kv=int(dim_attn) // int(heads), d_ff=int(d_ff),
                      num_layers=num_layers, num_heads=int(heads), relative_attention_num_buckets=int(num_buckets),
                      relative_attention_max_distance=128, feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6,
                      dropout_rate=0.0)


def wan_text_clean(text: str) -> str:
    """Wan's ``whitespace_clean(basic_clean(text))`` (``wan/modules/tokenizers.py``)."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # ftfy only repairs mojibake; clean prompts are unchanged by it
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


class UMT5Encoder:
    """A ``UMT5EncoderModel`` and its tokenizer; ``encode`` gives Wan's text context."""

    def __init__(self, model, tokenizer, text_len: int = TEXT_LEN):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.text_len = text_len

    @property
    def dim(self) -> int:
        return int(self.model.config.d_model)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> list[torch.Tensor]:
        """Prompts → one ``[L_i, d_model]`` per prompt, L_i its token count incl. ``</s>`` (≤ ``text_len``)."""
        tokens = self.tokenizer([wan_text_clean(t) for t in texts], padding="max_length", truncation=True,
                                max_length=self.text_len, add_special_tokens=True, return_tensors="pt")
        device = self.model.device
        ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)  # [B, text_len] each
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # [B, text_len, d_model]
        lengths = mask.gt(0).sum(dim=1).tolist()
        return [h[:n] for h, n in zip(hidden, lengths, strict=True)]


def _load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    if not path.is_dir():
        raise CheckpointError("no tokenizer folder (expected the umt5-xxl tokenizer here)", path)
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot load the tokenizer: {err}", path) from None


def _from_transformers_folder(folder: Path, tokenizer_path: Path | None, dtype: torch.dtype):
    """``text_encoder/`` (config.json + safetensors) and its tokenizer (``../tokenizer``, or the same folder)."""
    from transformers import UMT5EncoderModel

    model, info = UMT5EncoderModel.from_pretrained(str(folder), local_files_only=True, dtype=dtype,
                                                   output_loading_info=True)
    if info.get("missing_keys"):
        raise CheckpointError(f"UMT5 checkpoint misses {len(info['missing_keys'])} keys: "
                              f"{', '.join(sorted(info['missing_keys'])[:8])}", folder)
    if tokenizer_path is None:
        sibling = folder.parent / "tokenizer"
        tokenizer_path = sibling if sibling.is_dir() else folder
    return model, _load_tokenizer(tokenizer_path)


def _from_wan_pth(file: Path, tokenizer_path: Path | None, dtype: torch.dtype):
    """Wan's ``models_t5_umt5-xxl-enc-bf16.pth`` and the ``google/umt5-xxl`` tokenizer folder beside it."""
    from transformers import UMT5EncoderModel

    state = read_wan_pth(file)
    if "token_embedding.weight" not in state or "blocks.0.pos_embedding.embedding.weight" not in state:
        raise CheckpointError("not a Wan T5 encoder checkpoint (no token_embedding / blocks.0.pos_embedding)", file)
    config = umt5_config_from_wan(state)
    table = wan_t5_key_table(config.num_layers)
    renamed, _ = rename_with_table(state, table, file, "Wan T5 encoder")
    with torch.device("meta"):  # 5.7 B parameters for umt5-xxl: no random init, the file's tensors are taken
        model = UMT5EncoderModel(config)
    if "shared.weight" in renamed:  # tied input embedding, listed under both names
        renamed["encoder.embed_tokens.weight"] = renamed["shared.weight"]
    load_exactly(model, renamed, table, file, "Wan T5 encoder", assign=True)
    return model.to(dtype), _load_tokenizer(tokenizer_path or file.parent / T5_TOKENIZER_DIR)


def load_umt5_encoder(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                      tokenizer_path: str | Path | None = None, text_len: int = TEXT_LEN) -> UMT5Encoder:
    """Wan's text encoder from a local path, never downloading. ``path`` is one of: a ``text_encoder/`` folder; a
    diffusers pipeline folder holding ``text_encoder/`` and ``tokenizer/``; Wan's ``.pth``; or a Wan checkpoint
    folder holding ``models_t5_umt5-xxl-enc-bf16.pth`` and ``google/umt5-xxl/``."""
    path = Path(path)
    tok = None if tokenizer_path is None else Path(tokenizer_path)
    if path.is_dir() and (path / "text_encoder" / "config.json").is_file():
        path = path / "text_encoder"
    if path.is_dir() and (path / T5_PTH_NAME).is_file():
        path = path / T5_PTH_NAME
    if path.is_file():
        model, tokenizer = _from_wan_pth(path, tok, dtype)
    elif (path / "config.json").is_file():
        model, tokenizer = _from_transformers_folder(path, tok, dtype)
    elif path.exists():
        raise CheckpointError(f"not a UMT5 text encoder (no config.json, text_encoder/ or {T5_PTH_NAME})", path)
    else:
        raise CheckpointError("no such text-encoder file or folder", path)
    return UMT5Encoder(model.to(device), tokenizer, text_len)

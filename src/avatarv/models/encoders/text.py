"""Text encoder: a ``transformers`` UMT5 (Wan2.1 uses UMT5-XXL, d_model 4096) or T5 encoder.

The tokenizer is byte-level (``ByT5Tokenizer``: 3 special ids + 256 bytes), which needs no vocabulary file,
so a small encoder can be built and trained from a config with nothing to download. Real UMT5 weights load
from a local directory together with their own tokenizer (``from_pretrained(dir)``; never from a hub).
Outputs are padded/cut to ``max_length`` tokens with padding positions zeroed, as Wan's pipeline does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from avatarv.errors import CheckpointError


class TextEncoder(nn.Module):
    def __init__(self, model, tokenizer, max_length: int = 64):
        super().__init__()
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length

    @property
    def dim(self) -> int:
        return self.model.config.d_model

    @classmethod
    def tiny(cls, d_model: int, layers: int = 2, heads: int = 4, max_length: int = 64, seed: int = 0) -> TextEncoder:
        """A small UMT5 encoder over bytes, built from a config (random weights until trained)."""
        from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

        torch.manual_seed(seed)
        cfg = UMT5Config(vocab_size=384, d_model=d_model, d_kv=max(d_model // heads, 4), d_ff=4 * d_model,
                         num_layers=layers, num_heads=heads, dropout_rate=0.0)
        return cls(UMT5EncoderModel(cfg), ByT5Tokenizer(), max_length)

    @classmethod
    def from_pretrained(cls, directory: str | Path, max_length: int = 512) -> TextEncoder:
        """UMT5/T5 encoder weights + tokenizer from a local directory (e.g. Wan2.1's umt5-xxl)."""
        from transformers import AutoConfig, AutoTokenizer, ByT5Tokenizer, T5EncoderModel, UMT5EncoderModel

        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise CheckpointError("not a text-encoder directory (no config.json)", directory)
        config = AutoConfig.from_pretrained(str(directory), local_files_only=True)
        model_cls = UMT5EncoderModel if config.model_type == "umt5" else T5EncoderModel
        # weights may be stored in bf16 (the bundled checkpoints); the encoder computes in fp32
        model = model_cls.from_pretrained(str(directory), local_files_only=True).float()
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        except (OSError, ValueError):
            tokenizer = ByT5Tokenizer()
        return cls(model, tokenizer, max_length)

    def save_pretrained(self, directory: str | Path) -> None:
        self.model.save_pretrained(str(directory))

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Prompts → ``[B, max_length, d_model]`` with padding positions zeroed."""
        tokens = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=self.max_length,
                                return_tensors="pt")
        device = next(self.model.parameters()).device
        hidden = self.model(input_ids=tokens.input_ids.to(device),
                            attention_mask=tokens.attention_mask.to(device)).last_hidden_state
        return hidden * tokens.attention_mask.to(device)[..., None].to(hidden.dtype)

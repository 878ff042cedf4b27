"""A tiny, random InfiniteTalk weights folder in the published layouts, for end-to-end tests.

- ``wan/``: Wan2.1-I2V original layout: ``config.json`` as Wan ships it (no ``text_dim``, no audio settings) +
  ``diffusion_pytorch_model-0000N-of-00002.safetensors`` + ``diffusion_pytorch_model.safetensors.index.json``;
- ``audio/infinitetalk.safetensors``: the audio adapter's unprefixed keys (InfiniteTalk ``single``);
- ``wav2vec/``: a ``transformers`` Wav2Vec2Model + feature extractor (chinese-wav2vec2-base's kind);
- ``t5/``: diffusers' ``text_encoder/`` (UMT5EncoderModel) + ``tokenizer/``;
- ``clip/``: diffusers' ``image_encoder/`` (CLIPVisionModel);
- ``vae/``: diffusers' AutoencoderKLWan folder.
The sizes agree with each other the way the real parts do (the DiT's text_dim = the UMT5 width, image_dim = the
CLIP width, audio_dim / audio_layers = the wav2vec width / depth, latent channels = the VAE's z_dim).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from tests.parity.infinitetalk_reference import WanModel

TEXT_DIM, IMAGE_DIM, AUDIO_DIM, AUDIO_LAYERS, Z = 16, 20, 16, 2, 4
PARTS = ("wan", "audio", "wav2vec", "t5", "clip", "vae")


def _randomize(module: torch.nn.Module, std: float = 0.1) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * std)


def write_wan(folder: Path, audio_file: Path, seed: int = 0) -> None:
    torch.manual_seed(seed)
    model = WanModel(in_dim=2 * Z + 4, dim=32, ffn_dim=48, freq_dim=16, text_dim=TEXT_DIM, out_dim=Z, num_heads=2,
                     num_layers=2, intermediate_dim=16, output_dim=16, context_tokens=4, image_dim=IMAGE_DIM,
                     audio_layers=AUDIO_LAYERS, audio_dim=AUDIO_DIM)
    _randomize(model)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    audio = {k: v for k, v in state.items() if k.startswith("audio_proj.") or ".audio_cross_attn." in k
             or ".norm_x." in k}
    base = {k: v for k, v in state.items() if k not in audio}
    folder.mkdir(parents=True)
    keys = sorted(base)
    shards = [keys[: len(keys) // 2], keys[len(keys) // 2:]]
    weight_map = {}
    for i, names in enumerate(shards):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file({k: base[k] for k in names}, folder / name)
        weight_map.update(dict.fromkeys(names, name))
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps({  # as Wan2.1-I2V ships it: no text_dim, no audio
        "_class_name": "WanModel", "dim": 32, "eps": 1e-06, "ffn_dim": 48, "freq_dim": 16, "in_dim": 2 * Z + 4,
        "model_type": "i2v", "num_heads": 2, "num_layers": 2, "out_dim": Z, "text_len": 512}))
    audio_file.parent.mkdir(parents=True, exist_ok=True)
    save_file(audio, audio_file)


def write_wav2vec(folder: Path) -> None:
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(1)
    cfg = Wav2Vec2Config(hidden_size=AUDIO_DIM, num_hidden_layers=AUDIO_LAYERS, num_attention_heads=2,
                         intermediate_size=32, conv_dim=(8,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2),
                         conv_kernel=(10, 3, 3, 3, 3, 2, 2), num_conv_pos_embeddings=16,
                         num_conv_pos_embedding_groups=2, feat_extract_norm="group", do_stable_layer_norm=False)
    Wav2Vec2Model(cfg).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(folder)


def write_t5(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    torch.manual_seed(2)
    cfg = UMT5Config(vocab_size=64, d_model=TEXT_DIM, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
                     relative_attention_num_buckets=8, relative_attention_max_distance=16)
    model = UMT5EncoderModel(cfg).eval()
    _randomize(model, 0.3)
    model.save_pretrained(folder / "text_encoder")
    words = "a photo of person talking speaks the to bright tones overexposed static blurred".split()
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder / "tokenizer")


def write_clip(folder: Path) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(3)
    cfg = CLIPVisionConfig(hidden_size=IMAGE_DIM, intermediate_size=40, num_hidden_layers=2, num_attention_heads=2,
                           image_size=28, patch_size=14, hidden_act="gelu")
    CLIPVisionModel(cfg).eval().save_pretrained(folder / "image_encoder")


def write_vae(folder: Path) -> None:
    from diffusers import AutoencoderKLWan

    torch.manual_seed(4)
    vae = AutoencoderKLWan(base_dim=8, z_dim=Z, latents_mean=[0.0] * Z, latents_std=[1.0] * Z).eval()
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    vae.save_pretrained(folder)


def write_weights(root: Path, skip: tuple[str, ...] = ()) -> Path:
    """The whole folder (minus the parts named in ``skip``); returns ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if "wan" not in skip:
        audio = root / "audio" / "infinitetalk.safetensors"
        write_wan(root / "wan", audio)
        if "audio" in skip:
            audio.unlink()
    for part, writer in (("wav2vec", write_wav2vec), ("t5", write_t5), ("clip", write_clip), ("vae", write_vae)):
        if part not in skip:
            writer(root / part)
    return root

"""Zero-shot voice cloning with a neural TTS from local weights: the seed's production engine.

We wire Kyutai's ``pocket-tts`` (PyPI): a causal transformer "flow LM" that predicts continuous Mimi
codec latents with a flow-matching head, conditioned on a few seconds of the target voice — the LLM-style
zero-shot cloner the seed describes, small enough for a CPU. It was chosen because its dependency tree
installs beside CPU torch 2.13 with neither torchaudio nor torchvision; ``coqui-tts`` (XTTS v2) and
``f5-tts`` need torchaudio, whose newest wheel (2.11) fails to load against torch 2.13, and
``chatterbox-tts`` pins an older torch.

Weights are never downloaded: the directory must hold ``model.safetensors`` (the voice-cloning bundle,
flow LM + Mimi) and ``tokenizer.json``, e.g. copied from ``kyutai/pocket-tts/languages/english/``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from avatarv.errors import InputError
from avatarv.voice.synth import to_16k

DEFAULT_WEIGHTS_DIR = Path(os.environ.get("AVATARV_CLONE_WEIGHTS", "checkpoints/voice/pocket-tts"))
REQUIRED_FILES = ("model.safetensors", "tokenizer.json")


def check_weights(weights_dir: str | Path | None = None) -> Path:
    """The weights folder, or an ``InputError`` naming the folder and the files it expected."""
    folder = Path(weights_dir) if weights_dir is not None else DEFAULT_WEIGHTS_DIR
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise InputError(
            f"no zero-shot cloning weights: expected {' and '.join(REQUIRED_FILES)} in this folder "
            f"(pocket-tts layout; nothing is downloaded)",
            folder.resolve(),
        )
    return folder


def local_config(weights_dir: Path, base: str = "english") -> Path:
    """The package's model config with every weight/tokenizer path pointing into ``weights_dir``."""
    import pocket_tts
    import yaml

    base_path = Path(pocket_tts.__file__).parent / "config" / f"{base}.yaml"
    config = yaml.safe_load(base_path.read_text())
    config["weights_path"] = str((weights_dir / "model.safetensors").resolve())
    config["weights_path_without_voice_cloning"] = None
    config["flow_lm"]["lookup_table"]["tokenizer_path"] = str((weights_dir / "tokenizer.json").resolve())
    fd, tmp = tempfile.mkstemp(prefix="avatarv-pocket-tts-", suffix=".yaml")
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(config, handle)
    return Path(tmp)


class PocketTTSCloner:
    """``speak(text, sample) -> [N] float32 16 kHz`` in the sample's voice, from local weights."""

    name = "pocket-tts"

    def __init__(self, weights_dir: str | Path | None = None, base_config: str = "english"):
        folder = check_weights(weights_dir)
        try:
            from pocket_tts import TTSModel
        except ImportError as err:
            raise InputError(f"pocket-tts is not installed (pip install pocket-tts): {err}") from err
        config = local_config(folder, base_config)
        try:
            self.model = TTSModel.load_model(config=str(config))
        finally:
            config.unlink(missing_ok=True)

    def speak(self, text: str, sample: np.ndarray) -> np.ndarray:
        """``sample``: ``[N]`` float32 16 kHz mono of the target voice (≈ 10 s)."""
        import torch

        from avatarv.media.audio import resample

        prompt = resample(sample, 16000, self.model.sample_rate)
        state = self.model.get_state_for_audio_prompt(torch.from_numpy(prompt)[None])
        audio = self.model.generate_audio(state, text)  # [C, N] at model.sample_rate
        return to_16k(audio.float().mean(0).numpy(), self.model.sample_rate)

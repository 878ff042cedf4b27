"""Put a refined VAE into a pipeline checkpoint, refusing one whose encoder differs from the checkpoint's.

A decoder-only refinement (``world_recipe.DecoderRefine``) leaves the encoder and the latent statistics as they
were, so every latent the DiT was trained on is unchanged and the DiT stays valid with the new decoder. A VAE
with another encoder would hand the DiT latents it never saw: that swap is an error, not a warning.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from avatarv.errors import CheckpointError

ENCODER_PREFIXES = ("encoder.", "quant_conv.")


def encoder_mismatch(old, new) -> str | None:
    """Why two ``VideoVAE`` do not share an encoder (latents would differ), or None when they do. Compared in
    bf16, the bundled checkpoints' storage precision (a refinement started from them keeps those values)."""
    a, b = old.model.state_dict(), new.model.state_dict()
    for name, p in a.items():
        if not name.startswith(ENCODER_PREFIXES):
            continue
        if name not in b or b[name].shape != p.shape:
            return f"encoder tensor {name} is missing or has another shape"
        if not torch.equal(p.to(torch.bfloat16), b[name].to(torch.bfloat16)):
            return f"encoder tensor {name} differs"
    for key in ("latents_mean", "latents_std", "z_dim", "base_dim"):
        if old.model.config[key] != new.model.config[key]:
            return f"{key} differs"
    return None


def install_vae(checkpoint: str | Path, vae_dir: str | Path, stage: str = "vae-refine",
                info: dict | None = None) -> Path:
    """Replace ``checkpoint/vae`` by the VAE in ``vae_dir`` (stored in bf16), atomically, and record ``info``
    under ``pipeline.json``'s ``stages[stage]``. Raises ``CheckpointError`` when the encoders differ."""
    from diffusers.utils import logging as diffusers_logging

    from avatarv.fsutil import atomic_directory
    from avatarv.models.vae import VideoVAE

    checkpoint, vae_dir = Path(checkpoint), Path(vae_dir)
    if not (checkpoint / "pipeline.json").is_file():
        raise CheckpointError("not an avatarv pipeline checkpoint (no pipeline.json)", checkpoint)
    old, new = VideoVAE.from_pretrained(checkpoint / "vae"), VideoVAE.from_pretrained(vae_dir)
    why = encoder_mismatch(old, new)
    if why is not None:
        raise CheckpointError(f"the VAE in {vae_dir} has another encoder ({why}): the DiT was trained on this "
                              "checkpoint's latents", checkpoint)
    meta = json.loads((checkpoint / "pipeline.json").read_text())
    meta.setdefault("stages", {})[stage] = info or {"vae": str(vae_dir)}
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        with atomic_directory(checkpoint) as tmp:
            shutil.copytree(checkpoint, tmp, dirs_exist_ok=True)
            shutil.rmtree(tmp / "vae")
            new.model.to(torch.bfloat16).save_pretrained(str(tmp / "vae"))
            (tmp / "pipeline.json").write_text(json.dumps(meta, indent=2))
    finally:
        diffusers_logging.set_verbosity(level)
    return checkpoint

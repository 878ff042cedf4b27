"""Named presets, from a unit-test model to Wan2.1-14B: a CPU test and a cluster run differ by one name.

Wan2.1 dimensions (Wan2.1 technical report, Table 1 / the released configs):
1.3B: dim 1536, 12 heads, 30 layers, ffn 8960; 14B: dim 5120, 40 heads, 40 layers, ffn 13824;
text dim 4096 (UMT5-XXL), freq dim 256, patch 1×2×2, 16 latent channels.
"""

from __future__ import annotations

from avatarv.config.dit import DiTConfig, ModelConfig, VAEConfig
from avatarv.errors import ConfigError

PRESETS: dict[str, ModelConfig] = {
    # Unit tests: a forward in well under a second.
    "tiny": ModelConfig(
        name="tiny",
        dit=DiTConfig(
            dim=48, num_heads=4, num_layers=2, ffn_dim=96, latent_channels=4, cond_channels=8,
            text_dim=16, freq_dim=32, audio_dim=12, audio_window=1, audio_positions=True, motion_dim=6,
        ),
        vae=VAEConfig(base_dim=8, z_dim=4),
        resolution=64, chunk_latent_frames=5, overlap_latent_frames=2, max_ref_latent_frames=3,
    ),
    # The bundled CPU model trained on the world.
    "small": ModelConfig(
        name="small",
        dit=DiTConfig(
            dim=256, num_heads=4, num_layers=8, ffn_dim=1024, latent_channels=16, cond_channels=20,
            text_dim=256, freq_dim=128, audio_dim=128, audio_window=1, audio_positions=True, motion_dim=16,
        ),
        # base_dim 16 (3.6 M parameters): a training step at 2×5×128² is 1.3 s in bf16 on 2 CPU cores, against
        # 3.5 s for base_dim 32 — the world's flat-shaded frames do not need the wider network.
        vae=VAEConfig(base_dim=16, z_dim=16),
        resolution=128, chunk_latent_frames=21, overlap_latent_frames=2, max_ref_latent_frames=6,
    ),
    # World model v2 (issue #30): the small DiT on a 4×-spatial VAE (a ~20-px mouth spans 5 latent pixels instead
    # of 2.5) with 4×4 patches, so a 128² frame is still 8² = 64 tokens and a step costs what the small one does
    "small-s4": ModelConfig(
        name="small-s4",
        dit=DiTConfig(
            dim=256, num_heads=4, num_layers=8, ffn_dim=1024, latent_channels=16, cond_channels=20,
            text_dim=256, freq_dim=128, audio_dim=128, audio_window=1, audio_positions=True, motion_dim=16,
            patch_size=(1, 4, 4),
        ),
        vae=VAEConfig(base_dim=16, z_dim=16, spatial_stride=4),
        resolution=128, chunk_latent_frames=21, overlap_latent_frames=2, max_ref_latent_frames=6,
    ),
    "wan-1.3b": ModelConfig(
        name="wan-1.3b",
        dit=DiTConfig(
            dim=1536, num_heads=12, num_layers=30, ffn_dim=8960, latent_channels=16, cond_channels=20,
            text_dim=4096, freq_dim=256, audio_dim=768, audio_window=1, audio_positions=True, motion_dim=64,
        ),
    ),
    "wan-14b": ModelConfig(
        name="wan-14b",
        dit=DiTConfig(
            dim=5120, num_heads=40, num_layers=40, ffn_dim=13824, latent_channels=16, cond_channels=20,
            text_dim=4096, freq_dim=256, audio_dim=768, audio_window=1, audio_positions=True, motion_dim=64,
        ),
    ),
}


def get_preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None

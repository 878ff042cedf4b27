"""The video autoencoder: ``diffusers.AutoencoderKLWan`` (Wan2.1's causal 3D VAE), so Wan VAE weights load."""

from avatarv.models.vae.wan_vae import VideoVAE

__all__ = ["VideoVAE"]

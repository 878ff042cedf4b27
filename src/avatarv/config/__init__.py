"""Typed configs with named presets (``tiny``, ``small``, ``wan-1.3b``, ``wan-14b``)."""

from avatarv.config.dit import DiTConfig, ModelConfig, VAEConfig
from avatarv.config.presets import PRESETS, get_preset

__all__ = ["DiTConfig", "ModelConfig", "VAEConfig", "PRESETS", "get_preset"]

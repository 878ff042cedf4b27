"""The VideoRef DiT: Wan2.1 layout + sparse reference attention, audio cross-attention, motion stream."""

from avatarv.models.dit.cache import RefCacheMismatch, RefKVCache
from avatarv.models.dit.inputs import DiTOutput, RefInputs
from avatarv.models.dit.model import VideoRefDiT
from avatarv.models.dit.wan_weights import load_wan_dit, load_wan_state_dict

__all__ = [
    "VideoRefDiT", "RefInputs", "DiTOutput", "RefKVCache", "RefCacheMismatch", "load_wan_dit", "load_wan_state_dict",
]

"""Typed configuration of the VideoRef DiT.

The shared part (patch embedding, time/text embeddings, blocks, head) is Wan2.1's layout, so a Wan
checkpoint loads by a key table (``models/dit/wan_weights.py``). The parts Wan does not have (reference
stream, audio cross-attention, motion tokens, guidance embedding) are switched on by their sizes here and
start as the identity (zero-initialised output projections).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from avatarv.errors import ConfigError

ATTENTION_BACKENDS = ("auto", "sdpa", "chunked", "tiled", "flex", "flash", "sage")
AUDIO_ADAPTERS = ("windowed", "infinitetalk")


@dataclass(frozen=True)
class DiTConfig:
    dim: int = 1536
    num_heads: int = 12
    num_layers: int = 30
    ffn_dim: int = 8960
    latent_channels: int = 16  # VAE latent channels (noisy input and velocity output)
    # Wan I2V conditioning: 4 mask channels + latent_channels clean latents of known frames (scene image,
    # prefix). 0 = Wan T2V (no condition input).
    cond_channels: int = 0
    patch_size: tuple[int, int, int] = (1, 2, 2)
    text_dim: int = 4096
    # Wan2.1 I2V's CLIP image branch: CLIP ViT-H/14 hidden states [B, 257, image_dim] (1280 in Wan I2V), projected
    # (models/dit/image_embedding.py) and attended in every block's cross-attention beside the text
    # (cross_attention.py). 0 = none (Wan T2V, and avatarv checkpoints before it).
    image_dim: int = 0
    freq_dim: int = 256
    eps: float = 1e-6
    rope_theta: float = 10000.0
    timestep_scale: float = 1000.0  # model timestep = flow time t ∈ [0, 1] × this (Wan's convention)
    # Reference stream: reference frames sit at time positions ref_time_offset + r so they never collide
    # with generated frames (chunks are at most a few hundred latent frames long).
    ref_time_offset: int = 4096
    # Audio cross-attention: audio features [B, F, audio_tokens_per_frame, audio_dim] per latent frame;
    # the tokens of latent frame f attend to frames f-audio_window … f+audio_window. 0 = no audio.
    audio_dim: int = 0
    audio_window: int = 1
    # A learned embedding per slot of a frame's audio window ((2w+1)·audio_tokens_per_frame slots, zero at
    # init), added to the audio keys and values. Attention over a set of keys is blind to their order: without
    # it a frame's tokens cannot tell their own latent frame's audio from the neighbours', nor which video
    # frame of the four each audio token belongs to, so per-frame lip motion is out of reach (measured:
    # benchmarks/results/audio-positions.md). False: checkpoints trained before it.
    audio_positions: bool = False
    audio_tokens_per_frame: int = 4  # audio tokens per latent frame (the VAE's temporal stride)
    # Which audio adapter: "windowed" (avatarv's: audio_embedding MLP + windowed per-frame cross-attention, above)
    # or "infinitetalk" (InfiniteTalk / MultiTalk, models/dit/infinitetalk_audio.py: ``audio_proj`` turns
    # wav2vec windows [speakers, 1 + 4·(F−1) video frames, audio_frame_window, audio_layers, audio_dim] into
    # audio_context_tokens × audio_token_dim tokens per latent frame; every block adds ``norm_x`` +
    # ``audio_cross_attn``, frame-local, after the text/image cross-attention; two speakers use L-RoPE).
    # audio_tokens_per_frame is then the VAE's temporal stride (InfiniteTalk's ``vae_scale``).
    audio_adapter: str = "windowed"
    audio_layers: int = 12  # wav2vec hidden layers stacked per video frame (infinitetalk)
    audio_frame_window: int = 5  # video frames of wav2vec context per frame, centred (infinitetalk: ±2)
    audio_hidden_dim: int = 512  # audio_proj's intermediate width
    audio_context_tokens: int = 32  # audio tokens per latent frame and speaker
    audio_token_dim: int = 768  # width of those tokens (the key/value input of audio_cross_attn)
    audio_norm_output: bool = True  # LayerNorm on audio_proj's tokens (InfiniteTalk norm_output_audio)
    # L-RoPE (two speakers): speaker 1's tokens get 1-D positions in [0, lrope_interval], speaker 2's in
    # [lrope_range − lrope_interval, lrope_range], the background lrope_range // 2 (InfiniteTalk class_range /
    # class_interval).
    lrope_range: int = 24
    lrope_interval: int = 4
    # Motion stream: one token per latent frame carrying motion_dim features. 0 = no motion stream.
    motion_dim: int = 0
    # The motion stream's per-channel normalisation (``models/dit/motion_norm.py``): the flow runs on
    # (features − mean) / std, as it runs on normalised VAE latents. Empty: raw features (checkpoints trained
    # before it). Raw features have std ≈ 0.1–0.3 against unit noise, so most flow times see noise alone.
    motion_mean: tuple[float, ...] = ()
    motion_std: tuple[float, ...] = ()
    # Reference behaviour (``models/dit/behaviour.py``): the per-channel mean and std over time of the
    # reference's motion tokens, standardised with behaviour_mean/std (statistics of the training references,
    # 2·motion_dim values each), go through an MLP into the time embedding — a global adaLN condition, as
    # DiT's class label. Attention can copy a reference token; a statistic over time it has to compute, and
    # 400 steps of reference motion tokens alone taught the motion stream nothing about rhythm or amplitude.
    # An image reference gives one frame: its std is zero, no rhythm. False: checkpoints trained before it.
    ref_behaviour: bool = False
    behaviour_mean: tuple[float, ...] = ()
    behaviour_std: tuple[float, ...] = ()
    # Distilled students take guidance scales as input (CFG distillation). 0 = none.
    num_guidance_scales: int = 0
    # Attention backend: auto | sdpa | chunked | tiled | flex | flash | sage (models/dit/attention.py).
    attn_backend: str = "auto"
    # Local temporal attention among generated tokens (the SR refiner): a token of frame i sees generated
    # tokens of frames |i − j| ≤ local_window, and every reference token. 0 = global attention.
    local_window: int = 0

    def __post_init__(self):
        if self.dim % self.num_heads:
            raise ConfigError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        head_dim = self.dim // self.num_heads
        if head_dim % 2 or head_dim < 6:
            raise ConfigError(f"head dim {head_dim} must be even and ≥ 6 (3D RoPE splits it in three)")
        if self.cond_channels not in (0, self.latent_channels + 4):
            raise ConfigError(
                f"cond_channels must be 0 (T2V) or latent_channels + 4 = {self.latent_channels + 4} (I2V), "
                f"got {self.cond_channels}"
            )
        for name in ("num_layers", "ffn_dim", "latent_channels", "text_dim", "freq_dim"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.attn_backend not in ATTENTION_BACKENDS:
            raise ConfigError(f"attn_backend must be one of {', '.join(ATTENTION_BACKENDS)}, got {self.attn_backend!r}")
        if self.local_window < 0:
            raise ConfigError(f"local_window must be ≥ 0, got {self.local_window}")
        if self.audio_adapter not in AUDIO_ADAPTERS:
            raise ConfigError(f"audio_adapter must be one of {', '.join(AUDIO_ADAPTERS)}, got {self.audio_adapter!r}")
        if self.audio_adapter == "infinitetalk" and not self.audio_dim:
            raise ConfigError("audio_adapter 'infinitetalk' needs audio_dim (the wav2vec width, 768)")
        if self.audio_adapter == "infinitetalk" and self.audio_frame_window % 2 == 0:
            raise ConfigError(f"audio_frame_window must be odd (a centred window), got {self.audio_frame_window}")
        if self.audio_tokens_per_frame < 1:
            raise ConfigError(f"audio_tokens_per_frame must be ≥ 1, got {self.audio_tokens_per_frame}")
        if self.audio_window < 0 or self.audio_dim < 0 or self.motion_dim < 0 or self.image_dim < 0:
            raise ConfigError("audio_dim, audio_window, motion_dim and image_dim must be ≥ 0")
        if (self.motion_mean or self.motion_std) and not (
                len(self.motion_mean) == len(self.motion_std) == self.motion_dim):
            raise ConfigError(f"motion_mean and motion_std need {self.motion_dim} values each (motion_dim), "
                              f"got {len(self.motion_mean)} and {len(self.motion_std)}")
        if any(not s > 0 for s in self.motion_std):
            raise ConfigError("motion_std values must be positive")
        if self.ref_behaviour and not self.motion_dim:
            raise ConfigError("ref_behaviour needs a motion stream (motion_dim > 0): it pools the reference's motion")
        if (self.behaviour_mean or self.behaviour_std) and not (
                len(self.behaviour_mean) == len(self.behaviour_std) == 2 * self.motion_dim):
            raise ConfigError(f"behaviour_mean and behaviour_std need 2·motion_dim = {2 * self.motion_dim} values "
                              f"each, got {len(self.behaviour_mean)} and {len(self.behaviour_std)}")
        if any(not s > 0 for s in self.behaviour_std):
            raise ConfigError("behaviour_std values must be positive")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def in_channels(self) -> int:
        return self.latent_channels + self.cond_channels

    def to_dict(self) -> dict:
        d = asdict(self)
        d["patch_size"] = list(self.patch_size)
        for key in ("motion_mean", "motion_std", "behaviour_mean", "behaviour_std"):
            d[key] = list(getattr(self, key))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DiTConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown DiT config keys: {sorted(unknown)}")
        d = dict(d)
        if "patch_size" in d:
            d["patch_size"] = tuple(d["patch_size"])
        for key in ("motion_mean", "motion_std", "behaviour_mean", "behaviour_std"):
            if key in d:
                d[key] = tuple(float(x) for x in d[key])
        return cls(**d)


@dataclass(frozen=True)
class VAEConfig:
    """``diffusers.AutoencoderKLWan`` hyper-parameters (Wan2.1's VAE is base_dim 96, z_dim 16)."""

    base_dim: int = 96
    z_dim: int = 16
    temporal_stride: int = 4  # causal: 4k+1 frames → k+1 latent frames
    spatial_stride: int = 8


@dataclass(frozen=True)
class ModelConfig:
    """A named preset: the DiT, the VAE it works with, and the generation geometry."""

    name: str
    dit: DiTConfig = field(default_factory=DiTConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    fps: int = 25
    resolution: int = 480  # generation height = width for the square avatar crop (pixels)
    chunk_latent_frames: int = 41  # seed: 41 latent frames = 161 frames ≈ 6.4 s per chunk
    overlap_latent_frames: int = 2  # seed: adjacent chunks overlap by 2 (latent) frames
    max_ref_latent_frames: int = 11  # reference frames kept (4k+1 pixel frames → k+1 latents)
    # every k-th reference frame (k > 1: the same tokens see k times as long a stretch of behaviour, blinks and
    # nods at a k-fold lower frame rate); the model must be trained with the stride it is used with
    ref_frame_stride: int = 1
    # the DiT was trained with the reference's motion features as tokens (RefInputs.motion): the pipeline reads
    # them from the reference frames (pipelines/reference.reference_motion) and passes them with the latents
    ref_motion: bool = False

    def __post_init__(self):
        if self.vae.z_dim != self.dit.latent_channels:
            raise ConfigError(f"VAE z_dim {self.vae.z_dim} ≠ DiT latent_channels {self.dit.latent_channels}")
        if self.resolution % (self.vae.spatial_stride * self.dit.patch_size[1]):
            raise ConfigError(f"resolution {self.resolution} must be a multiple of "
                              f"{self.vae.spatial_stride * self.dit.patch_size[1]}")
        if self.ref_motion and not self.dit.motion_dim:
            raise ConfigError("ref_motion needs a DiT with a motion stream (dit.motion_dim > 0)")
        if self.dit.ref_behaviour and not self.ref_motion:
            raise ConfigError("a DiT with ref_behaviour pools the reference's motion: the preset needs ref_motion")
        if not 1 <= self.overlap_latent_frames < self.chunk_latent_frames:
            raise ConfigError("need 1 ≤ overlap_latent_frames < chunk_latent_frames")

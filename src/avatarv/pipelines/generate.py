"""AvatarPipeline: reference video + speech → a talking video, chunk after chunk, streamed to an mp4.

Composition only (the maths lives in models/ and diffusion/): prepare the reference once (latents and
its K/V cache, reused by every step of every chunk), then for each chunk of the ChunkPlan build the I2V
condition (scene image for the first chunk, the re-encoded tail of the previous chunk after that), sample
video and motion jointly, decode, cross-fade the overlap, and append to the streaming writer with the
chunk's exact audio samples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from avatarv.config import ModelConfig, get_preset
from avatarv.diffusion import GuidanceScales, make_sampler, resolution_shift, sigma_schedule
from avatarv.errors import CheckpointError, InputError
from avatarv.media import StreamingMp4Writer, Video
from avatarv.models.dit import RefInputs, RefKVCache, VideoRefDiT
from avatarv.models.encoders.audio_features import LogMelFeatures
from avatarv.models.vae import VideoVAE
from avatarv.pipelines.chunks import Chunk, ChunkPlan
from avatarv.pipelines.reference import PreparedReference, prepare_reference


@dataclass
class GenerationOptions:
    seconds: float | None = None  # None: as long as the speech
    steps: int = 24  # the seed's distilled sampler runs 24 steps
    sampler: str = "overshoot"
    overshoot: float = 1.0
    shift: float | None = None  # None: resolution-dependent shift
    guidance: GuidanceScales = field(default_factory=lambda: GuidanceScales({"ref": 1.0, "audio": 1.0, "text": 1.0}))
    seed: int = 0
    anchor: bool = True  # global appearance anchor: later chunks also attend to the first chunk
    anchor_latents: int = 4  # latent frames of the first chunk kept as the anchor


def crossfade(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Linear blend from ``a`` to ``b`` over their common length (frames ``[P, H, W, 3]`` uint8)."""
    w = np.linspace(0, 1, len(a) + 2, dtype=np.float32)[1:-1, None, None, None]
    return np.round(a.astype(np.float32) * (1 - w) + b.astype(np.float32) * w).astype(np.uint8)


class AvatarPipeline:
    def __init__(self, cfg: ModelConfig, dit: VideoRefDiT, vae: VideoVAE, random_weights: bool = False):
        self.cfg = cfg
        self.dit = dit.eval()
        self.vae = vae
        self.audio_features = LogMelFeatures(n_mels=cfg.dit.audio_dim, fps=cfg.fps)
        self.random_weights = random_weights

    # ------------------------------------------------------------------ construction
    @classmethod
    def random(cls, preset: str = "tiny", seed: int = 0) -> AvatarPipeline:
        """Untrained weights of a preset (for tests, and the demo until a trained checkpoint exists)."""
        cfg = get_preset(preset)
        torch.manual_seed(seed)
        return cls(cfg, VideoRefDiT(cfg.dit), VideoVAE(cfg.vae), random_weights=True)

    @classmethod
    def from_checkpoint(cls, directory: str | Path) -> AvatarPipeline:
        """A pipeline directory: ``pipeline.json`` (preset + overrides), ``dit/`` and ``vae/``."""
        directory = Path(directory)
        meta_path = directory / "pipeline.json"
        if not meta_path.is_file():
            raise CheckpointError("not an avatarv pipeline checkpoint (no pipeline.json)", directory)
        meta = json.loads(meta_path.read_text())
        base = get_preset(meta.get("preset", "small"))
        dit = VideoRefDiT.from_pretrained(directory / "dit")
        vae = VideoVAE.from_pretrained(directory / "vae")
        from dataclasses import replace

        cfg = replace(base, dit=dit.cfg, vae=vae.cfg, **meta.get("overrides", {}))
        return cls(cfg, dit, vae)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.dit.save_pretrained(directory / "dit")
        self.vae.save_pretrained(directory / "vae")
        meta = {"preset": self.cfg.name, "overrides": {"resolution": self.cfg.resolution}}
        (directory / "pipeline.json").write_text(json.dumps(meta, indent=2))

    # ------------------------------------------------------------------ one chunk
    def _condition(self, known: torch.Tensor | None, num_latents: int, latent_hw: tuple[int, int]) -> torch.Tensor:
        """I2V condition ``[1, 4 + z, c, h, w]``: mask = 1 and the latents on the known leading frames."""
        z = self.cfg.dit.latent_channels
        h, w = latent_hw
        cond = torch.zeros(1, 4 + z, num_latents, h, w)
        if known is not None:
            k = known.shape[2]
            cond[:, :4, :k] = 1.0
            cond[:, 4:, :k] = known
        return cond

    def _sample_chunk(
        self, chunk: Chunk, known: torch.Tensor, audio_tokens: torch.Tensor, ref: list[RefInputs],
        cache: list[RefKVCache], opts: GenerationOptions, generator: torch.Generator, on_step=None,
    ) -> torch.Tensor:
        cfg = self.cfg
        s = cfg.resolution // cfg.vae.spatial_stride
        c = chunk.num_latents
        cond = self._condition(known, c, (s, s))
        video = torch.randn(1, cfg.dit.latent_channels, c, s, s, generator=generator)
        state: tuple[torch.Tensor, ...] = (video,)
        if cfg.dit.motion_dim:
            state = (video, torch.randn(1, c, cfg.dit.motion_dim, generator=generator))
        audio = audio_tokens[None]  # [1, c, 4, n_mels]

        def velocity(x, sigma):
            t = sigma.reshape(1).float()
            motion = x[1] if len(x) > 1 else None

            def predict(kept: frozenset[str]):
                out = self.dit(
                    x[0], t, cond=cond, audio=audio if "audio" in kept else None, motion=motion,
                    ref=ref if "ref" in kept else None, ref_cache=cache if "ref" in kept else None,
                )
                return torch.cat([out.video.flatten(), out.motion.flatten()]) if motion is not None else out.video

            v = opts.guidance.combine({p: predict(p) for p in opts.guidance.passes()})
            if motion is None:
                return (v,)
            n = x[0].numel()
            return v[:n].view_as(x[0]), v[n:].view_as(motion)

        tokens = c * (s // 2) ** 2
        shift = opts.shift if opts.shift is not None else resolution_shift(tokens)
        sampler = make_sampler(opts.sampler, **({"overshoot": opts.overshoot} if opts.sampler == "overshoot" else {}))
        with torch.no_grad():
            out = sampler(velocity, state, sigma_schedule(opts.steps, shift), generator=generator,
                          callback=on_step)
        latents = out[0]
        k = known.shape[2] if known is not None else 0
        latents[:, :, :k] = known  # known frames are given, not generated
        return latents

    # ------------------------------------------------------------------ the job
    def generate(
        self, reference: Video, speech: np.ndarray, out_path: str | Path, opts: GenerationOptions | None = None,
        progress=None,
    ) -> dict:
        """Write the talking video to ``out_path`` (streamed; playable after each chunk). Returns a summary."""
        opts = opts or GenerationOptions()
        cfg = self.cfg
        fps, sr = cfg.fps, self.audio_features.sample_rate
        if speech.ndim != 1 or len(speech) < sr // fps:
            raise InputError("speech is empty or too short (need at least one video frame of audio)")
        seconds = opts.seconds if opts.seconds is not None else len(speech) / sr
        plan = ChunkPlan.for_duration(seconds, chunk_latents=cfg.chunk_latent_frames,
                                      overlap_latents=cfg.overlap_latent_frames, fps=fps, sample_rate=sr)
        prepared: PreparedReference = prepare_reference(reference, self.vae, cfg.resolution, cfg.max_ref_latent_frames)
        cache = RefKVCache()
        anchor_cache = RefKVCache()
        refs, caches = [prepared.ref], [cache]
        generator = torch.Generator().manual_seed(opts.seed)
        speech = np.pad(speech, (0, max(0, plan.total_samples() - len(speech))))
        scene_latent = self.vae.encode(prepared.scene_frame[None])  # [1, z, 1, h, w]
        chunks = plan.chunks()
        pending: np.ndarray | None = None  # decoded frames of the last overlap, not yet written
        written = 0
        out_path = Path(out_path)
        with StreamingMp4Writer(out_path, fps, cfg.resolution, cfg.resolution, sample_rate=sr) as writer:
            for chunk in chunks:
                if chunk.index == 0:
                    known = scene_latent
                else:
                    known = self.vae.encode(pending)  # the previous chunk's tail → prefix latents
                tokens = self.audio_features.latent_tokens(speech, chunk.start_frame, chunk.num_latents)
                latents = self._sample_chunk(chunk, known, tokens, refs, caches, opts, generator,
                                             on_step=(lambda i, x, c=chunk: progress(c, i)) if progress else None)
                if chunk.index == 0 and opts.anchor and len(chunks) > 1:
                    # global appearance anchor: the first chunk's last latent frames, a second reference
                    # stream at its own time offset; its K/V are computed once and kept for every later chunk
                    anchor = RefInputs(latents[:, :, -opts.anchor_latents :].clone(),
                                       time_offset=cfg.dit.ref_time_offset + 2048)
                    refs, caches = [prepared.ref, anchor], [cache, anchor_cache]
                frames = self.vae.decode(latents)  # [4(c−1)+1, S, S, 3]
                if pending is not None:
                    frames[: len(pending)] = crossfade(pending, frames[: len(pending)])
                last = chunk.index == len(chunks) - 1
                tail = 0 if last else plan.overlap_frames
                new = frames[: len(frames) - tail]
                new = new[: max(0, plan.total_frames - written)]
                a, b = plan.sample_range(written, len(new))
                if len(new):
                    writer.append(new, speech[a:b].astype(np.float32))
                written += len(new)
                pending = None if last else frames[len(frames) - tail :]
        return {
            "out": str(out_path), "frames": written, "seconds": written / fps, "chunks": len(chunks),
            "ref_cache_builds": cache.builds, "anchor_cache_builds": anchor_cache.builds,
            "ref_cache_hits": cache.hits, "ref_latent_frames": prepared.ref.num_frames,
            "faceless_ref_frames": int((~prepared.ref.frame_mask).sum()), "random_weights": self.random_weights,
        }

"""One generation job's state, prepared once before the first chunk: the reference (latents, motion, K/V
caches of the reference, the appearance anchor and the refiner's reference), the speech track's audio
tokens, the prompt, the scene image's latent, the noise generator and the motion track.

``prepare_job`` runs the preparation phases in order (each told to ``on_phase``, so the progress bar never
sits at 0 % silently); ``AvatarPipeline.generate`` then loops over the plan's chunks with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from avatarv.errors import InputError
from avatarv.media import Video
from avatarv.models.dit import RefInputs, RefKVCache
from avatarv.models.dit.motion_codec import MotionCodec
from avatarv.models.encoders.audio_features import SpeechTokens
from avatarv.pipelines.chunks import ChunkPlan
from avatarv.pipelines.image_engine import generate_scene_image, load_scene_image
from avatarv.pipelines.motion_track import MotionTrack
from avatarv.pipelines.reference import PreparedReference, prepare_reference


@dataclass
class Job:
    plan: ChunkPlan
    prepared: PreparedReference
    codec: MotionCodec
    speech: np.ndarray  # [samples] padded to the plan's length
    speech_tokens: SpeechTokens
    text: torch.Tensor | None  # [1, L, text_dim] prompt tokens
    scene_latent: torch.Tensor  # [1, z, 1, h, w]
    scene_views: list[int]
    generator: torch.Generator
    refine: bool
    out_res: int
    track: MotionTrack | None = None
    scene: np.ndarray | None = None  # [S, S, 3] uint8: the first chunk's known frame (the colour reference)
    cache: RefKVCache = field(default_factory=RefKVCache)  # the reference's K/V
    anchor_cache: RefKVCache = field(default_factory=RefKVCache)  # the appearance anchor's
    hr_cache: RefKVCache = field(default_factory=RefKVCache)  # the refiner's reference
    anchor: RefInputs | None = None  # set after the first chunk (when the job has several)

    def refs(self) -> tuple[list[RefInputs], list[RefKVCache]]:
        """The reference streams every chunk attends to, with their caches (+ the anchor once it exists)."""
        if self.anchor is None:
            return [self.prepared.ref], [self.cache]
        return [self.prepared.ref, self.anchor], [self.cache, self.anchor_cache]


def prepare_job(pipe, reference: Video, speech: np.ndarray, opts, plan: ChunkPlan, on_phase) -> Job:
    """Everything a job needs before its first chunk (``opts``: ``GenerationOptions``)."""
    cfg = pipe.cfg
    refine = pipe.refiner is not None and opts.refine
    out_res = cfg.resolution * (pipe.refiner.factor if refine else 1)
    prepared = prepare_reference(
        reference, pipe.vae, cfg.resolution, cfg.max_ref_latent_frames, hr_resolution=out_res if refine else None,
        stride=cfg.ref_frame_stride, motion_dim=cfg.dit.motion_dim if cfg.ref_motion else 0, on_phase=on_phase,
    )
    codec = MotionCodec.from_config(pipe.dit.cfg)
    if prepared.ref.motion is not None:  # the DiT reads reference motion in its stream's space
        prepared.ref = replace(prepared.ref, motion=codec.normalize(prepared.ref.motion))
    generator = torch.Generator().manual_seed(opts.seed)
    speech = np.pad(speech, (0, max(0, plan.total_samples() - len(speech))))
    speech_tokens = pipe.audio_features.prepare(speech)  # the track's features, once per job
    text = pipe.encode_text(opts.prompt)
    scene, views = scene_image(pipe, prepared, opts, generator)
    on_phase("encoding the scene image")
    scene_latent = pipe.vae.encode(scene[None])  # [1, z, 1, h, w]
    track = None
    if opts.motion_path:
        if not cfg.dit.motion_dim:
            raise InputError("this checkpoint has no motion stream (motion_dim = 0): --motion-out needs one")
        track = MotionTrack(codec.names, plan.overlap_frames, plan.total_frames)
    return Job(plan, prepared, codec, speech, speech_tokens, text, scene_latent, views, generator, refine, out_res,
               track, scene)


def scene_image(pipe, prepared: PreparedReference, opts, generator: torch.Generator) -> tuple[np.ndarray, list[int]]:
    """The first chunk's known frame ``[S, S, 3]``: the user's scene image, the image engine's (from diverse
    reference frames and the scene prompt), or the reference's first frame with a face; and the engine's views."""
    if opts.scene_image is not None:
        return load_scene_image(opts.scene_image, pipe.cfg.resolution), []
    if opts.scene_engine or opts.scene_prompt:
        text = pipe.encode_text(opts.scene_prompt if opts.scene_prompt is not None else opts.prompt)
        return generate_scene_image(pipe, prepared.frames, prepared.face_found, generator, text=text)
    return prepared.scene_frame, []


__all__ = ["Job", "prepare_job", "scene_image"]

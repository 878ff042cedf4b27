"""InfiniteTalk's sampling as a mode of avatarv: a Wan2.1-I2V + InfiniteTalk DiT, its encoders and VAE, run
chunk after chunk as MeiGen-AI/InfiniteTalk ``wan/multitalk.py: generate`` does, streamed to an mp4.

Per chunk of ``frame_num`` (81) frames: the reference frame at the chunk's start (the input video's frame, or the
one image) is resized into the aspect bucket, encoded by CLIP (image tokens) and, followed by black frames, by the
VAE (the I2V condition, mask on latent frame 0); the previous chunk's last ``motion_frames`` (9) frames, re-encoded
(3 latents), overwrite the head of the latents before every step (the first chunk: the reference frame); Wan's
timesteps ``linspace(1000, 1, steps)`` shifted (7 at 480p, 11 at 720p); three-pass CFG (cond, drop text = the
negative prompt, uncond = negative prompt + one silent speaker; text 5, audio 4), or two passes at text scale 1;
decoded, colour-matched to the first reference frame; the chunk's new frames (after its motion frames) appended to
the streaming mp4 with their audio. The audio of each speaker: 16 kHz mono at −23 LUFS → wav2vec2 (CNN features
interpolated to 25 fps, 12 layers stacked) → a ±2-frame window per frame; past the end, the reversed tail.

avatarv's options on top: the video reference (sparse reference attention over reference-video latents, K/V
cached for every step and chunk), the global appearance anchor (the first chunk's last latents as a second
reference stream), the overshoot sampler. The DiT runs through ``pipelines.sampling`` like every other caller.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avatarv.errors import InputError
from avatarv.media import StreamingMp4Writer, Video
from avatarv.models.dit import RefInputs, RefKVCache, VideoRefDiT
from avatarv.models.dit.conditions import Conditions
from avatarv.models.dit.infinitetalk import TEXT_LEN
from avatarv.models.encoders.infinitetalk_audio import audio_windows
from avatarv.pipelines.infinitetalk_sampling import (
    DEFAULT_SHIFT,
    NEGATIVE_PROMPT,
    KnownHead,
    infinitetalk_guidance,
    match_colors,
    pad_reversed_tail,
    pick_bucket,
    resize_and_centercrop,
    speaker_masks,
)
from avatarv.pipelines.sampling import DiTVelocity, SamplingOptions
from avatarv.precision import autocast

SAMPLE_RATE = 16000
FPS = 25
OFFLOAD_MODES = ("none", "model", "blocks")


@dataclass
class InfiniteTalkOptions:
    size: str = "infinitetalk-480"  # aspect buckets: infinitetalk-480 | infinitetalk-720
    resolution: tuple[int, int] | None = None  # (h, w) instead of the bucket (multiples of 16)
    frame_num: int = 81  # frames per chunk (4n + 1)
    motion_frames: int = 9  # frames carried into the next chunk (4n + 1)
    steps: int = 40
    shift: float | None = None  # None: 7 at 480p, 11 at 720p (generate_infinitetalk.py)
    text_scale: float = 5.0
    audio_scale: float = 4.0
    color_correction: float = 1.0  # 0 … 1 (match_and_blend_colors)
    prompt: str = ""
    negative_prompt: str = NEGATIVE_PROMPT
    seed: int = 0
    seconds: float | None = None  # None: as long as the speech
    boxes: list[tuple[int, int, int, int]] | None = None  # two speakers: (x_min, y_min, x_max, y_max) each
    sampler: str = "euler"  # InfiniteTalk's Euler; "overshoot": avatarv's
    overshoot: float = 1.0
    video_ref: bool = False  # avatarv: attend to the whole reference video (sparse reference attention)
    ref_latents: int = 4  # latent frames of the reference video to keep (video_ref)
    anchor: bool = False  # avatarv: the first chunk's last latents as a second reference stream
    anchor_latents: int = 2
    # applied to each chunk's new frames [n, H, W, 3] uint8 right before they are written (the server's watermark)
    frame_filter: Callable[[np.ndarray], np.ndarray] | None = None

    def sampling(self) -> SamplingOptions:
        shift = self.shift if self.shift is not None else DEFAULT_SHIFT.get(self.size, 7.0)
        return SamplingOptions(steps=self.steps, sampler=self.sampler, overshoot=self.overshoot, shift=shift,
                               guidance=infinitetalk_guidance(self.text_scale, self.audio_scale), schedule_kind="wan")

    def validate(self) -> None:
        for name in ("frame_num", "motion_frames"):
            n = getattr(self, name)
            if n < 1 or (n - 1) % 4:
                raise InputError(f"{name} must be 4n + 1, got {n}")
        if self.motion_frames >= self.frame_num:
            raise InputError(f"motion_frames ({self.motion_frames}) must be below frame_num ({self.frame_num})")
        if self.resolution is not None and any(v % 16 for v in self.resolution):
            raise InputError(f"resolution {self.resolution} must be multiples of 16 (VAE 8 × patch 2)")


class InfiniteTalkPipeline:
    """DiT (``audio_adapter="infinitetalk"``), VAE (``VideoVAE``), CLIP (``ClipVisionEncoder``), UMT5
    (``UMT5Encoder``) and wav2vec (``InfiniteTalkAudioEncoder``), composed as InfiniteTalk samples."""

    def __init__(self, dit: VideoRefDiT, vae, clip, t5, audio_encoder, dtype: torch.dtype = torch.float32,
                 offload: str = "none", device: str | torch.device | None = None):
        """``offload``: ``none`` (everything on ``device``), ``model`` (each of the DiT, T5, CLIP, VAE and wav2vec
        on the device only while it runs), ``blocks`` (the encoders as in ``model``; the DiT's blocks streamed
        from host memory one block ahead of use) — ``distributed/offload.py``; exact on any device."""
        if dit.audio_proj is None:
            raise InputError("the DiT has no InfiniteTalk audio adapter (audio_adapter = 'infinitetalk')")
        if offload not in OFFLOAD_MODES:
            raise InputError(f"--offload must be one of {', '.join(OFFLOAD_MODES)}, got {offload!r}")
        self.dit, self.vae, self.clip, self.t5, self.audio = dit.eval(), vae, clip, t5, audio_encoder
        self.dtype = dtype
        self.vae.compute_dtype = dtype
        self.offload = offload
        self._device = torch.device(device) if device is not None else next(dit.parameters()).device
        self._modules = self._blocks = None
        if offload != "none":
            from avatarv.distributed.offload import offload_blocks, offload_modules

            parts = {"t5": t5.model, "clip": clip.model, "vae": vae, "wav2vec": audio_encoder.model}
            if offload == "model":
                parts["dit"] = dit
            else:
                self._blocks = offload_blocks(dit, self._device)
            self._modules = offload_modules(parts, self._device)

    def _use(self, name: str):
        """The named part on the device for the duration (``offload``); a no-op without offloading."""
        if self._modules is None or name not in self._modules.modules:
            return contextlib.nullcontext()
        return self._modules.use(name)

    @classmethod
    def from_paths(cls, wan: str | Path, audio_file: str | Path, wav2vec: str | Path, t5: str | Path, clip: str | Path,
                   vae: str | Path, loras=(), dtype: str | None = None, device: str | torch.device = "cpu",
                   on_part: Callable[[str], None] | None = None, offload: str = "none",
                   fp8: bool = False) -> InfiniteTalkPipeline:
        """Every part from local files (never a hub): ``wan`` a Wan2.1-I2V checkpoint (original or diffusers
        layout), ``audio_file`` InfiniteTalk's / MultiTalk's audio adapter, ``wav2vec`` a chinese-wav2vec2-base
        folder, ``t5`` / ``clip`` / ``vae`` in diffusers' or Wan's own layout (``.pth``), ``loras`` LoRA specs.
        ``dtype``: the precision policy's (``avatarv.precision``): bf16 where the hardware computes it. ``fp8``: the
        DiT blocks' linear weights in e4m3 (``models/fp8.py``: FP8 matmuls on sm_89+, weight-only elsewhere)."""
        from avatarv.models.dit.infinitetalk import load_infinitetalk
        from avatarv.models.encoders.clip_vision import load_clip_vision
        from avatarv.models.encoders.infinitetalk_audio import InfiniteTalkAudioEncoder, wav2vec_width
        from avatarv.models.encoders.umt5 import load_umt5_encoder
        from avatarv.precision import compute_dtype

        device = torch.device(device)
        run = compute_dtype(device, dtype)
        home = device if offload == "none" else torch.device("cpu")  # offloaded parts load into host memory
        say = on_part or (lambda name: None)
        say("the DiT")
        # the adapter's input width is the wav2vec width × layers: the wav2vec folder says which
        audio_dim = wav2vec_width(wav2vec)
        dit = load_infinitetalk(wan, audio_file, lora=loras, dtype=run, device=home, audio_dim=audio_dim)
        if fp8:
            from avatarv.models.fp8 import quantize_fp8

            quantize_fp8(dit)
        say("the VAE")
        video_vae = load_vae(vae).to(home)
        say("CLIP")
        image = load_clip_vision(clip, home, run)
        say("UMT5")
        text = load_umt5_encoder(t5, home, run)
        say("wav2vec2")
        audio = InfiniteTalkAudioEncoder(wav2vec, home)
        return cls(dit, video_vae, image, text, audio, dtype=run, offload=offload, device=device)

    @property
    def device(self) -> torch.device:
        return self._device

    def autocast(self):
        return autocast(self.device, self.dtype)

    # ------------------------------------------------------------------ inputs
    def encode_text(self, prompt: str) -> torch.Tensor:
        """``[1, 512, text_dim]``: UMT5 states of ``prompt`` zero-padded to Wan's text_len."""
        with self._use("t5"):
            ctx = self.t5.encode([prompt])[0].float().cpu()
        return torch.cat([ctx, ctx.new_zeros(TEXT_LEN - len(ctx), ctx.shape[1])])[None]

    def speaker_embeddings(self, speeches: list[np.ndarray]) -> list[torch.Tensor]:
        """Each speaker's 16 kHz track → ``[T, layers, C]`` wav2vec states at 25 fps (all as long as the longest)."""
        prepared = [self.audio.prepare(s, SAMPLE_RATE) for s in speeches]
        n = max(len(p) for p in prepared)
        prepared = [np.pad(p, (0, n - len(p))) for p in prepared]
        with self._use("wav2vec"):
            return [self.audio.embed(p).float().cpu() for p in prepared]

    def cond_frame(self, frames: np.ndarray, index: int, target: tuple[int, int]) -> torch.Tensor:
        """The reference frame for a chunk starting at video frame ``index`` (the last frame past the end), in
        the bucket: ``[H, W, 3]`` float on 0…255."""
        frame = frames[min(index, len(frames) - 1)]
        return torch.from_numpy(resize_and_centercrop(frame, target)).float()

    def i2v_condition(self, image: torch.Tensor, frame_num: int) -> torch.Tensor:
        """``[1, 4 + z, F, h, w]``: mask 1 on latent frame 0, VAE latents of [image, black × (frame_num − 1)]."""
        pad = torch.full((frame_num - 1, *image.shape), 127.5)  # 0 in [-1, 1]
        y = self.encode(torch.cat([image[None], pad]))  # [1, z, F, h, w]
        mask = torch.zeros(1, 4, y.shape[2], *y.shape[-2:])
        mask[:, :, 0] = 1
        return torch.cat([mask, y], dim=1)

    def clip_tokens(self, image: torch.Tensor) -> torch.Tensor:
        """``[1, 257, image_dim]`` from a ``[H, W, 3]`` 0…255 frame."""
        x = (image.permute(2, 0, 1)[None] / 127.5 - 1.0).to(self.device)
        with self._use("clip"):
            return self.clip.encode(x).float().cpu()

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """VAE latents ``[1, z, f, h, w]`` (on the CPU) of frames ``[T, H, W, 3]`` on 0…255."""
        with self._use("vae"):
            return self.vae.encode(frames).cpu()

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        with self._use("vae"):
            return self.vae.decode(latents.to(self.device))

    # ------------------------------------------------------------------ the job
    @torch.no_grad()
    def generate(self, reference: Video, speeches: list[np.ndarray], out_path: str | Path,
                 opts: InfiniteTalkOptions | None = None, progress: Callable[[int, int], None] | None = None) -> dict:
        """Write the talking video of the person in ``reference`` (a video, or one frame) saying ``speeches``
        (one or two speakers' 16 kHz mono tracks) to ``out_path``. Returns a summary."""
        opts = opts or InfiniteTalkOptions()
        opts.validate()
        if not 1 <= len(speeches) <= 2:
            raise InputError(f"one or two speakers' speech, got {len(speeches)}")
        if any(s.ndim != 1 or len(s) < SAMPLE_RATE // FPS for s in speeches):
            raise InputError("speech is empty or too short (need at least one video frame of audio)")
        frames = reference.frames
        src_h, src_w = frames.shape[1:3]
        target = opts.resolution or pick_bucket(src_h, src_w, opts.size)
        embs = self.speaker_embeddings(speeches)
        total = len(embs[0])
        if opts.seconds is not None:
            total = min(total, int(round(opts.seconds * FPS)))
        mix = np.clip(sum(np.pad(s, (0, max(len(x) for x in speeches) - len(s))) for s in speeches), -1, 1)
        mix = np.pad(mix, (0, max(0, total * SAMPLE_RATE // FPS - len(mix))))
        text, null_text = self.encode_text(opts.prompt), self.encode_text(opts.negative_prompt)
        lat_hw = (target[0] // 8, target[1] // 8)
        masks = None
        if len(speeches) == 2:  # InfiniteTalk: masks at the source size, into the bucket, at latent size
            full = speaker_masks(src_h, src_w, 2, opts.boxes)
            cropped = torch.stack([torch.from_numpy(resize_and_centercrop(m.numpy(), target, nearest=True)) for m in full])
            masks = (torch.nn.functional.interpolate(cropped[None].float(), size=lat_hw, mode="nearest") > 0).float()
        refs, caches = self._video_reference(frames, target, opts)
        generator = torch.Generator().manual_seed(opts.seed)
        first_ref = self.cond_frame(frames, 0, target)
        start, chunk, written, motion_latents = 0, 0, 0, None
        sampling = opts.sampling()
        with StreamingMp4Writer(out_path, FPS, target[1], target[0], sample_rate=SAMPLE_RATE) as writer:
            while True:
                cond_image = self.cond_frame(frames, start, target)
                end = start + opts.frame_num
                embs = [pad_reversed_tail(e, end) for e in embs]
                frames_now = range(start, end)
                window = self.dit.cfg.audio_frame_window
                audio = torch.stack([audio_windows(e, frames_now, window) for e in embs])[None]  # [1, S, F, 5, L, C]
                if motion_latents is None:
                    motion_latents = self.encode(cond_image[None])  # the first chunk: the reference frame
                conditions = Conditions(cond=self.i2v_condition(cond_image, opts.frame_num), audio=audio, text=text,
                                        null_text=null_text, image=self.clip_tokens(cond_image), ref=refs,
                                        ref_cache=caches, speaker_masks=masks)
                latents = self._sample(conditions, motion_latents, opts, sampling, generator, lat_hw,
                                       None if progress is None else (lambda i, x, c=chunk: progress(c, i)))
                video = self.decode(latents).astype(np.float32) / 255.0  # [frame_num, H, W, 3]
                video = match_colors(video, first_ref.numpy() / 255.0, opts.color_correction)
                if opts.anchor and chunk == 0 and opts.anchor_latents:
                    refs = [*(refs or []), RefInputs(latents[:, :, -opts.anchor_latents:].clone().to(self.device),
                                                     time_offset=self.dit.cfg.ref_time_offset + 2048)]
                    caches = [*(caches or []), RefKVCache()]
                new = video if chunk == 0 else video[opts.motion_frames:]
                new = new[: max(0, total - written)]
                if len(new):
                    a, b = written * SAMPLE_RATE // FPS, (written + len(new)) * SAMPLE_RATE // FPS
                    pixels = np.round(new * 255).astype(np.uint8)
                    if opts.frame_filter is not None:
                        pixels = opts.frame_filter(pixels)
                    writer.append(pixels, mix[a:b].astype(np.float32))
                    written += len(new)
                chunk += 1
                if written >= total or end >= total:
                    break
                tail = torch.from_numpy(video[-opts.motion_frames:] * 255.0)
                motion_latents = self.encode(tail)  # [1, z, (m − 1) / 4 + 1, h, w]
                start += opts.frame_num - opts.motion_frames
        return {"out": str(out_path), "frames": written, "seconds": written / FPS, "chunks": chunk,
                "resolution": list(target), "speakers": len(speeches), "steps": opts.steps,
                "passes_per_step": len(sampling.guidance.passes())}

    def _sample(self, conditions: Conditions, known: torch.Tensor, opts: InfiniteTalkOptions,
                sampling: SamplingOptions, generator: torch.Generator, lat_hw: tuple[int, int], on_step) -> torch.Tensor:
        """One chunk: noise → latents ``[1, z, F, h, w]`` with the known head kept (InfiniteTalk's loop)."""
        f = (opts.frame_num - 1) // 4 + 1
        noise = torch.randn(1, self.dit.cfg.latent_channels, f, *lat_hw, generator=generator).to(self.device)
        conditions = conditions.to(self.device)
        velocity = KnownHead(DiTVelocity(self.dit, conditions, sampling.guidance, precision=self.autocast),
                             known.to(self.device))
        tokens = f * (lat_hw[0] // 2) * (lat_hw[1] // 2)
        with self._use("dit"):
            out = sampling.make_sampler()(velocity, (noise,), sampling.schedule(tokens), generator=generator,
                                          callback=on_step)
        latents = out[0].cpu()
        known = known.cpu()
        latents[:, :, : known.shape[2]] = known
        return latents

    def _video_reference(self, frames: np.ndarray, target: tuple[int, int], opts: InfiniteTalkOptions):
        """avatarv's video reference: up to ``ref_latents`` latent frames of the reference video (its frames spread
        over its length), one RefKVCache for the whole job. None without ``video_ref``."""
        if not opts.video_ref:
            return None, None
        n = 4 * (opts.ref_latents - 1) + 1
        idx = np.linspace(0, len(frames) - 1, n).round().astype(int)
        clip = np.stack([resize_and_centercrop(frames[i], target) for i in idx])
        return [RefInputs(self.encode(torch.from_numpy(clip).float()).to(self.device))], [RefKVCache()]


def load_vae(path: str | Path):
    """The Wan2.1 VAE as a ``VideoVAE``: a diffusers ``AutoencoderKLWan`` folder, ``Wan2.1_VAE.pth``, or a folder
    holding that file."""
    from avatarv.errors import CheckpointError
    from avatarv.models.vae import VideoVAE
    from avatarv.models.vae.wan_vae_pth import video_vae_from_wan_pth

    path = Path(path)
    if path.is_dir() and (path / "vae" / "config.json").is_file():
        path = path / "vae"
    if path.is_dir() and (path / "config.json").is_file():
        return VideoVAE.from_pretrained(path)
    if path.is_dir() and (path / "Wan2.1_VAE.pth").is_file():
        path = path / "Wan2.1_VAE.pth"
    if path.is_file():
        return video_vae_from_wan_pth(path)
    raise CheckpointError("no VAE here (expected a diffusers vae folder with config.json, or Wan2.1_VAE.pth)", path)


__all__ = ["InfiniteTalkOptions", "InfiniteTalkPipeline", "load_vae"]

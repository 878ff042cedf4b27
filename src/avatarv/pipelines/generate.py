"""AvatarPipeline: reference video + speech → a talking video, chunk after chunk, streamed to an mp4.

Composition only (the maths lives in models/ and diffusion/): prepare the reference once (latents and
its K/V cache, reused by every step of every chunk), then for each chunk of the ChunkPlan build the I2V
condition (scene image for the first chunk, the re-encoded tail of the previous chunk after that), sample
video and motion jointly, decode, cross-fade the overlap, and append to the streaming writer with the
chunk's exact audio samples.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from avatarv.config import ModelConfig, get_preset
from avatarv.diffusion import GuidanceScales
from avatarv.errors import CheckpointError, InputError
from avatarv.media import StreamingMp4Writer, Video
from avatarv.models.dit import RefInputs, RefKVCache, VideoRefDiT
from avatarv.models.dit.conditions import Conditions, i2v_condition, leading_mask
from avatarv.models.dit.motion_codec import MotionCodec
from avatarv.models.encoders.wav2vec import make_audio_features
from avatarv.models.vae import VideoVAE
from avatarv.pipelines.chunks import Chunk, ChunkPlan
from avatarv.pipelines.colour_anchor import colour_anchor
from avatarv.pipelines.job import Job, prepare_job
from avatarv.pipelines.motion_track import save_motion_track
from avatarv.pipelines.reference import resize_square
from avatarv.pipelines.refiner import SRRefiner
from avatarv.pipelines.sampling import SamplingOptions, sample_chunk
from avatarv.pipelines.step_cache import StepCacheStats
from avatarv.pipelines.write_behind import WriteBehind
from avatarv.precision import autocast, compute_dtype, parse_dtype, requested


@dataclass
class GenerationOptions:
    seconds: float | None = None  # None: as long as the speech
    steps: int = 24  # the seed's distilled sampler runs 24 steps
    sampler: str = "overshoot"
    overshoot: float = 1.0
    shift: float | None = None  # None: resolution-dependent shift
    guidance: GuidanceScales = field(default_factory=GuidanceScales)  # default: 1 each, one DiT pass per step
    seed: int = 0
    anchor: bool = True  # global appearance anchor: later chunks also attend to the first chunk
    anchor_latents: int = 4  # latent frames of the first chunk kept as the anchor
    refine: bool = True  # run the SR refiner when the pipeline has one (output at 2× resolution)
    preview_path: str | None = None  # also stream the low-resolution video here (before SR)
    scene_image: str | None = None  # a user scene image (bypasses the image engine)
    scene_engine: bool = False  # generate the scene image with the image engine (else: a reference frame)
    prompt: str = ""  # text condition of every chunk (needs a checkpoint with a text encoder)
    scene_prompt: str | None = None  # text condition of the image engine's scene image (implies scene_engine)
    motion_path: str | None = None  # also write the generated motion stream here, per frame (``motion_track``)
    # a chunk's known leading frames get the previous chunk's motion, noised to each step's level as in
    # training (``known_motion``); off: their motion is sampled afresh and jumps at every seam
    motion_continuity: bool = True
    # applied to each chunk's frames ``[n, H, W, 3]`` uint8 right before they are written (e.g. the server's
    # watermark, so the live stream carries it too); None: written as generated
    frame_filter: Callable[[np.ndarray], np.ndarray] | None = None
    step_cache: float = 0.0  # step caching threshold (pipelines/step_cache.py); 0 = off
    step_cache_max_skips: int = 2
    # colour anchor (InfiniteTalk's ``color_correction_strength``): every decoded frame's Lab mean and std are
    # moved towards the scene image's by this fraction (0 … 1; 0 = off) before it is written and before its tail
    # is re-encoded as the next chunk's prefix, so a colour or exposure error cannot compound chunk after chunk.
    # 0 here as in InfiniteTalk's API; their command line, like ``avatarv generate`` and ``demo``, defaults to 1
    # (the world model at 20 s: ΔE between the last and the first chunk 15.7 → 0.8, benchmarks/longform.py)
    colour_correction: float = 0.0
    # write chunk i (cross-fade, filter, mp4, motion track) on a worker thread while chunk i + 1 samples
    # (pipelines/write_behind.py; same bytes either way); False: inline
    write_behind: bool = True
    # what re-encodes each chunk's tail as the next chunk's prefix: ``auto`` (the checkpoint's tiny tail encoder,
    # models/vae/tiny_encoder.py, when it has one; ~8× cheaper), ``full`` (the VAE's encoder) or ``tiny`` (required).
    # The reference and the scene image are always encoded by the full VAE.
    tail_encoder: str = "auto"

    def sampling(self) -> SamplingOptions:
        return SamplingOptions(steps=self.steps, sampler=self.sampler, overshoot=self.overshoot, shift=self.shift,
                               guidance=self.guidance, step_cache=self.step_cache,
                               step_cache_max_skips=self.step_cache_max_skips)


DECODERS = ("auto", "full", "tiny")
TAIL_ENCODERS = ("auto", "full", "tiny")


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a module's parameters live (the CPU for a parameter-free one)."""
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def crossfade(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Linear blend from ``a`` to ``b`` over their common length (frames ``[P, H, W, 3]`` uint8)."""
    w = np.linspace(0, 1, len(a) + 2, dtype=np.float32)[1:-1, None, None, None]
    return np.round(a.astype(np.float32) * (1 - w) + b.astype(np.float32) * w).astype(np.uint8)


@torch.no_grad()
def _live(model: VideoRefDiT) -> VideoRefDiT:
    """Random weights everywhere: the zero-initialised outputs (head, audio attention, motion head) would
    otherwise make an untrained DiT ignore its inputs, and the random pipeline would test nothing."""
    for p in model.parameters():
        if p.ndim >= 2 and not p.any():
            p.normal_(std=0.02)
    return model


def release_memory() -> None:
    """Return the freed heap to the OS between chunks (glibc ``malloc_trim``; a no-op elsewhere). Without it
    the allocator keeps fragments of every chunk's differently sized buffers and resident memory creeps up
    with the number of chunks."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name:
        try:
            ctypes.CDLL(name).malloc_trim(0)
        except (OSError, AttributeError):
            pass


class AvatarPipeline:
    def __init__(self, cfg: ModelConfig, dit: VideoRefDiT, vae: VideoVAE, random_weights: bool = False,
                 refiner: SRRefiner | None = None, text_encoder=None, audio_encoder: str | Path | None = None,
                 dtype: str | None = None, tail_encoder=None):
        """``dtype``: what the DiT, the refiner and the VAE compute in (``auto`` | ``fp32`` | ``bf16``; None:
        ``auto``): the precision policy (``avatarv.precision``) picks bf16 only where the hardware computes it.
        Random weights compute in exact fp32 unless a dtype is asked for (argument or ``AVATARV_DTYPE``)."""
        self.cfg = cfg
        self.dit = dit.eval()
        self.vae = vae
        device = module_device(dit)
        if random_weights and (dtype is None or parse_dtype(dtype, "--dtype") == "auto") and requested() == "auto":
            self.dtype = torch.float32
        else:
            self.dtype = compute_dtype(device, dtype)
        self.vae.compute_dtype = self.dtype
        self.refiner = refiner
        self.text_encoder = text_encoder
        # log-mel by default; a Wav2Vec2 folder (``audio_encoder/`` in a checkpoint) when the DiT was trained on it
        self.audio_encoder = Path(audio_encoder) if audio_encoder is not None else None
        self.audio_features = make_audio_features(cfg.dit.audio_dim, cfg.fps, self.audio_encoder)
        self.random_weights = random_weights
        # a TinyVideoEncoder for the chunk loop's prefix re-encode (GenerationOptions.tail_encoder), or None
        self.tail_encoder = tail_encoder.eval() if tail_encoder is not None else None

    # ------------------------------------------------------------------ construction
    @classmethod
    def random(cls, preset: str = "tiny", seed: int = 0, refiner: bool = False, dtype: str | None = None
               ) -> AvatarPipeline:
        """Untrained weights of a preset (for tests, and the demo until a trained checkpoint exists)."""
        cfg = get_preset(preset)
        torch.manual_seed(seed)
        dit = _live(VideoRefDiT(cfg.dit))
        sr = SRRefiner(_live(VideoRefDiT(replace(cfg.dit, local_window=1)))) if refiner else None
        return cls(cfg, dit, VideoVAE(cfg.vae), random_weights=True, refiner=sr, dtype=dtype)

    @classmethod
    def from_checkpoint(cls, directory: str | Path, dtype: str | None = None, decoder: str = "auto") -> AvatarPipeline:
        """A pipeline directory: ``pipeline.json`` (preset + overrides), ``dit/`` and ``vae/`` (and optionally
        ``tiny_decoder/``, a fast decoder distilled from the VAE's: models/vae/tiny_decoder.py). ``decoder``:
        ``auto`` (the tiny one when the folder has it), ``full`` (the VAE's own) or ``tiny`` (required)."""
        if decoder not in DECODERS:
            raise InputError(f"decoder {decoder!r}: expected one of {', '.join(DECODERS)}")
        directory = Path(directory)
        meta_path = directory / "pipeline.json"
        if not meta_path.is_file():
            raise CheckpointError("not an avatarv pipeline checkpoint (no pipeline.json)", directory)
        meta = json.loads(meta_path.read_text())
        base = get_preset(meta.get("preset", "small"))
        dit = VideoRefDiT.from_pretrained(directory / "dit")
        vae = VideoVAE.from_pretrained(directory / "vae")
        tiny = directory / "tiny_decoder"
        if decoder == "tiny" and not tiny.is_dir():
            raise CheckpointError("--decoder tiny: this checkpoint has no tiny_decoder/ folder", directory)
        if decoder == "tiny" or (decoder == "auto" and tiny.is_dir()):
            from avatarv.models.vae.tiny_decoder import FastDecodeVAE

            vae = FastDecodeVAE.from_folder(vae, tiny)
        refiner = None
        if (directory / "refiner").is_dir():
            refiner = SRRefiner(VideoRefDiT.from_pretrained(directory / "refiner"))
        text_encoder = None
        if (directory / "text_encoder").is_dir():
            from avatarv.models.encoders.text import TextEncoder

            text_encoder = TextEncoder.from_pretrained(directory / "text_encoder", max_length=meta.get("text_max_length", 64))
        cfg = replace(base, dit=dit.cfg, vae=vae.cfg, **meta.get("overrides", {}))
        audio_encoder = directory / "audio_encoder" if (directory / "audio_encoder").is_dir() else None
        tail_encoder = None
        if (directory / "tiny_encoder").is_dir():
            from avatarv.models.vae.tiny_encoder import TinyVideoEncoder

            tail_encoder = TinyVideoEncoder.from_pretrained(directory / "tiny_encoder")
            if tail_encoder.cfg.latent_channels != vae.cfg.z_dim:
                raise CheckpointError(f"tiny encoder writes {tail_encoder.cfg.latent_channels} latent channels, the "
                                      f"VAE has {vae.cfg.z_dim}", directory / "tiny_encoder")
        return cls(cfg, dit, vae, refiner=refiner, text_encoder=text_encoder, audio_encoder=audio_encoder,
                   dtype=dtype, tail_encoder=tail_encoder)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.dit.save_pretrained(directory / "dit")
        self.vae.save_pretrained(directory / "vae")
        if self.refiner is not None:
            self.refiner.dit.save_pretrained(directory / "refiner")
        if self.tail_encoder is not None:
            self.tail_encoder.save_pretrained(directory / "tiny_encoder")
        geometry = ("resolution", "chunk_latent_frames", "overlap_latent_frames", "max_ref_latent_frames",
                    "ref_frame_stride", "ref_motion")  # everything a checkpoint may set beside its preset (from_checkpoint)
        meta = {"preset": self.cfg.name, "overrides": {k: getattr(self.cfg, k) for k in geometry}}
        if self.text_encoder is not None:
            self.text_encoder.save_pretrained(directory / "text_encoder")
            meta["text_max_length"] = self.text_encoder.max_length
        if self.audio_encoder is not None:
            self.audio_features.model.save_pretrained(directory / "audio_encoder")
        (directory / "pipeline.json").write_text(json.dumps(meta, indent=2))

    def encode_text(self, prompt: str | None) -> torch.Tensor | None:
        """Prompt tokens ``[1, L, text_dim]``, or None without a text encoder. An empty prompt gets the
        unconditional tokens, all zeros: what a dropped text condition is (``Conditions.kept``)."""
        if self.text_encoder is None:
            if prompt:
                raise InputError("this checkpoint has no text encoder: --prompt / --scene-prompt need one")
            return None
        if not prompt:
            return torch.zeros(1, self.text_encoder.max_length, self.cfg.dit.text_dim)
        return self.text_encoder.encode([prompt]).float()

    def plan(self, num_samples: int, opts: GenerationOptions) -> ChunkPlan:
        """The job's chunks: ``opts.seconds`` long, or as long as ``num_samples`` of speech."""
        sr = self.audio_features.sample_rate
        seconds = opts.seconds if opts.seconds is not None else num_samples / sr
        return ChunkPlan.for_duration(seconds, chunk_latents=self.cfg.chunk_latent_frames,
                                      overlap_latents=self.cfg.overlap_latent_frames, fps=self.cfg.fps, sample_rate=sr)

    def autocast(self):
        """The DiT's (and the refiner's) compute precision: bf16 autocast where the policy chose it, else fp32."""
        return autocast(module_device(self.dit), self.dtype)

    # ------------------------------------------------------------------ one chunk
    def sample_chunk(
        self, chunk: Chunk, known: torch.Tensor | None, audio_tokens: torch.Tensor, ref: list[RefInputs],
        cache: list[RefKVCache], opts: SamplingOptions, generator: torch.Generator, on_step=None,
        text: torch.Tensor | None = None, known_motion: torch.Tensor | None = None, cache_stats=None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One chunk of this pipeline (``pipelines.sampling.sample_chunk`` with its DiT, geometry and precision):
        latents ``[1, z, c, h, w]`` with the known frames ``known`` ``[1, z, k, h, w]`` put back, and the raw
        motion features ``[c, motion_dim]`` (or None) with ``known_motion`` ``[k, motion_dim]`` (raw) kept.
        ``audio_tokens`` ``[c, Ka, audio_dim]``; ``text`` ``[1, L, text_dim]`` prompt tokens or None."""
        cfg = self.cfg
        s = cfg.resolution // cfg.vae.spatial_stride
        c = chunk.num_latents
        z = cfg.dit.latent_channels
        k = known.shape[2] if known is not None else 0
        cond = i2v_condition(known if known is not None else torch.zeros(1, z, c, s, s), leading_mask(k, c))
        conditions = Conditions(cond=cond, audio=audio_tokens[None], text=text, ref=ref, ref_cache=cache)
        km, codec = None, MotionCodec.from_config(self.dit.cfg)
        if known_motion is not None and cfg.dit.motion_dim:
            km = codec.normalize(known_motion[None].float())  # [1, k, motion_dim], the stream's space
        latents, motion = sample_chunk(self.dit, conditions, c, (s, s), opts, generator, known=known, known_motion=km,
                                       on_step=on_step, precision=self.autocast, cache_stats=cache_stats)
        if motion is None:
            return latents, None
        motion = codec.denormalize(motion)  # raw features
        if km is not None:
            motion[: known_motion.shape[0]] = known_motion
        return latents, motion

    @staticmethod
    def _new_frames(num_frames: int, last: bool, plan: ChunkPlan, written: int) -> int:
        """How many of a chunk's ``num_frames`` frames are appended now: all but its own tail (the next chunk
        blends it), at most what the plan still lacks."""
        tail = 0 if last else plan.overlap_frames
        return max(0, min(num_frames - tail, plan.total_frames - written))

    @classmethod
    def _emit(cls, writer, frames: np.ndarray, pending: np.ndarray | None, last: bool, plan: ChunkPlan, written: int,
              speech: np.ndarray, frame_filter: Callable[[np.ndarray], np.ndarray] | None = None) -> int:
        """Cross-fade the seam with the previous chunk's tail, append everything but this chunk's own tail
        (the next chunk blends it), with the exact audio samples of those frames. Returns frames appended."""
        frames = frames.copy()
        if pending is not None:
            frames[: len(pending)] = crossfade(pending, frames[: len(pending)])
        new = frames[: cls._new_frames(len(frames), last, plan, written)]
        if len(new):
            a, b = plan.sample_range(written, len(new))
            writer.append(new if frame_filter is None else frame_filter(new), speech[a:b].astype(np.float32))
        return len(new)

    def _write_chunk(self, clock: PhaseClock, writer, preview, job: Job, frames: np.ndarray,
                     lr_frames: np.ndarray | None, pending: np.ndarray | None, pending_lr: np.ndarray | None,
                     last: bool, written: int, signals, frame_filter) -> None:
        """One chunk's output (on the write-behind worker): the mp4 (and preview) appends and the motion track."""
        with clock.phase("write_behind"):
            self._emit(writer, frames, pending, last, job.plan, written, job.speech, frame_filter)
            if signals is not None:
                job.track.add(signals[0], last, known=signals[1])
            if preview is not None:
                self._emit(preview, lr_frames, pending_lr, last, job.plan, written, job.speech, frame_filter)

    # ------------------------------------------------------------------ the job
    def generate(
        self, reference: Video, speech: np.ndarray, out_path: str | Path, opts: GenerationOptions | None = None,
        progress=None, on_phase=None, on_chunk=None, plan: ChunkPlan | None = None,
    ) -> dict:
        """Write the talking video to ``out_path`` (streamed; playable after each chunk). Returns a summary.
        ``progress(chunk, step)`` is called after every denoising step, ``on_phase(name)`` at each preparation
        phase before the first one, ``on_chunk(chunk, known_motion, motion)`` after each chunk is sampled
        (raw motion features: the carried ``[k, dim]`` or None, the chunk's ``[c, dim]`` or None)."""
        opts = opts or GenerationOptions()
        cfg, sr = self.cfg, self.audio_features.sample_rate
        encode_tail = self._tail_encode(opts.tail_encoder)
        if speech.ndim != 1 or len(speech) < sr // cfg.fps:
            raise InputError("speech is empty or too short (need at least one video frame of audio)")
        job = prepare_job(self, reference, speech, opts, plan or self.plan(len(speech), opts), on_phase or print_nothing)
        chunks = job.plan.chunks()
        pending = pending_lr = None  # decoded frames of the last overlap, not yet written (output, preview)
        written, motion = 0, None
        cache_stats = StepCacheStats()
        clock = PhaseClock()
        with ExitStack() as stack:
            writer = stack.enter_context(StreamingMp4Writer(out_path, cfg.fps, job.out_res, job.out_res, sample_rate=sr))
            preview = None if not opts.preview_path else stack.enter_context(
                StreamingMp4Writer(opts.preview_path, cfg.fps, cfg.resolution, cfg.resolution, sample_rate=sr))
            behind = stack.enter_context(WriteBehind(opts.write_behind))  # exits first: drains (re-raising a failed write) before the writers close
            for chunk in chunks:
                with clock.phase("encode"):
                    known = job.scene_latent if chunk.index == 0 else encode_tail(
                        pending if not job.refine else resize_square(pending, cfg.resolution))  # the previous tail
                tokens = job.speech_tokens.latent_tokens(chunk.start_frame, chunk.num_latents)
                carried = job.codec.carry(motion, known.shape[2]) if opts.motion_continuity and motion is not None else None
                refs, caches = job.refs()
                with clock.phase("sample"):
                    latents, motion = self.sample_chunk(
                        chunk, known, tokens, refs, caches, opts.sampling(), job.generator, text=job.text,
                        known_motion=carried, cache_stats=cache_stats,
                        on_step=(lambda i, x, c=chunk: progress(c, i)) if progress else None)
                if on_chunk is not None:
                    on_chunk(chunk, carried, motion)
                if chunk.index == 0 and opts.anchor and len(chunks) > 1:
                    # global appearance anchor: the first chunk's last latent frames, a second reference
                    # stream at its own time offset; its K/V are computed once and kept for every later chunk
                    job.anchor = RefInputs(latents[:, :, -opts.anchor_latents :].clone(),
                                           time_offset=cfg.dit.ref_time_offset + 2048)
                frames, lr_frames = self._decode(job, latents, tokens, preview is not None, clock)
                if opts.colour_correction > 0:
                    with clock.phase("colour"):
                        same = lr_frames is frames  # no refiner: one array written twice, corrected once
                        frames = colour_anchor(frames, job.scene, opts.colour_correction)
                        lr_frames = frames if same else colour_anchor(lr_frames, job.scene, opts.colour_correction)
                last = chunk.index == len(chunks) - 1
                signals = None
                if job.track is not None:  # latent frames given, not generated: 4(k − 1) + 1 video frames
                    signals = (job.codec.signals(motion, len(frames)), 4 * (known.shape[2] - 1) + 1)
                with clock.phase("write"):  # the loop's wait for the previous chunk's write (write_behind.py)
                    behind.submit(functools.partial(
                        self._write_chunk, clock, writer, preview, job, frames, lr_frames, pending, pending_lr, last,
                        written, signals, opts.frame_filter))
                written += self._new_frames(len(frames), last, job.plan, written)
                pending = None if last else frames[len(frames) - job.plan.overlap_frames :]
                if preview is not None:
                    pending_lr = None if last else lr_frames[len(lr_frames) - job.plan.overlap_frames :]
                del latents, lr_frames, frames
                release_memory()  # a chunk's buffers go back to the OS: memory stays flat over hours
        if job.track is not None:
            save_motion_track(opts.motion_path, job.track.signals(), cfg.fps)
        summary = self._summary(job, out_path, written, len(chunks))
        summary["seconds_by_phase"] = clock.totals()
        summary["tail_encoder"] = "full" if encode_tail == self.vae.encode else "tiny"
        if opts.step_cache > 0:
            summary.update(step_cache_computed=cache_stats.computed, step_cache_skipped=cache_stats.skipped)
        return summary

    def _tail_encode(self, choice: str) -> Callable[[np.ndarray], torch.Tensor]:
        """What encodes a chunk's tail (uint8 ``[T, H, W, 3]`` → normalised latents ``[1, z, F, h, w]``)."""
        if choice not in TAIL_ENCODERS:
            raise InputError(f"tail_encoder {choice!r}: expected one of {', '.join(TAIL_ENCODERS)}")
        if choice == "tiny" and self.tail_encoder is None:
            raise InputError("tail_encoder tiny: this checkpoint has no tiny_encoder/ folder")
        if choice == "full" or self.tail_encoder is None:
            return self.vae.encode
        device = self.vae.device
        return lambda frames: self.tail_encoder.encode(frames).to(device)  # where the VAE's latents would be

    def _decode(self, job: Job, latents: torch.Tensor, tokens: torch.Tensor, preview: bool, clock: PhaseClock):
        """A chunk's frames ``[4(c−1)+1, R, R, 3]`` (through the SR refiner when the job refines) and its
        low-resolution frames (when they are written: no refiner, or a preview)."""
        with clock.phase("decode"):
            lr_frames = self.vae.decode(latents) if (preview or not job.refine) else None
        if not job.refine:
            return lr_frames, lr_frames
        with clock.phase("refine"):
            hr = self.refiner(latents, ref=job.prepared.ref_hr, ref_cache=job.hr_cache, audio=tokens[None],
                              generator=job.generator, precision=self.autocast)
        with clock.phase("decode"):
            return self.vae.decode(hr), lr_frames  # [4(c−1)+1, 2S, 2S, 3]

    def _summary(self, job: Job, out_path, written: int, chunks: int) -> dict:
        ref = job.prepared.ref
        return {
            "out": str(out_path), "frames": written, "seconds": written / self.cfg.fps, "chunks": chunks,
            "ref_cache_builds": job.cache.builds, "anchor_cache_builds": job.anchor_cache.builds,
            "refiner_cache_builds": job.hr_cache.builds, "resolution": job.out_res, "scene_views": job.scene_views,
            "ref_cache_hits": job.cache.hits, "ref_latent_frames": ref.num_frames,
            "faceless_ref_frames": int((~ref.frame_mask).sum()), "random_weights": self.random_weights,
            "decoder": "tiny" if hasattr(self.vae, "decoder") else "full",  # FastDecodeVAE carries a tiny decoder
        }


class PhaseClock:
    """Wall seconds spent in each phase of the chunk loop (encode, sample, decode, refine, write), summed."""

    def __init__(self):
        self._totals: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self._totals[name] = self._totals.get(name, 0.0) + time.perf_counter() - start

    def totals(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self._totals.items()}


def print_nothing(name: str) -> None:
    """The default ``on_phase``."""

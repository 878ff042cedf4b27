"""System adapters for the benchmark runner: our pipeline, its image-reference ablation, and the VAE ceiling.

``PipelineSystem`` runs ``avatarv.pipelines.generate.AvatarPipeline`` on a case: the reference video, the
driving clip's speech (or the case's ``audio``) and the case's scene: on ``same`` cases the reference's own
frame, on ``cross`` / ``generated`` cases the case's scene image (for ``cross`` without one, the driving clip's
first frame), given to the pipeline as the first chunk's scene image.

``reference_mode="image"`` is the seed's ablation of video references: the reference becomes a one-frame
video (its first frame), what an image-conditioned avatar model sees.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from avatarv.diffusion import GuidanceScales
from avatarv.eval.benchmark import BenchmarkCase
from avatarv.media import Video, read_video
from avatarv.media.read import read_audio


def image_reference(video: Video) -> Video:
    """The ablation's reference: the first frame alone (no motion, no talking behaviour)."""
    return Video(frames=video.frames[:1].copy(), fps=video.fps, audio=None, sample_rate=video.sample_rate,
                 source=video.source)


def weights_digest(checkpoint: str | Path) -> str:
    """SHA-256 over a checkpoint's files (names and bytes): new weights at the same path are another system."""
    import hashlib

    h = hashlib.sha256()
    root = Path(checkpoint)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


class PipelineSystem:
    def __init__(self, checkpoint: str | Path | None = None, preset: str = "tiny", steps: int | None = None,
                 reference_mode: str = "video", seed: int = 0, max_seconds: float | None = None,
                 motion_continuity: bool = True, options: dict | None = None, name: str | None = None):
        """``options``: ``GenerationOptions`` fields of every case (``guidance`` as text, e.g. "audio=2"); ``name``:
        the system's name in tables (default avatarv / avatarv-image-ref)."""
        from avatarv.pipelines.generate import AvatarPipeline

        if reference_mode not in ("video", "image"):
            raise ValueError(f"reference_mode {reference_mode!r}: expected video or image")
        self.pipeline = AvatarPipeline.from_checkpoint(checkpoint) if checkpoint else AvatarPipeline.random(preset)
        self.reference_mode = reference_mode
        self.steps, self.seed, self.max_seconds = steps, seed, max_seconds
        self.motion_continuity = motion_continuity
        self.name = name or "avatarv" + ("-image-ref" if reference_mode == "image" else "")
        self.options = dict(options or {})
        self.timings: list[dict] = []  # per generated case: wall seconds, output seconds, first frames
        self.weights = str(checkpoint) if checkpoint else f"random {preset} (untrained: scores mean nothing)"
        self.last_meta: dict = {}
        # what a finished case of an earlier run must match to be kept (``run_benchmark(resume=True)``)
        self.fingerprint = json.dumps({"system": self.name, "weights": self.weights, "steps": steps, "seed": seed,
                                       "weights_sha256": weights_digest(checkpoint) if checkpoint else None,
                                       "max_seconds": max_seconds, "motion_continuity": motion_continuity,
                                       **({"options": self.options} if self.options else {})},
                                      sort_keys=True)

    def generate(self, case: BenchmarkCase, out_dir: Path) -> Path:
        from avatarv.pipelines.generate import GenerationOptions

        fps = float(self.pipeline.cfg.fps)
        reference = read_video(case.reference, fps=fps)
        if self.reference_mode == "image":
            reference = image_reference(reference)
        sr = self.pipeline.audio_features.sample_rate
        speech = read_audio(case.audio or case.driving, sample_rate=sr).astype(np.float32)
        opts = GenerationOptions(seed=self.seed, seconds=self.max_seconds and min(self.max_seconds, len(speech) / sr),
                                 motion_continuity=self.motion_continuity)
        if self.steps is not None:
            opts.steps = self.steps
        for key, value in self.options.items():
            if not hasattr(opts, key):
                raise ValueError(f"system option {key!r} is not a GenerationOptions field")
            setattr(opts, key, GuidanceScales.parse(value) if key == "guidance" else value)
        out = Path(out_dir) / f"{case.case_id}.mp4"
        opts.scene_image = self.scene_image(case, Path(out_dir))
        if self.pipeline.cfg.dit.motion_dim:  # the generated motion stream, for behaviour read without the VAE
            from avatarv.pipelines.motion_track import motion_track_path

            opts.motion_path = str(motion_track_path(out))
        marks = {"start": time.perf_counter()}

        def phase(name: str) -> None:  # the last preparation phase ends where sampling starts
            marks["prepared"] = time.perf_counter()

        def first_frames(frames):
            marks.setdefault("first_frames", time.perf_counter())
            return frames if user_filter is None else user_filter(frames)

        user_filter, opts.frame_filter = opts.frame_filter, first_frames
        summary = self.pipeline.generate(reference, speech, out, opts, on_phase=phase)
        end = time.perf_counter()
        self.timings.append({"case": case.case_id, "wall_s": end - marks["start"], "output_s": summary.get("seconds"),
                             "first_frames_after_sampling_start_s": marks["first_frames"] - marks.get("prepared", marks["start"])})
        self.last_meta = {"scene_image_used": opts.scene_image is not None, "weights": self.weights,
                          "timing": self.timings[-1],
                          "reference_frames": reference.num_frames, "generated_seconds": summary.get("seconds")}
        return out

    @staticmethod
    def scene_image(case: BenchmarkCase, out_dir: Path) -> str | None:
        """The case's target scene as an image file (None: the reference's own scene)."""
        if case.scene == "same":
            return None
        if case.scene_image is not None:
            return str(case.scene_image)
        import cv2

        first = read_video(case.driving).frames[0]
        path = out_dir / f"{case.case_id}.scene.png"
        cv2.imwrite(str(path), cv2.cvtColor(first, cv2.COLOR_RGB2BGR))
        return str(path)


class VAERoundTripSystem:
    """The driving clip through a pipeline checkpoint's VAE (or a VAE folder alone: ``config.json`` +
    weights, with the ``small`` preset's geometry), in chunks of the pipeline's chunk length."""

    name = "vae-roundtrip"

    def __init__(self, checkpoint: str | Path, **_ignored):
        from avatarv.pipelines.generate import AvatarPipeline

        if checkpoint is None:
            from avatarv.errors import InputError

            raise InputError("the vae-roundtrip system needs --checkpoint (a pipeline with a VAE, or a VAE folder)")
        if not (Path(checkpoint) / "pipeline.json").is_file() and (Path(checkpoint) / "config.json").is_file():
            from dataclasses import replace

            from avatarv.config.presets import get_preset
            from avatarv.models.vae import VideoVAE
            from avatarv.precision import compute_dtype

            self.vae, self.vae_path = VideoVAE.from_pretrained(checkpoint), Path(checkpoint)
            self.vae.compute_dtype = compute_dtype("cpu")
            small = get_preset("small")  # its geometry (size, chunk); no DiT runs here
            self.cfg = replace(small, vae=self.vae.cfg, dit=replace(small.dit, latent_channels=self.vae.cfg.z_dim,
                                                                        cond_channels=self.vae.cfg.z_dim + 4))
        else:
            pipe = AvatarPipeline.from_checkpoint(checkpoint)
            self.vae, self.cfg, self.vae_path = pipe.vae, pipe.cfg, Path(checkpoint) / "vae"
        # pipe.vae computes in the precision policy's dtype, as the pipeline decodes trained weights
        self.fingerprint = json.dumps({"system": self.name, "vae_sha256": weights_digest(self.vae_path),
                                       "chunk_latent_frames": self.cfg.chunk_latent_frames}, sort_keys=True)
        self.last_meta: dict = {}

    def chunk_frames(self) -> int:
        return 4 * (self.cfg.chunk_latent_frames - 1) + 1

    def roundtrip(self, frames: np.ndarray) -> np.ndarray:
        """``[T, H, W, 3]`` uint8 → the same frames encoded and decoded, each chunk on its own; a short last
        chunk is padded with its last frame to the causal VAE's 4k + 1 and cut back."""
        import torch

        from avatarv.pipelines.reference import resize_square

        size = self.cfg.resolution
        if frames.shape[1:3] != (size, size):
            frames = resize_square(frames, size)
        out, n = [], self.chunk_frames()
        for start in range(0, len(frames), n):
            part = frames[start : start + n]
            pad = (-(len(part) - 1)) % 4
            padded = np.concatenate([part, np.repeat(part[-1:], pad, axis=0)]) if pad else part
            with torch.no_grad():
                out.append(np.asarray(self.vae.decode(self.vae.encode(padded)))[: len(part)])
        return np.concatenate(out)

    def generate(self, case: BenchmarkCase, out_dir: Path) -> Path:
        from avatarv.media import StreamingMp4Writer

        driving = read_video(case.driving, fps=float(self.cfg.fps))
        frames = self.roundtrip(driving.frames)
        out = Path(out_dir) / f"{case.case_id}.mp4"
        sr = driving.sample_rate
        with StreamingMp4Writer(out, self.cfg.fps, frames.shape[2], frames.shape[1], sample_rate=sr) as writer:
            audio = driving.audio[: int(round(len(frames) / self.cfg.fps * sr))] if driving.audio is not None else None
            writer.append(frames, None if audio is None else audio.astype(np.float32))
        self.last_meta = {"vae": str(self.vae_path)}
        return out

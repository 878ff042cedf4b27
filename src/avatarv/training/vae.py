"""Train the video autoencoder (``diffusers.AutoencoderKLWan`` in a small config) on world clips.

Loss: L1 reconstruction in [−1, 1] + β·KL of the diagonal Gaussian posterior (β small, as in latent
diffusion autoencoders; no adversarial term at this scale). Clips are 4k + 1 frames (the causal VAE's unit).
Held-out figure: reconstruction PSNR on identities and scenes never seen in training. Checkpoints resume
exactly (model, optimizer, RNG, step), like the DiT trainer's.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from avatarv.config import get_preset
from avatarv.errors import ConfigError
from avatarv.models.vae import VideoVAE
from avatarv.precision import autocast, compute_dtype, parse_dtype
from avatarv.training.analyzer_loss import face_squares
from avatarv.training.checkpoint import resume_simple_trainer, save_simple_trainer, truncate_log
from avatarv.training.simple_trainer import cosine_lr


@dataclass
class VAETrainConfig:
    preset: str = "small"
    steps: int = 2000
    batch_size: int = 2
    frames: int = 5  # 4k + 1
    lr: float = 3e-4
    kl_weight: float = 1e-6
    train_identities: int = 64
    scenes: int = 4
    ckpt_every: int = 100
    out_dir: str = "runs/vae"
    seed: int = 0
    # decode the posterior mean (a deterministic autoencoder with a tiny KL leash): at this budget, sampled
    # latents (posterior std ≈ 1 at init) kept L1 at ~0.37 for 100 steps while the mean fell to 0.26 in 60
    sample_posterior: bool = False
    # auto: bf16 autocast where native (AMX: ~1.4× faster than fp32), fp32 elsewhere (avatarv.precision) | bf16 | fp32
    precision: str = "auto"
    # False: only the decoder learns (the encoder, and so every latent already encoded with it, stays fixed)
    train_encoder: bool = True
    # extra L1 weight inside the head box (world labels: skull + jaw): pixels there count 1 + face_weight times.
    # Identity and lip-sync are read from the face alone, which is ~20 % of a world frame (0 = plain L1)
    face_weight: float = 0.0
    # extra L1 weight inside the mouth box (``mouth_boxes``: lips, teeth and the gap between them), on top of
    # face_weight. The mouth is ~1 % of a world frame: a plain or head-weighted L1 lets the decoder blur it, and
    # the analyzer reads mouth opening at r 0.98 on original frames but 0.34 on round-tripped ones
    # (benchmarks/results/audio-positions.md §3), which caps every DiT's Sync-C at the VAE's 0.55
    mouth_weight: float = 0.0
    # train on a random window of ``crop_latents``² latents (8 px per latent) instead of the whole frame (0).
    # The autoencoder is convolutional, so a window teaches the same weights at a fraction of the cost (128 px,
    # 33 frames, decoder only: 8.6 s/step whole, 3.7 s with 8² crops). Decoder-only runs crop the latents of
    # the whole frame (the frozen encoder's real latents); full runs crop the pixels before encoding
    crop_latents: int = 0
    # crops: draw each sample's window among those that hold the centre of its most-weighted pixels (the mouth
    # with mouth_weight > 0), so every step decodes what the loss weighs most (decoder-only runs: a window of the
    # latents; full runs: a window of the pixels, before encoding). A random 8² window of a 16² latent frame
    # misses a ~20-px mouth on most draws
    crop_focus: bool = False
    # cosine decay of the learning rate from ``lr`` to ``lr * min_lr_ratio`` over ``steps`` (1 = constant)
    min_lr_ratio: float = 1.0
    # world clips kept decoded in memory (2 s at 128² ≈ 2.4 MB each; a clip costs ~0.6 s to render)
    cached_clips: int = 256
    # weight of the loss in the frozen world analyzer's space (training/analyzer_loss.py: LPIPS-style features
    # of its face network on face crops + its reading of the lips), added to the L1; 0 = off. Needs sources
    # whose boxes carry the face squares (``WorldClipSource`` does)
    analyzer_weight: float = 0.0
    analyzer_mouth_weight: float = 1.0  # the lips' landmarks and mouth opening, inside the analyzer loss
    # weight of an L1 between the reconstruction's and the target's ``lowpass``² means (per frame, per channel),
    # added to the L1: the Wan VAE learns luminance first and keeps a sepia cast for hundreds of steps (channel
    # means 20–35 levels off at step 500); per-pixel L1 gradients of a biased but noisy region disagree in sign,
    # the region mean's do not. 0 = off
    lowpass_weight: float = 0.0
    lowpass: int = 8

    def __post_init__(self):
        self.precision = parse_dtype(self.precision, "precision")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 videos, in dB."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


class WorldClipSource:
    """Random 4k+1-frame windows of world clips (identity, scene and start drawn from a seeded generator)."""

    def __init__(self, identities: range, scenes: int, size: int, frames: int, seed: int, max_cached: int = 256):
        self.identities, self.scenes, self.size, self.frames, self.seed = identities, scenes, size, frames, seed
        self._cache: dict[tuple[int, int], np.ndarray] = {}
        self.max_cached = max_cached  # 2 s at 128² is 2.4 MB: 256 clips hold the small preset's first recipe set

    def clip(self, ident: int, scene: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """→ frames ``[T, S, S, 3]`` uint8, boxes ``{"head", "mouth"}`` each ``[T, 4]`` (x0, y0, x1, y1) px and
        the analyzer's face squares ``"square"`` ``[T, 3]`` (cx, cy, side px)."""
        from avatarv.world import make_clip

        key = (ident, scene)
        if key not in self._cache:
            if len(self._cache) >= self.max_cached:
                self._cache.pop(next(iter(self._cache)))
            clip = make_clip(ident, scene, seconds=2.0, size=self.size, seed=self.seed)
            self._cache[key] = (clip.frames, {"head": clip.labels.head_box,
                                              "mouth": mouth_boxes(clip.labels.landmarks),
                                              "square": face_squares(clip.labels.landmarks)})
        return self._cache[key]

    def sample_with_boxes(self, g: torch.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """A window of ``frames`` frames and its boxes ``{"head", "mouth"}`` ``[frames, 4]``."""
        ident = self.identities[int(torch.randint(len(self.identities), (1,), generator=g))]
        scene = int(torch.randint(self.scenes, (1,), generator=g))
        frames, boxes = self.clip(ident, scene)
        start = int(torch.randint(len(frames) - self.frames + 1, (1,), generator=g))
        window = slice(start, start + self.frames)
        return frames[window], {name: b[window] for name, b in boxes.items()}

    def sample(self, g: torch.Generator) -> np.ndarray:
        return self.sample_with_boxes(g)[0]


def to_input(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` → ``[3, T, H, W]`` in [−1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float() / 127.5 - 1


lr_at = cosine_lr  # the learning rate of optimiser step ``step``: cosine from ``lr`` to ``lr·min_lr_ratio``


MOUTH_POINTS = slice(48, 68)  # iBUG-68: outer lip contour 48–59, inner 60–67


def mouth_boxes(landmarks: np.ndarray, margin: float = 0.25) -> np.ndarray:
    """Per-frame mouth boxes ``[T, 4]`` (x0, y0, x1, y1 px) of 68-point landmarks ``[T, 68, 2]``: the lips'
    bounding box widened on every side by ``margin`` × the mouth's width (the teeth, the lip corners' shading,
    the chin's motion as the jaw opens)."""
    pts = np.asarray(landmarks, np.float32)[:, MOUTH_POINTS]  # [T, 20, 2]
    lo, hi = pts.min(1), pts.max(1)  # [T, 2]
    pad = margin * (hi[:, :1] - lo[:, :1])  # [T, 1]
    return np.concatenate([lo - pad, hi + pad], axis=1)


def inside_boxes(boxes: np.ndarray, height: int, width: int) -> torch.Tensor:
    """``[T, H, W]`` bool: pixel (x, y) lies in its frame's box ``[T, 4]`` (x0, y0, x1, y1 px; clipped to the
    frame; inside when x0 ≤ x + ½ < x1, likewise y)."""
    ys = torch.arange(height, dtype=torch.float32)[:, None] + 0.5  # [H, 1]
    xs = torch.arange(width, dtype=torch.float32)[None, :] + 0.5  # [1, W]
    b = torch.as_tensor(np.asarray(boxes, np.float32))  # [T, 4]
    return ((xs >= b[:, 0, None, None]) & (xs < b[:, 2, None, None])
            & (ys >= b[:, 1, None, None]) & (ys < b[:, 3, None, None]))


def region_weights(boxes: dict[str, np.ndarray], weights: dict[str, float], height: int, width: int) -> torch.Tensor:
    """Per-pixel L1 weights ``[1, T, H, W]``: 1 + the sum of ``weights[k]`` over the regions ``k`` whose box
    (``boxes[k]`` ``[T, 4]``) holds the pixel (the mouth, inside the head, counts 1 + face + mouth)."""
    w = None
    for name, weight in weights.items():
        if weight:
            extra = weight * inside_boxes(boxes[name], height, width).float()
            w = extra if w is None else w + extra
    if w is None:
        w = torch.zeros(len(next(iter(boxes.values()))), height, width)
    return (1 + w)[None]


def lowpass_l1(recon: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """Mean |Δ| between the ``k``² block means of two videos ``[B, 3, T, H, W]`` (per frame and channel; the
    colour each block has on average, whatever its detail)."""
    pool = lambda x: torch.nn.functional.avg_pool3d(x, (1, k, k), ceil_mode=True)  # noqa: E731
    return (pool(recon) - pool(target)).abs().mean()


class VAETrainer:
    def __init__(self, cfg: VAETrainConfig, vae: VideoVAE | None = None, source=None):
        self.cfg = cfg
        preset = get_preset(cfg.preset)
        torch.manual_seed(cfg.seed)
        self.vae = vae or VideoVAE(preset.vae)
        self.model = self.vae.model.train()
        if (cfg.frames - 1) % 4:
            raise ConfigError(f"VAE training clips must be 4k + 1 frames (the causal VAE's unit), got {cfg.frames}")
        self.source = source or WorldClipSource(range(cfg.train_identities), cfg.scenes, preset.resolution,
                                                cfg.frames, cfg.seed, max_cached=cfg.cached_clips)
        if not cfg.train_encoder:
            for m in (self.model.encoder, self.model.quant_conv):
                m.requires_grad_(False)
        self.params = [p for p in self.model.parameters() if p.requires_grad]  # what the optimiser and clipping see
        self.optim = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=0.0)
        self.generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.step = 0
        self.out = Path(cfg.out_dir)
        self.analyzer_loss = None
        if cfg.analyzer_weight > 0:
            from avatarv.training.analyzer_loss import AnalyzerLoss

            self.analyzer_loss = AnalyzerLoss(mouth_weight=cfg.analyzer_mouth_weight)

    def loss(self, batch: torch.Tensor, weights: torch.Tensor | None = None,
             squares: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """``batch`` ``[B, 3, T, H, W]`` in [−1, 1]; ``weights`` ``[B, 1, T, H, W]`` per-pixel L1 weights (None:
        plain L1). The weighted L1 is normalised by the mean weight, so its scale stays that of plain L1.
        ``squares`` ``[B, T, 3]``: the face crops of the analyzer loss (with ``analyzer_weight`` > 0; the whole
        frame is decoded then, no crop)."""
        crop = 0 if self.analyzer_loss is not None else self.cfg.crop_latents
        if crop and self.cfg.train_encoder:  # the whole autoencoder learns: it sees only the pixel window
            stride = self.vae.cfg.spatial_stride
            if self.cfg.crop_focus and weights is not None:  # one window per sample, over its mouth
                batch, weights = self._focused_pixels(batch, weights, stride)
            else:
                window = self._window(batch.shape[-2:], stride)
                if window is not None:
                    batch, weights = batch[window[1]], None if weights is None else weights[window[1]]
        with torch.set_grad_enabled(self.cfg.train_encoder):
            posterior = self.model.encode(batch).latent_dist
        z = posterior.sample(generator=self.generator) if self.cfg.sample_posterior else posterior.mode()
        if crop and not self.cfg.train_encoder:  # the frozen encoder sees the whole frame, the decoder a window
            z, batch, weights = self.crop(z, batch, weights)
        recon = self.model.decode(z).sample.float()
        err = (recon - batch).abs()
        l1 = err.mean()
        kl = posterior.kl().mean() / batch[0].numel()
        logs = {"l1": l1.item(), "kl": kl.item()}
        rec = l1
        if weights is not None:
            rec = (err * weights).mean() / weights.mean()
            logs["l1_weighted"] = rec.item()
        if self.cfg.lowpass_weight > 0:
            low = lowpass_l1(recon, batch, self.cfg.lowpass)
            rec = rec + self.cfg.lowpass_weight * low
            logs["l1_lowpass"] = low.item()
        if self.analyzer_loss is not None:
            extra, more = self.analyzer_loss(recon, batch, squares)
            rec = rec + self.cfg.analyzer_weight * extra
            logs.update(more)
        return rec + self.cfg.kl_weight * kl, logs

    def _window(self, hw: tuple[int, int], stride: int, centre: tuple[int, int] | None = None
                ) -> tuple[tuple, tuple] | None:
        """A random ``crop_latents``² latent window (drawn from the trainer's generator) of a ``hw`` pixel frame
        with ``stride`` pixels per latent; with ``centre`` (latent row, column) one of the windows holding it.
        → (latent index, pixel index) for ``[..., h, w]`` tensors; None when the frame is no larger than the
        window."""
        c = self.cfg.crop_latents
        h, w = hw[0] // stride, hw[1] // stride
        if c >= min(h, w):
            return None
        if centre is None:
            y = int(torch.randint(h - c + 1, (1,), generator=self.generator))
            x = int(torch.randint(w - c + 1, (1,), generator=self.generator))
        else:  # window starts s with s ≤ centre < s + c, inside the frame
            y0, x0 = max(0, centre[0] - c + 1), max(0, centre[1] - c + 1)
            y = y0 + int(torch.randint(min(centre[0], h - c) - y0 + 1, (1,), generator=self.generator))
            x = x0 + int(torch.randint(min(centre[1], w - c) - x0 + 1, (1,), generator=self.generator))
        lead = (Ellipsis,)
        return (lead + (slice(y, y + c), slice(x, x + c)),
                lead + (slice(y * stride, (y + c) * stride), slice(x * stride, (x + c) * stride)))

    def crop(self, z: torch.Tensor, batch: torch.Tensor, weights: torch.Tensor | None):
        """The same random window of the latents ``z`` ``[B, C, F, h, w]`` and of the pixels ``batch``
        ``[B, 3, T, H, W]`` (and ``weights``)."""
        stride = batch.shape[-1] // z.shape[-1]
        if self.cfg.crop_focus and weights is not None:
            return self._focused_crop(z, batch, weights, stride)
        window = self._window(batch.shape[-2:], stride)
        if window is None:
            return z, batch, weights
        lat, px = window
        return z[lat], batch[px], None if weights is None else weights[px]

    @staticmethod
    def _focus_centre(w: torch.Tensor, stride: int) -> tuple[int, int]:
        """``w`` ``[T, H, W]`` one sample's pixel weights → the latent (row, column) of the centroid of its
        most-weighted pixels over all frames."""
        ys, xs = torch.nonzero(w.amax(0) == w.max(), as_tuple=True)
        return int(ys.float().mean()) // stride, int(xs.float().mean()) // stride

    def _focused_pixels(self, batch: torch.Tensor, weights: torch.Tensor, stride: int):
        """Full-autoencoder crops with ``crop_focus``: per sample a random ``crop_latents``² window (in pixels,
        ``stride`` px per latent) holding the centroid of its most-weighted pixels (the mouth). → the cropped
        ``batch`` ``[B, 3, T, c·stride, c·stride]`` and ``weights``."""
        parts = []
        for b in range(batch.shape[0]):
            window = self._window(batch.shape[-2:], stride, self._focus_centre(weights[b, 0], stride))
            if window is None:
                return batch, weights
            px = window[1]
            parts.append((batch[b : b + 1][px], weights[b : b + 1][px]))
        return tuple(torch.cat(t) for t in zip(*parts, strict=True))

    def _focused_crop(self, z: torch.Tensor, batch: torch.Tensor, weights: torch.Tensor, stride: int):
        """``crop`` with one window per sample, each holding the centroid of that sample's most-weighted pixels
        (over all frames; ``crop_focus``)."""
        parts = []
        for b in range(z.shape[0]):
            window = self._window(batch.shape[-2:], stride, self._focus_centre(weights[b, 0], stride))
            if window is None:
                return z, batch, weights
            lat, px = window
            parts.append((z[b : b + 1][lat], batch[b : b + 1][px], weights[b : b + 1][px]))
        return tuple(torch.cat(t) for t in zip(*parts, strict=True))

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """→ clips ``[B, 3, T, H, W]``, their L1 weights ``[B, 1, T, H, W]`` when ``face_weight`` or
        ``mouth_weight`` > 0 (else None), and their face squares ``[B, T, 3]`` with the analyzer loss (else
        None)."""
        region = {"head": self.cfg.face_weight, "mouth": self.cfg.mouth_weight}
        weighted = any(w > 0 for w in region.values())
        if not weighted and self.analyzer_loss is None:
            return (torch.stack([to_input(self.source.sample(self.generator)) for _ in range(self.cfg.batch_size)]),
                    None, None)
        clips, weights, squares = [], [], []
        for _ in range(self.cfg.batch_size):
            frames, boxes = self.source.sample_with_boxes(self.generator)
            clips.append(to_input(frames))
            if weighted:
                weights.append(region_weights(boxes, region, frames.shape[1], frames.shape[2]))
            if self.analyzer_loss is not None:
                squares.append(torch.as_tensor(boxes["square"]))
        return (torch.stack(clips), torch.stack(weights) if weighted else None,
                torch.stack(squares) if squares else None)

    def train_step(self) -> dict:
        batch, weights, squares = self.next_batch()
        self.optim.zero_grad(set_to_none=True)
        for group in self.optim.param_groups:
            group["lr"] = lr_at(self.cfg, self.step)
        with autocast("cpu", compute_dtype("cpu", self.cfg.precision)):
            loss, logs = self.loss(batch, weights, squares)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optim.step()
        self.step += 1
        return {"step": self.step, "loss": loss.item(), "lr": self.optim.param_groups[0]["lr"], **logs}

    def save(self) -> None:
        save_simple_trainer(self.out / "checkpoints", self.step, self.model, self.optim, self.generator,
                            asdict(self.cfg))
        self.vae.save_pretrained(self.out / "vae")

    def resume(self) -> bool:
        step = resume_simple_trainer(self.out / "checkpoints", self.model, self.optim, self.generator)
        if step is None:
            return False
        self.step = step
        truncate_log(self.out / "log.jsonl", step)  # the steps after the checkpoint are trained (and logged) again
        return True

    def fit(self, resume: bool = False, progress: bool = True) -> list[dict]:
        from tqdm import tqdm

        if resume:
            self.resume()
        self.out.mkdir(parents=True, exist_ok=True)
        records = []
        with open(self.out / "log.jsonl", "a", buffering=1) as log, tqdm(total=self.cfg.steps, initial=self.step,
                                                            desc="train vae", disable=not progress) as bar:
            while self.step < self.cfg.steps:
                rec = self.train_step()
                records.append(rec)
                log.write(json.dumps(rec) + "\n")
                bar.update(1)
                bar.set_postfix(l1=f"{rec['l1']:.4f}")
                if self.step % self.cfg.ckpt_every == 0 or self.step == self.cfg.steps:
                    self.save()
        return records

    @torch.no_grad()
    def heldout_psnr(self, identities: range, scenes: int = 2, size: int | None = None,
                     frames: int | None = None) -> float:
        """Mean reconstruction PSNR on ``frames``-frame world clips of ``identities`` (not used in training).
        Measure on clips as long as the pipeline's chunks: a causal VAE trained on short windows can be fine
        on its first latent frames and fail on later ones (its caches then carry states it never saw)."""
        from avatarv.world import make_clip

        self.model.eval()
        n = frames or self.cfg.frames
        scores = []
        for ident in identities:
            for scene in range(scenes):
                frames = make_clip(ident, 100 + scene, seconds=n / 25, size=size or get_preset(self.cfg.preset).resolution,
                                   seed=self.cfg.seed + 1).frames[:n]
                scores.append(psnr(frames, self.vae.decode(self.vae.encode(frames))))
        self.model.train()
        return float(np.mean(scores))

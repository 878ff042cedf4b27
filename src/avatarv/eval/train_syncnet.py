"""Train the world SyncNet contrastively with shifted-audio negatives (one CPU thread, checkpointed, resumable).

    avatarv eval train-syncnet --out runs/syncnet [--steps 1400]    # or python -m avatarv.eval.train_syncnet;
                                                                  # make train-syncnet

Data: world clips (training identities 0..N-1, scenes 0..S-1) written to mp4 and read back (h264 + AAC, as
the evaluation sees them), face crops made exactly as the evaluation makes them (``face_tracks.crop_track``)
from the label boxes with a per-clip jitter that covers the difference to dlib's boxes, then pooled to the
network's 56 x 56.

Objective: for video window ``i`` the positive is the audio window that *caused* it, ``i - L`` (``L`` = the
identity's mouth lag, 0..3 frames: the mouth follows the sound), and the negatives are the same clip's audio
windows at ``i - L + d`` for ``d`` in +-1..+-15 (the offsets Sync-C/Sync-D scan). Loss: cross-entropy over
the 31 candidates with logits ``-||v - a||`` (the distance the evaluation takes the minimum of). So on an
in-sync clip SyncNet reports offset ``L`` (audio leads by the natural lag), and on a clip whose audio was
advanced by ``s`` frames, ``L + s``.

Held-out figures (identities from 1 000 000, scenes from 100 000, never seen in training): offset recovery
with injected shifts -10..+10 (fraction within +-1 frame of ``L + s``) and Sync-C in sync vs shifted.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from avatarv.eval.sync import (
    distance_table,
    mfcc_features,
    mfcc_windows,
    sync_scores,
    window_count,
)
from avatarv.eval.world_syncnet import DEFAULT_WEIGHTS, WorldSyncNet, save_world_syncnet

VSHIFT = 15
HELD_OUT_IDS, HELD_OUT_SCENES = 1_000_000, 100_000
SHIFTS = tuple(range(-10, 11))


@dataclass
class SyncClip:
    small: np.ndarray  # [T,56,56,3] uint8 BGR: pooled SyncNet crops
    audio: np.ndarray  # [N] float32 16 kHz, decoded from the mp4
    mfcc: np.ndarray  # [13,M]
    lag: int  # the identity's mouth lag (frames)
    identity: int


def small_crops(crops_rgb: np.ndarray) -> np.ndarray:
    """224 crops (RGB uint8) -> the network's pooled 56 x 56 BGR uint8 (as ``WorldSyncNet.small_lips``)."""
    x = torch.from_numpy(np.ascontiguousarray(crops_rgb[..., ::-1])).float().permute(0, 3, 1, 2)
    x = F.avg_pool2d(x, 4)
    return x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def world_sync_clip(identity: int, scene: int, seconds: float, size: int, seed: int, r: np.random.Generator | None,
                    tmp_dir: Path) -> SyncClip:
    """One world clip through mp4 and back, cropped like the evaluation (``r``: box jitter; None = exact)."""
    from avatarv.eval.face_tracks import FaceTrack, crop_track
    from avatarv.media import read_video
    from avatarv.world import make_clip

    clip = make_clip(identity, scene, seconds, size, seed)
    path = tmp_dir / f"sync_{os.getpid()}.mp4"
    clip.save(path)
    video = read_video(path, fps=25.0, require_audio=True)
    boxes = clip.labels.face_box.astype(np.float64)
    if r is not None:  # per-clip scale / shift (dlib's boxes differ from the landmark box by about this much)
        w = (boxes[:, 2] - boxes[:, 0]).mean()
        c = (boxes[:, :2] + boxes[:, 2:]) / 2 + r.normal(0, 0.05 * w, 2)
        half = (boxes[:, 2:] - boxes[:, :2]) / 2 * r.uniform(0.9, 1.15)
        boxes = np.concatenate([c - half, c + half], 1) + r.normal(0, 0.5, boxes.shape)
    n = min(len(video.frames), len(boxes))
    crops = crop_track(video.frames[:n], FaceTrack(np.arange(n), boxes[:n]))
    audio = np.asarray(video.audio, np.float32)
    for p in (path, path.with_suffix(".npz"), path.with_suffix(".json")):
        p.unlink(missing_ok=True)
    return SyncClip(small_crops(crops), audio, mfcc_features(audio), int(clip.meta["mouth_lag_frames"]), identity)


def make_clips(n: int, id_base: int, n_ids: int, scene_base: int, n_scenes: int, seconds: float, seed: int,
               jitter: bool, tmp_dir: Path, log=print) -> list[SyncClip]:
    r = np.random.default_rng([seed, id_base, n])
    out = []
    for k in range(n):
        size = int(r.choice([128, 128, 160, 192]))
        out.append(world_sync_clip(id_base + k % n_ids, scene_base + int(r.integers(n_scenes)), seconds, size, seed,
                                   r if jitter else None, tmp_dir))
        if (k + 1) % 25 == 0:
            log(f"data {k + 1}/{n}")
    return out


def _save_clips(path: Path, clips: list[SyncClip]) -> None:
    arrays = {}
    for k, c in enumerate(clips):
        arrays.update({f"{k}.small": c.small, f"{k}.audio": c.audio, f"{k}.mfcc": c.mfcc,
                       f"{k}.meta": np.array([c.lag, c.identity])})
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _load_clips(path: Path) -> list[SyncClip]:
    with np.load(path) as d:
        n = len([k for k in d.files if k.endswith(".meta")])
        return [SyncClip(d[f"{k}.small"], d[f"{k}.audio"], d[f"{k}.mfcc"], int(d[f"{k}.meta"][0]),
                         int(d[f"{k}.meta"][1])) for k in range(n)]


# --- evaluation on prepared clips ------------------------------------------------------------------------------


def shift_audio(audio: np.ndarray, shift: int) -> np.ndarray:
    """Audio advanced by ``shift`` frames (sound early: SyncNet's offset grows by ``shift``), same length."""
    from avatarv.world.clip import offset_audio

    return offset_audio(audio, shift)


@torch.no_grad()
def clip_scores(model: WorldSyncNet, clip: SyncClip, shift: int = 0) -> tuple[int, float, float]:
    """(offset, Sync-C, Sync-D) of a prepared clip with its audio advanced by ``shift`` frames."""
    audio = shift_audio(clip.audio, shift) if shift else clip.audio
    n = window_count(len(clip.small), len(audio))
    small = torch.from_numpy(clip.small[: n + 4]).float().permute(3, 0, 1, 2)[None] / 255.0 - 0.5
    v = model.lip_embed_small(small).double().numpy()
    mfcc = torch.from_numpy(mfcc_windows(mfcc_features(audio), n)).float()
    a = model.audio_embed(mfcc).double().numpy()
    return sync_scores(distance_table(v, a, VSHIFT))


def offset_figures(model: WorldSyncNet, clips: list[SyncClip], shifts=SHIFTS) -> dict:
    """Offset recovery (|detected - (L + s)| <= 1) and Sync-C in sync vs shifted (|s| >= 3)."""
    model.eval()
    rows = []
    for c in clips:
        for s in shifts:
            off, conf, dist = clip_scores(model, c, s)
            rows.append((s, off, c.lag + s, conf, dist))
    rows_a = np.array(rows, dtype=np.float64)
    err = np.abs(rows_a[:, 1] - rows_a[:, 2])
    in_sync = rows_a[rows_a[:, 0] == 0]
    shifted = rows_a[np.abs(rows_a[:, 0]) >= 3]
    return {
        "clips": len(clips),
        "shifts": [int(shifts[0]), int(shifts[-1])],
        "within_1": float((err <= 1).mean()),
        "exact": float((err == 0).mean()),
        "relative_within_1": float(np.mean([  # detected(shifted) - detected(in sync) vs s
            abs((r[1] - in_sync[i // len(shifts), 1]) - r[0]) <= 1 for i, r in enumerate(rows_a)])),
        "sync_c_in_sync": float(in_sync[:, 3].mean()),
        "sync_c_shifted": float(shifted[:, 3].mean()),
        "sync_d_in_sync": float(in_sync[:, 4].mean()),
        "sync_d_shifted": float(shifted[:, 4].mean()),
    }


# --- training ----------------------------------------------------------------------------------------------------


@dataclass
class SyncNetTrainConfig:
    """One training run (the options of ``avatarv eval train-syncnet``, same names and defaults)."""

    out: str = "runs/syncnet"  # work folder: data.npz, test.npz, checkpoint.pt, figures.json
    weights: str = str(DEFAULT_WEIGHTS)  # the trained network (safetensors)
    clips: int = 240
    identities: int = 120
    scenes: int = 60
    test_clips: int = 24
    seconds: float = 4.0
    steps: int = 2500
    batch_clips: int = 8
    run: int = 12
    width: int = 32
    embed_dim: int = 128
    audio_width: int = 16
    lr: float = 2e-3
    threads: int = 1
    seed: int = 0
    checkpoint_every: float = 180.0  # seconds
    stop_after: int | None = None  # checkpoint and stop at this step (resume later)


def batch(clips: list[SyncClip], r: np.random.Generator, n_clips: int, run: int):
    """Lip windows ``[B,3,run+4,56,56]`` and audio windows ``[B*(run+30),1,13,20]`` (candidates per clip)."""
    smalls, mfccs = [], []
    for _ in range(n_clips):
        c = clips[int(r.integers(len(clips)))]
        n_audio = (c.mfcc.shape[1] - 20) // 4 + 1
        lo = c.lag + VSHIFT  # first video window whose candidates start at audio window 0
        hi = min(len(c.small) - 4, n_audio - VSHIFT + c.lag) - run
        i = int(r.integers(lo, hi))
        x = c.small[i : i + run + 4].astype(np.float32) / 255.0
        x = (x - 0.5) * r.uniform(0.8, 1.2) + r.uniform(-0.08, 0.08)  # contrast / brightness
        if r.random() < 0.5:
            x = x[:, :, ::-1]
        smalls.append(np.ascontiguousarray(x.transpose(3, 0, 1, 2)))
        a0 = i - c.lag - VSHIFT
        m = mfcc_windows(c.mfcc[:, 4 * a0 :], run + 2 * VSHIFT).copy()
        m[:, :, 0] += r.uniform(-1.0, 1.0)  # c0 is log energy: a gain change
        mfccs.append(m)
    return torch.from_numpy(np.stack(smalls)), torch.from_numpy(np.concatenate(mfccs)).float()


def loss_fn(model: WorldSyncNet, lips: torch.Tensor, mfcc: torch.Tensor, run: int) -> tuple[torch.Tensor, float]:
    b = lips.shape[0]
    v = model.lip_embed_small(lips).reshape(b, run, -1)  # [B,run,D]
    a = model.audio_embed(mfcc).reshape(b, run + 2 * VSHIFT, -1)  # [B,run+30,D]
    idx = torch.arange(run)[:, None] + torch.arange(2 * VSHIFT + 1)[None, :]  # [run,31]
    cand = a[:, idx]  # [B,run,31,D]
    dist = (v[:, :, None] - cand).pow(2).sum(-1).add(1e-6).sqrt()  # [B,run,31]
    logits = -dist.reshape(-1, 2 * VSHIFT + 1)
    target = torch.full((logits.shape[0],), VSHIFT)
    return F.cross_entropy(logits, target), float((logits.argmax(1) == VSHIFT).float().mean())


def train(cfg: SyncNetTrainConfig, log=print) -> dict:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    data_path = out / "data.npz"
    if data_path.is_file():
        clips = _load_clips(data_path)
    else:
        clips = make_clips(cfg.clips, 0, cfg.identities, 0, cfg.scenes, cfg.seconds, cfg.seed, True, out, log)
        _save_clips(data_path, clips)
    test_path = out / "test.npz"
    if test_path.is_file():
        test = _load_clips(test_path)
    else:
        test = make_clips(cfg.test_clips, HELD_OUT_IDS, cfg.test_clips, HELD_OUT_SCENES, 1000, cfg.seconds,
                          cfg.seed, False, out, log)
        _save_clips(test_path, test)
    log(f"data ready: {len(clips)} train, {len(test)} held-out clips ({time.time() - t_start:.0f} s)")

    model = WorldSyncNet(cfg.width, cfg.embed_dim, cfg.audio_width)
    all_mfcc = np.concatenate([c.mfcc for c in clips], 1)
    model.mfcc_mean.copy_(torch.from_numpy(all_mfcc.mean(1)).float())
    model.mfcc_std.copy_(torch.from_numpy(all_mfcc.std(1) + 1e-3).float())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    r = np.random.default_rng(cfg.seed)
    step, elapsed = 0, 0.0
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file():  # exact resume: weights, optimiser, schedule, data RNG, torch RNG
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        r.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        step, elapsed = state["step"], state["elapsed"]
        log(f"resumed at step {step}")
    model.train()
    last_ckpt, t0 = time.time(), time.time()
    ema = None
    while step < cfg.steps:
        lips, mfcc = batch(clips, r, cfg.batch_clips, cfg.run)
        loss, acc = loss_fn(model, lips, mfcc, cfg.run)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        ema = acc if ema is None else 0.98 * ema + 0.02 * acc
        if step % 50 == 0:
            log(f"step {step} loss {loss.item():.3f} acc {ema:.3f} {(time.time() - t0) / 50:.2f} s/step")
            t0 = time.time()
        stop = step == cfg.stop_after  # a planned interruption (tests of the resume)
        if time.time() - last_ckpt > cfg.checkpoint_every or step == cfg.steps or stop:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "rng": r.bit_generator.state, "torch_rng": torch.get_rng_state(), "step": step,
                        "elapsed": elapsed + time.time() - last_ckpt}, ckpt.with_suffix(".tmp"))
            ckpt.with_suffix(".tmp").replace(ckpt)
            elapsed += time.time() - last_ckpt
            last_ckpt = time.time()
        if stop:
            return {"stopped_at": step}
    figures = offset_figures(model, test)
    log(json.dumps(figures))
    meta = {"width": cfg.width, "embed_dim": cfg.embed_dim, "audio_width": cfg.audio_width, "steps": cfg.steps, "train_clips": len(clips),
            "train_identities": cfg.identities, "held_out": figures, "train_seconds": round(elapsed)}
    save_world_syncnet(model, cfg.weights, meta)
    (out / "figures.json").write_text(json.dumps(meta, indent=1))
    return meta


def main(argv: list[str] | None = None) -> None:
    """``python -m avatarv.eval.train_syncnet``: the command ``avatarv eval train-syncnet`` (its options and help are there)."""
    import typer

    from avatarv.eval.cli import train_syncnet

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train_syncnet)
    app(args=argv, prog_name="python -m avatarv.eval.train_syncnet")


if __name__ == "__main__":
    main()

"""Train the landmark SyncNet on the world (one CPU thread, checkpointed, resumable).

    python -m avatarv.eval.train_landmark_sync --out runs/landmark_sync [--steps 4000]   # make train-landmark-sync

Data: world clips (training identities 0..N-1, scenes 0..S-1) rendered at 160-224 px; lip landmarks come from
**mediapipe FaceMesh run on the rendered frames** (it finds the world's painted faces in every frame, and its
inner-lip opening follows the world's ground-truth opening, r 0.90-0.99), so training sees the same landmark
pipeline, with its jitter, that real faces go through. Audio: each clip's speech, clean and with added noise
(white or pink, 5-30 dB SNR), as per-clip normalised MFCCs.

Objective (as ``train_syncnet``): for video window ``i`` the positive is the audio window that caused it,
``i - L`` (``L`` = the identity's mouth lag, 0..3 frames), the negatives the same clip's audio windows at
``i - L + d``, ``d`` in +-1..+-15, and the zero vector (the distance table's padding beyond the clip's ends);
cross-entropy over the 32 candidates with logits ``-||v - a||``. Landmarks get
per-clip jitter (0-3 % of the inter-ocular distance per point and frame) before normalisation.

Held-out figures (identities from 1 000 000, scenes from 100 000): offset recovery with shifts -10..10
(fraction within +-1 of ``L + s``) and Sync-C in sync vs shifted (|s| >= 3).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from avatarv.eval.landmark_sync import (
    DEFAULT_WEIGHTS,
    LandmarkSyncNet,
    LipTrack,
    audio_features,
    audio_windows,
    clip_features,
    evaluate_lips,
    lip_geometry,
    save_landmark_sync,
    video_windows,
)
from avatarv.eval.sync import MFCC_PER_FRAME, VSHIFT

HELD_OUT_IDS, HELD_OUT_SCENES = 1_000_000, 100_000
SHIFTS = tuple(range(-10, 11))


@dataclass
class LipClip:
    lips: np.ndarray  # [T,20,2] px, NaN where mediapipe found no face
    eyes: np.ndarray  # [T,2,2] px
    audio: np.ndarray  # [N] float32 16 kHz (clean)
    mfcc: np.ndarray  # [V,13,M] float32 normalised MFCCs, V variants (0: clean, 1..: noisy)
    lag: int
    identity: int


def add_noise(audio: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """White or pink noise at a random 5-30 dB SNR (real clips have rooms, music, hiss)."""
    noise = r.standard_normal(len(audio))
    if r.random() < 0.5:  # pink: 1/f power
        spec = np.fft.rfft(noise)
        spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1.0))
        noise = np.fft.irfft(spec, len(audio))
    snr_db = r.uniform(5.0, 30.0)
    p_sig = float(np.mean(audio.astype(np.float64) ** 2)) + 1e-12
    noise *= np.sqrt(p_sig / 10 ** (snr_db / 10) / (np.mean(noise**2) + 1e-12))
    return (audio + noise).astype(np.float32)


def world_lip_clip(identity: int, scene: int, seconds: float, size: int, seed: int,
                   r: np.random.Generator) -> LipClip:
    from avatarv.media.face_mesh import face_mesh
    from avatarv.world import make_clip

    clip = make_clip(identity, scene, seconds, size, seed)
    track = LipTrack.from_landmarks(face_mesh(clip.frames).points, "mediapipe")
    audio = np.asarray(clip.audio, np.float32)
    mfcc = np.stack([audio_features(audio), audio_features(add_noise(audio, r))])
    return LipClip(track.lips.astype(np.float32), track.eyes.astype(np.float32), audio, mfcc,
                   int(clip.meta["mouth_lag_frames"]), identity)


def make_clips(n: int, id_base: int, n_ids: int, scene_base: int, n_scenes: int, seconds: float, seed: int,
               log=print) -> list[LipClip]:
    r = np.random.default_rng([seed, id_base, n])
    out = []
    for k in range(n):
        size = int(r.choice([160, 192, 224]))
        out.append(world_lip_clip(id_base + k % n_ids, scene_base + int(r.integers(n_scenes)), seconds, size, seed, r))
        if (k + 1) % 25 == 0:
            log(f"data {k + 1}/{n}")
    return out


def save_clips(path: Path, clips: list[LipClip]) -> None:
    arrays = {}
    for k, c in enumerate(clips):
        arrays.update({f"{k}.lips": c.lips, f"{k}.eyes": c.eyes, f"{k}.audio": c.audio, f"{k}.mfcc": c.mfcc,
                       f"{k}.meta": np.array([c.lag, c.identity])})
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def load_clips(path: Path) -> list[LipClip]:
    with np.load(path) as d:
        n = len([k for k in d.files if k.endswith(".meta")])
        return [LipClip(d[f"{k}.lips"], d[f"{k}.eyes"], d[f"{k}.audio"], d[f"{k}.mfcc"], int(d[f"{k}.meta"][0]),
                        int(d[f"{k}.meta"][1])) for k in range(n)]


# --- evaluation --------------------------------------------------------------------------------------------------


def offset_figures(model: LandmarkSyncNet, clips: list[LipClip], shifts=SHIFTS) -> dict:
    """Offset recovery on held-out clips: |detected - (L + s)| <= 1 over ``shifts``; Sync-C in sync vs |s| >= 3."""
    from avatarv.world.clip import offset_audio

    model.eval()
    rows = []
    for c in clips:
        track = LipTrack(c.lips, c.eyes)
        for s in shifts:
            res = evaluate_lips(model, track, offset_audio(c.audio, s) if s else c.audio)
            rows.append((s, res.offset, c.lag + s, res.sync_c, res.sync_d))
    a = np.array(rows, dtype=np.float64)
    err = np.abs(a[:, 1] - a[:, 2])
    return {"clips": len(clips), "shifts": [int(shifts[0]), int(shifts[-1])],
            "within_1": float((err <= 1).mean()), "exact": float((err == 0).mean()),
            "sync_c_in_sync": float(a[a[:, 0] == 0, 3].mean()), "sync_c_shifted": float(a[np.abs(a[:, 0]) >= 3, 3].mean())}


@torch.no_grad()
def calibrate_pad_norm(model: LandmarkSyncNet, clips: list[LipClip], min_shift: int = 3) -> float:
    """Set ``model.pad_norm`` so that a zero-padded comparison costs what a wrong offset costs on average: with
    ``m_i`` the mean distance of window ``i`` to the offsets at least ``min_shift`` from the right one (windows far
    enough from the ends to have no padding), ``c^2 = mean_i(m_i^2 - |v_i|^2)`` (clipped at 0). Returns c."""
    from avatarv.eval.landmark_sync import embed, n_windows
    from avatarv.eval.sync import distance_table

    model.pad_norm.zero_()
    excess = []
    for c in clips:
        feats = LipTrack(c.lips, c.eyes).features()
        n = n_windows(len(feats), len(c.audio), model.window)
        v, a = embed(model, feats, audio_features(c.audio), n)
        d = distance_table(v, a)  # [31, n]; rows beyond the ends hold |v| (padding): left out below
        for i in range(VSHIFT, n - VSHIFT):
            wrong = np.r_[d[: VSHIFT - c.lag - min_shift + 1, i], d[VSHIFT - c.lag + min_shift :, i]]
            excess.append(float(np.mean(wrong)) ** 2 - float(v[i] @ v[i]))
    value = float(np.sqrt(max(np.mean(excess), 0.0)))
    model.pad_norm.fill_(value)
    return value


# --- training ----------------------------------------------------------------------------------------------------


@dataclass
class LandmarkSyncTrainConfig:
    out: str = "runs/landmark_sync"  # work folder: data.npz, test.npz, checkpoint.pt, figures.json
    weights: str = str(DEFAULT_WEIGHTS)
    clips: int = 240
    identities: int = 120
    scenes: int = 60
    test_clips: int = 24
    seconds: float = 6.0
    steps: int = 4000
    batch_clips: int = 16
    run: int = 24
    window: int = 5
    hidden: int = 64
    embed_dim: int = 32
    lr: float = 2e-3
    feature_gain: float = 0.0  # per-clip random feature scale 1 +- this (augmentation, jittered_features)
    feature_drop: float = 0.0  # per-clip probability of zeroing a feature
    threads: int = 1
    seed: int = 0
    checkpoint_every: float = 120.0  # seconds
    stop_after: int | None = None  # checkpoint and stop at this step (resume later)


def jittered_features(c: LipClip, r: np.random.Generator, feature_gain: float = 0.0,
                      feature_drop: float = 0.0) -> np.ndarray:
    """Per-clip normalised geometry ``[T, 44]`` of the clip's landmarks with random per-point jitter; then each
    feature scaled by ``1 + U(-feature_gain, feature_gain)`` and dropped (zeroed) with ``feature_drop`` for the
    whole clip: world lips move in two ways (open, round) with fixed shapes, real lips in many, and the model must
    not lean on how the world's features co-vary."""
    iod = np.nanmedian(np.linalg.norm(c.eyes[:, 1] - c.eyes[:, 0], axis=-1))
    sigma = r.uniform(0.0, 0.03) * iod
    lips = c.lips + r.normal(0, sigma, c.lips.shape)
    eyes = c.eyes + r.normal(0, sigma * 0.5, c.eyes.shape)
    feats = clip_features(lip_geometry(lips, eyes))
    if feature_gain or feature_drop:
        scale = 1.0 + r.uniform(-feature_gain, feature_gain, feats.shape[1])
        scale *= r.random(feats.shape[1]) >= feature_drop
        feats = (feats * scale[None]).astype(np.float32)
    return feats


def batch(clips: list[LipClip], r: np.random.Generator, n_clips: int, run: int, window: int,
          feature_gain: float = 0.0, feature_drop: float = 0.0):
    """Video windows ``[B*run, 44, W]`` and candidate audio windows ``[B*(run+30), 13, 4W]``."""
    vids, auds = [], []
    for _ in range(n_clips):
        c = clips[int(r.integers(len(clips)))]
        mfcc = c.mfcc[int(r.integers(len(c.mfcc)))]  # [13,M]
        n_audio = (mfcc.shape[1] - MFCC_PER_FRAME * window) // MFCC_PER_FRAME + 1
        lo = c.lag + VSHIFT  # first video window whose candidates start at audio window 0
        hi = min(len(c.lips) - window + 1, n_audio - VSHIFT + c.lag) - run
        i = int(r.integers(lo, hi))
        feats = jittered_features(c, r, feature_gain, feature_drop)
        vids.append(video_windows(feats[i:], run, window))
        a0 = i - c.lag - VSHIFT
        auds.append(audio_windows(mfcc[:, MFCC_PER_FRAME * a0 :], run + 2 * VSHIFT, window))
    return torch.from_numpy(np.concatenate(vids)), torch.from_numpy(np.concatenate(auds))


def loss_fn(model: LandmarkSyncNet, vid: torch.Tensor, aud: torch.Tensor, run: int) -> tuple[torch.Tensor, float]:
    v = model.embed_lips(vid).reshape(-1, run, model.embed_dim + 1)  # [B,run,D+1] (pad_norm column: 0 here)
    a = model.embed_audio(aud).reshape(v.shape[0], run + 2 * VSHIFT, -1)  # [B,run+30,D]
    idx = torch.arange(run)[:, None] + torch.arange(2 * VSHIFT + 1)[None, :]  # [run,31]
    dist = (v[:, :, None] - a[:, idx]).pow(2).sum(-1).add(1e-6).sqrt()  # [B,run,31]
    # one more negative: the zero vector, which stands in for audio beyond the clip's ends in the distance table
    # (sync.distance_table pads with zeros, as the original): without it, short clips drift to offsets near +-15
    zero = v.pow(2).sum(-1, keepdim=True).add(1e-6).sqrt()  # [B,run,1]
    logits = -torch.cat([dist, zero], -1).reshape(-1, 2 * VSHIFT + 2)
    target = torch.full((logits.shape[0],), VSHIFT)
    return F.cross_entropy(logits, target), float((logits.argmax(1) == VSHIFT).float().mean())


def train(cfg: LandmarkSyncTrainConfig, log=print) -> dict:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    data_path, test_path = out / "data.npz", out / "test.npz"
    if data_path.is_file():
        clips = load_clips(data_path)
    else:
        clips = make_clips(cfg.clips, 0, cfg.identities, 0, cfg.scenes, cfg.seconds, cfg.seed, log)
        save_clips(data_path, clips)
    if test_path.is_file():
        test = load_clips(test_path)
    else:
        test = make_clips(cfg.test_clips, HELD_OUT_IDS, cfg.test_clips, HELD_OUT_SCENES, 1000, cfg.seconds, cfg.seed, log)
        save_clips(test_path, test)
    log(f"data ready: {len(clips)} train, {len(test)} held-out clips ({time.time() - t_start:.0f} s)")

    model = LandmarkSyncNet(cfg.window, cfg.hidden, cfg.embed_dim)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    r = np.random.default_rng(cfg.seed)
    step, elapsed = 0, 0.0
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file():  # exact resume: weights, optimiser, schedule, data RNG, torch RNG
        state = torch.load(ckpt, weights_only=False)
        missing = model.load_state_dict(state["model"], strict=False).missing_keys
        if set(missing) - {"pad_norm"}:  # pad_norm is set after training (calibrate_pad_norm), never trained
            raise RuntimeError(f"{ckpt}: checkpoint lacks {missing}")
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
        vid, aud = batch(clips, r, cfg.batch_clips, cfg.run, cfg.window, cfg.feature_gain, cfg.feature_drop)
        loss, acc = loss_fn(model, vid, aud, cfg.run)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        ema = acc if ema is None else 0.98 * ema + 0.02 * acc
        if step % 100 == 0:
            log(f"step {step} loss {loss.item():.3f} acc {ema:.3f} {(time.time() - t0) / 100:.3f} s/step")
            t0 = time.time()
        stop = step == cfg.stop_after
        if time.time() - last_ckpt > cfg.checkpoint_every or step == cfg.steps or stop:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "rng": r.bit_generator.state, "torch_rng": torch.get_rng_state(), "step": step,
                        "elapsed": elapsed + time.time() - last_ckpt}, ckpt.with_suffix(".tmp"))
            ckpt.with_suffix(".tmp").replace(ckpt)
            elapsed += time.time() - last_ckpt
            last_ckpt = time.time()
        if stop:
            return {"stopped_at": step}
    model.eval()
    pad = calibrate_pad_norm(model, clips[:40])
    log(f"pad_norm {pad:.3f}")
    figures = offset_figures(model, test)
    log(json.dumps(figures))
    meta = {"steps": cfg.steps, "train_clips": len(clips), "train_identities": cfg.identities,
            "landmarks": "mediapipe face mesh on world renders", "held_out_world": figures, "pad_norm": pad,
            "train_seconds": round(elapsed), "config": {**asdict(cfg), "weights": Path(cfg.weights).name}}
    save_landmark_sync(model, cfg.weights, meta)
    figures_path = Path(cfg.weights).with_suffix(".json")
    tmp = figures_path.with_name(figures_path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(figures_path)
    (out / "figures.json").write_text(json.dumps(meta, indent=1))
    return meta


def main(argv: list[str] | None = None) -> None:
    """Command line: one ``--name value`` per field of :class:`LandmarkSyncTrainConfig`."""
    parser = argparse.ArgumentParser(prog="python -m avatarv.eval.train_landmark_sync", description=__doc__.split("\n")[0])
    for f in fields(LandmarkSyncTrainConfig):
        kind = {"int": int, "float": float, "str": str, "int | None": int}[str(f.type)]
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default)
    cfg = LandmarkSyncTrainConfig(**vars(parser.parse_args(argv)))
    train(cfg, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
    main()

"""Train the world identity embedder with an ArcFace loss (one CPU thread, checkpointed, resumable).

    avatarv eval train-identity --out runs/identity    # or python -m avatarv.eval.train_identity;
                                                       # make train-identity

Data: world frames of training identities (0..N-1) in random training scenes (0..S-1), random head poses and
expressions (the analyzer's sampler), sizes 128-256 px, JPEG-degraded like decoded video; crops around the
landmark box with a jitter that covers dlib's boxes. Held out: identities from 1 000 000 in scenes from
100 000, each seen in several scenes; the figure is verification ROC AUC over frame pairs (same identity in
*different* scenes vs different identities) for the world backend and dlib's ResNet.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from avatarv.eval.world_identity import (
    DEFAULT_WEIGHTS,
    ArcFaceHead,
    IdentityNet,
    face_crop,
    save_identity_net,
)

HELD_OUT_IDS, HELD_OUT_SCENES = 1_000_000, 100_000
SIZES = (128, 160, 192, 256)


def render_faces(identities, scenes_per_id: int, frames_per_scene: int, scene_base: int, n_scenes: int, seed: int,
                 r: np.random.Generator, keep_frames: bool = False):
    """Frames of each identity in ``scenes_per_id`` random scenes: (crops [N,64,64,3], labels [N], scene ids [N],
    boxes, frames or None). Crops are from jittered landmark boxes of JPEG-degraded frames."""
    from avatarv.world import sample_identity, sample_scene
    from avatarv.world.analyzer.data import random_state
    from avatarv.world.labels import box_of
    from avatarv.world.render import Renderer

    crops, labels, scene_ids, boxes, frames = [], [], [], [], []
    for label, ident_id in enumerate(identities):
        ident = sample_identity(int(ident_id), seed)
        for scene_id in r.choice(n_scenes, size=scenes_per_id, replace=False) + scene_base:
            size = int(r.choice(SIZES))
            renderer = Renderer(ident, sample_scene(int(scene_id), seed), size, noise_seed=int(r.integers(1 << 30)))
            for _ in range(frames_per_scene):
                frame, lab = renderer.render(random_state(r, shake=0.0))
                ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(r.integers(60, 96))])
                frame = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
                box = box_of(lab.landmarks).astype(np.float64)
                w = box[2] - box[0]
                c = (box[:2] + box[2:]) / 2 + r.normal(0, 0.05 * w, 2)
                half = (box[2:] - box[:2]) / 2 * r.uniform(0.9, 1.15)
                jittered = np.concatenate([c - half, c + half])
                crops.append(face_crop(frame, jittered))
                labels.append(label)
                scene_ids.append(int(scene_id))
                boxes.append(box)
                if keep_frames:
                    frames.append(np.ascontiguousarray(frame))
    return np.stack(crops), np.array(labels), np.array(scene_ids), np.stack(boxes), frames if keep_frames else None


def verification_auc(emb: np.ndarray, labels: np.ndarray, scenes: np.ndarray) -> dict:
    """ROC AUC of cosine similarity: same identity in different scenes (positives) vs different identities."""
    from sklearn.metrics import roc_auc_score

    ok = np.isfinite(emb).all(1)
    e = emb[ok] / np.linalg.norm(emb[ok], axis=1, keepdims=True)
    lab, sc = labels[ok], scenes[ok]
    sim = e @ e.T
    iu = np.triu_indices(len(e), 1)
    same = lab[iu[0]] == lab[iu[1]]
    cross_scene = sc[iu[0]] != sc[iu[1]]
    keep = ~same | cross_scene  # same-identity pairs only across scenes
    y, s = same[keep], sim[iu][keep]
    return {"auc": float(roc_auc_score(y, s)), "positives": int(y.sum()), "negatives": int((~y).sum()),
            "faces": int(ok.sum()), "faces_missed": int((~ok).sum()),
            "mean_sim_same": float(s[y].mean()), "mean_sim_diff": float(s[~y].mean())}


def held_out_set(n_ids: int, scenes_per_id: int, frames_per_scene: int, seed: int):
    r = np.random.default_rng([seed, 77])
    ids = HELD_OUT_IDS + np.arange(n_ids)
    return render_faces(ids, scenes_per_id, frames_per_scene, HELD_OUT_SCENES, 1000, seed, r, keep_frames=True)


@torch.no_grad()
def embed_net(net: IdentityNet, crops: np.ndarray) -> np.ndarray:
    net.eval()
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    return torch.cat([net(x[i : i + 256]) for i in range(0, len(x), 256)]).numpy()


def backend_figures(held, net: IdentityNet | None = None, dlib: bool = True) -> dict:
    """AUC per backend on a held-out set from :func:`held_out_set` (both backends detect faces with dlib HOG:
    the world backend embeds the detected box like in use; frames where dlib finds no face are left out)."""
    from avatarv.eval.faces import DlibHogDetector
    from avatarv.eval.identity import DlibResNetEmbedder
    from avatarv.eval.world_identity import WorldIdentityEmbedder

    crops, labels, scenes, _, frames = held
    det = DlibHogDetector()
    found = [det.detect(f) for f in frames]
    out = {}
    if net is not None:
        world = WorldIdentityEmbedder.__new__(WorldIdentityEmbedder)
        world.net, world.dim = net.eval(), net.embed.out_features
        emb = np.stack([world.embed_faces(f, [max(d, key=lambda x: x[1])[0]])[0] if d else np.full(world.dim, np.nan)
                        for f, d in zip(frames, found, strict=True)])
        out["world"] = verification_auc(emb, labels, scenes)
        out["world_label_boxes"] = verification_auc(embed_net(net, crops), labels, scenes)
    if dlib:
        emb_d = DlibResNetEmbedder()
        emb = np.stack([emb_d.embed_faces(f, [max(d, key=lambda x: x[1])[0]])[0] if d else np.full(128, np.nan)
                        for f, d in zip(frames, found, strict=True)])
        out["dlib"] = verification_auc(emb, labels, scenes)
    return out


@dataclass
class IdentityTrainConfig:
    """One training run (the options of ``avatarv eval train-identity``, same names and defaults)."""

    out: str = "runs/identity"  # work folder: data.npz, checkpoint.pt, figures.json
    weights: str = str(DEFAULT_WEIGHTS)  # the trained network (safetensors)
    identities: int = 400
    scenes: int = 200
    scenes_per_id: int = 6
    frames_per_scene: int = 4
    test_ids: int = 40
    test_frames: int = 4  # held-out frames per (identity, scene); not an option
    steps: int = 1200
    batch: int = 128
    width: int = 32
    embed_dim: int = 128
    scale: float = 30.0
    margin: float = 0.3
    lr: float = 3e-3
    threads: int = 1
    seed: int = 0
    checkpoint_every: float = 180.0  # seconds
    stop_after: int | None = None  # checkpoint and stop at this step (resume later)


def train(cfg: IdentityTrainConfig, log=print) -> dict:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data_path = out / "data.npz"
    if data_path.is_file():
        with np.load(data_path) as d:
            crops, labels = d["crops"], d["labels"]
    else:
        r = np.random.default_rng([cfg.seed, 1])
        t = time.time()
        crops, labels, _, _, _ = render_faces(np.arange(cfg.identities), cfg.scenes_per_id, cfg.frames_per_scene,
                                              0, cfg.scenes, cfg.seed, r)
        np.savez(out / "data.tmp.npz", crops=crops, labels=labels)
        (out / "data.tmp.npz").replace(data_path)
        log(f"data: {len(crops)} crops of {cfg.identities} identities ({time.time() - t:.0f} s)")
    net = IdentityNet(cfg.width, cfg.embed_dim)
    head = ArcFaceHead(cfg.embed_dim, int(labels.max()) + 1, cfg.scale, cfg.margin)
    params = [*net.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    r = np.random.default_rng(cfg.seed)
    step, ckpt = 0, out / "checkpoint.pt"
    if ckpt.is_file():
        s = torch.load(ckpt, weights_only=False)
        net.load_state_dict(s["net"])
        head.load_state_dict(s["head"])
        opt.load_state_dict(s["opt"])
        sched.load_state_dict(s["sched"])
        r.bit_generator.state = s["rng"]
        torch.set_rng_state(s["torch_rng"])
        step = s["step"]
        log(f"resumed at step {step}")
    x_all = torch.from_numpy(crops).permute(0, 3, 1, 2)  # uint8 [N,3,64,64]
    y_all = torch.from_numpy(labels).long()
    net.train()
    last, t0 = time.time(), time.time()
    while step < cfg.steps:
        idx = torch.from_numpy(r.integers(0, len(x_all), cfg.batch))
        x = x_all[idx].float() / 255.0
        x = x * torch.from_numpy(r.uniform(0.8, 1.2, (len(x), 1, 1, 1))).float() + torch.from_numpy(
            r.uniform(-0.08, 0.08, (len(x), 3, 1, 1))).float()  # exposure and white balance
        flip = torch.from_numpy(r.random(len(x)) < 0.5)
        x[flip] = x[flip].flip(-1)
        loss = head(net(x), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        if step % 50 == 0:
            log(f"step {step} loss {loss.item():.3f} {(time.time() - t0) / 50:.2f} s/step")
            t0 = time.time()
        stop = step == cfg.stop_after  # a planned interruption (tests of the resume)
        if time.time() - last > cfg.checkpoint_every or step == cfg.steps or stop:
            torch.save({"net": net.state_dict(), "head": head.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "rng": r.bit_generator.state,
                        "torch_rng": torch.get_rng_state(), "step": step}, out / "checkpoint.tmp")
            (out / "checkpoint.tmp").replace(ckpt)
            last = time.time()
        if stop:
            return {"stopped_at": step}
    held = held_out_set(cfg.test_ids, 3, cfg.test_frames, cfg.seed)
    figures = backend_figures(held, net)
    log(json.dumps(figures))
    meta = {"width": cfg.width, "embed_dim": cfg.embed_dim, "steps": cfg.steps, "train_identities": cfg.identities,
            "arcface": {"scale": cfg.scale, "margin": cfg.margin}, "held_out": figures}
    save_identity_net(net, cfg.weights, meta)
    (out / "figures.json").write_text(json.dumps(meta, indent=1))
    return meta


def main(argv: list[str] | None = None) -> None:
    """``python -m avatarv.eval.train_identity``: the command ``avatarv eval train-identity`` (its options and help are there)."""
    import typer

    from avatarv.eval.cli import train_identity

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train_identity)
    app(args=argv, prog_name="python -m avatarv.eval.train_identity")


if __name__ == "__main__":
    main()

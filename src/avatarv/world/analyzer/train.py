"""Train the world analyzer on one CPU thread: ``avatarv train analyzer`` or ``python -m avatarv.world.analyzer.train``
(make train-analyzer).

Data: ~24 000 world frames of random identities/scenes/poses/expressions (ids disjoint from the test set).
Both networks train together for a fixed number of steps (AdamW, cosine schedule, bf16 autocast on CPU),
checkpointing every few hundred steps (a killed run resumes). The result is written as safetensors (fp16)
with the test metrics in its metadata and in a JSON file beside it.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from avatarv.analyzer.crops import to_crop
from avatarv.analyzer.model import SIGNALS, BoxNet, FaceNet
from avatarv.analyzer.predictor import WorldAnalyzer
from avatarv.precision import autocast, compute_dtype
from avatarv.world.analyzer.data import Samples, make_samples
from avatarv.world.facecheck import interocular
from avatarv.world.seeds import rng

TEST_IDS, TEST_SCENES = 1_000_000, 100_000
# smile and gaze have small visual cues (2–3 px in the crop): with low weights or an L1 loss they collapse to the
# median, so they weigh more and use a near-quadratic loss
SIGNAL_WEIGHTS = torch.tensor([0.5, 0.5, 0.5, 1.0, 1.5, 3.0, 3.0, 3.0])


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


def _augment(x: torch.Tensor, r: np.random.Generator) -> torch.Tensor:
    """Per-sample brightness, contrast and colour gains: lighting the world does not have."""
    b = x.shape[0]
    gain = torch.from_numpy(r.uniform(0.75, 1.25, (b, 1, 1, 1)).astype(np.float32))
    tint = torch.from_numpy(r.uniform(0.92, 1.08, (b, 3, 1, 1)).astype(np.float32))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * gain + mean * tint * torch.from_numpy(r.uniform(0.8, 1.2, (b, 1, 1, 1)).astype(np.float32))).clamp_(0, 1)


def evaluate(analyzer: WorldAnalyzer, test: Samples) -> dict:
    """Metrics of the full pipeline (box → crop → signals) on held-out identities and scenes."""
    by_size: dict[int, list[int]] = {}
    for i, s in enumerate(test.sizes):
        by_size.setdefault(int(s), []).append(i)
    preds = {}
    for idx in by_size.values():
        p = analyzer.predict(np.stack([test.frames[i] for i in idx]))
        for k, v in p.items():
            preds.setdefault(k, [None] * len(test.sizes))
            for j, i in enumerate(idx):
                preds[k][i] = v[j]
    pred = {k: np.stack(v) for k, v in preds.items()}
    lm_err = np.linalg.norm(pred["landmarks"] - test.landmarks, axis=-1).mean(-1)
    nme = lm_err / interocular(test.landmarks)
    true_sig = test.signals
    blink_true = true_sig[:, SIGNALS.index("blink")] >= 0.5
    tp = float((pred["blink_closed"] & blink_true).sum())
    f1 = 2 * tp / max(float(pred["blink_closed"].sum() + blink_true.sum()), 1.0)
    box_true = test.box * test.sizes[:, None] - 0.5
    ix = np.clip(np.minimum(pred["box"][:, 2], box_true[:, 2]) - np.maximum(pred["box"][:, 0], box_true[:, 0]), 0, None)
    iy = np.clip(np.minimum(pred["box"][:, 3], box_true[:, 3]) - np.maximum(pred["box"][:, 1], box_true[:, 1]), 0, None)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    iou = ix * iy / (area(pred["box"]) + area(box_true) - ix * iy)
    out = {
        "frames": len(test.sizes),
        "box_iou": float(iou.mean()),
        "landmark_error_px": float(lm_err.mean()),
        "landmark_nme": float(nme.mean()),
        "blink_f1": f1,
        "mouth_corr": float(np.corrcoef(pred["mouth_open"], true_sig[:, SIGNALS.index("mouth_open")])[0, 1]),
        "smile_corr": float(np.corrcoef(pred["smile"], true_sig[:, SIGNALS.index("smile")])[0, 1]),
    }
    for k, name in enumerate(("yaw", "pitch", "roll")):
        out[f"{name}_mae_deg"] = float(np.abs(pred[name] - true_sig[:, k] * 10.0).mean())
    out["gaze_mae"] = float(np.abs(np.stack([pred["gaze_x"], pred["gaze_y"]], 1) - true_sig[:, 6:8]).mean())
    for size in sorted(by_size):
        idx = np.array(by_size[size])
        out[f"landmark_error_px@{size}"] = float(lm_err[idx].mean())
    return out


def save(path: Path, box_net: BoxNet, face_net: FaceNet, meta: dict) -> None:
    from safetensors.torch import save_file

    state = {f"box.{k}": v.detach().half() if v.is_floating_point() else v for k, v in box_net.state_dict().items()}
    state.update({f"face.{k}": v.detach().half() if v.is_floating_point() else v
                  for k, v in face_net.state_dict().items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"avatarv": json.dumps(meta)})
    os.replace(tmp, path)


def train(out: Path, steps: int, batch: int, n_pairs: int, per_pair: int, seed: int, width: int, log,
          dtype: str = "auto") -> dict:
    torch.manual_seed(seed)
    t0 = time.time()
    train_set = make_samples(n_pairs, per_pair, seed, 0, 0)
    test_set = make_samples(max(n_pairs // 10, 8), 20, seed, TEST_IDS, TEST_SCENES, jitter=False, keep_frames=True)
    log(f"data: {len(train_set.sizes)} train / {len(test_set.sizes)} test frames in {time.time() - t0:.0f} s")
    lm_target = np.stack([to_crop(lm, sq) for lm, sq in zip(train_set.landmarks, train_set.squares, strict=True)])
    lm_target = torch.from_numpy(lm_target.reshape(len(lm_target), -1))
    sig_target = torch.from_numpy(train_set.signals)
    box_target = torch.from_numpy(train_set.box)

    box_net, face_net = BoxNet(width), FaceNet(width)
    amp = compute_dtype("cpu", dtype)  # bf16 autocast only where the CPU computes bf16 (avatarv.precision)
    params = list(box_net.parameters()) + list(face_net.parameters())
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4)
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt = out.with_name(out.stem + ".partial.pt")
    start = 0
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        box_net.load_state_dict(state["box"])
        face_net.load_state_dict(state["face"])
        opt.load_state_dict(state["opt"])
        start = state["step"]
        log(f"resumed at step {start}")
    n = len(train_set.sizes)
    r = rng(seed, "analyzer.train", start)
    box_net.train()
    face_net.train()
    t1 = time.time()
    for step in range(start, steps):
        lr = 2e-3 * 0.5 * (1 + math.cos(math.pi * step / steps))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = r.integers(0, n, batch)
        small = _augment(_tensor(train_set.small[idx]), r)
        crops = _augment(_tensor(train_set.crops[idx]), r)
        with autocast("cpu", amp):
            box_pred = box_net(small).float()
            face_pred = face_net(crops).float()
        loss_box = F.smooth_l1_loss(box_pred, box_target[idx], beta=0.02)
        loss_lm = F.smooth_l1_loss(face_pred[:, :136], lm_target[idx], beta=0.02)
        loss_sig = (F.smooth_l1_loss(face_pred[:, 136:], sig_target[idx], beta=0.5, reduction="none")
                    * SIGNAL_WEIGHTS).mean()
        loss = 4 * loss_box + 4 * loss_lm + loss_sig
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 100 == 0:
            rate = (step + 1 - start) / (time.time() - t1)
            log(f"step {step + 1}/{steps} loss {loss.item():.4f} (box {loss_box.item():.4f} lm {loss_lm.item():.4f} "
                f"sig {loss_sig.item():.4f}) lr {lr:.2e} {rate:.1f} steps/s")
        if (step + 1) % 500 == 0 or step + 1 == steps:
            torch.save({"box": box_net.state_dict(), "face": face_net.state_dict(), "opt": opt.state_dict(),
                        "step": step + 1}, ckpt)
    analyzer = WorldAnalyzer(box_net, face_net)
    metrics = evaluate(analyzer, test_set)
    meta = {"width": width, "steps": steps, "batch": batch, "train_frames": n, "seed": seed,
            "test": metrics, "train_seconds": round(time.time() - t0, 1)}
    save(out, box_net, face_net, meta)
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    ckpt.unlink(missing_ok=True)
    return meta


def main(argv: list[str] | None = None) -> None:
    """``python -m avatarv.world.analyzer.train``: the command ``avatarv train analyzer`` (its options and help are there)."""
    import typer

    from avatarv.training.cli import train_analyzer

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train_analyzer)
    app(args=argv, prog_name="python -m avatarv.world.analyzer.train")


if __name__ == "__main__":
    main()

"""The trainer: one loop for every stage (the stage is the TrainingMethod).

Gradient accumulation, bf16 autocast, gradient clipping, Muon + AdamW, linear warm-up, EMA, JSONL log and a
progress bar; checkpoints (model, EMA, optimizer, RNG, data position) every ``ckpt_every`` steps and at the
end. ``resume=True`` continues from the latest checkpoint exactly: the same losses and weights as an
uninterrupted run (bitwise on CPU), and the log is cut back to the checkpoint so no step is written twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from avatarv.config import get_preset
from avatarv.models.dit import VideoRefDiT
from avatarv.training.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from avatarv.training.config import TrainConfig
from avatarv.training.data import DataCursor, SyntheticLatents, load_batch
from avatarv.training.ema import EMA
from avatarv.training.methods import TrainingMethod, make_method
from avatarv.training.optim import MuonAdamW


def build_dataset(cfg: TrainConfig, dit_cfg):
    if cfg.data.kind == "synthetic":
        return SyntheticLatents(dit_cfg, size=cfg.data.size, frames=cfg.data.frames, latent_hw=cfg.data.latent_hw,
                                seed=cfg.seed)
    if cfg.data.kind == "shards":
        from avatarv.data.shards import ShardDataset

        return ShardDataset(cfg.data.path)
    from avatarv.errors import ConfigError

    raise ConfigError(f"unknown data kind {cfg.data.kind!r} (synthetic | shards)")


class Trainer:
    def __init__(self, cfg: TrainConfig, model: VideoRefDiT | None = None, dataset=None,
                 method: TrainingMethod | None = None, aux_losses: dict | None = None):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        if model is None:
            model = VideoRefDiT.from_pretrained(cfg.init_from) if cfg.init_from else VideoRefDiT(get_preset(cfg.preset).dit)
        self.model = model.train()
        self.dataset = dataset if dataset is not None else build_dataset(cfg, model.cfg)
        self.method = method or make_method(cfg.method, aux_losses)
        self.optim = MuonAdamW(self.model, cfg.optim)
        self.ema = EMA(self.model, cfg.ema_decay) if cfg.ema_decay else None
        self.cursor = DataCursor(len(self.dataset), seed=cfg.seed)
        self.generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.step = 0
        self.out = Path(cfg.out_dir)
        self.ckpt_root = self.out / "checkpoints"

    # ------------------------------------------------------------------ state
    def _parts(self) -> dict[str, dict]:
        parts = {
            "model": self.model.state_dict(),
            "optim": self.optim.state_dict(),
            "trainer": {"step": self.step, "cursor": self.cursor.state_dict(), "rng": rng_state(self.generator),
                        "config": json.loads(json.dumps(self.cfg.to_dict()))},
        }
        if self.ema is not None:
            parts["ema"] = self.ema.state_dict()
        return parts

    def save(self) -> Path:
        path = save_checkpoint(self.ckpt_root, self.step, self._parts())
        self.model.save_pretrained(self.out / "model")  # the latest weights, loadable by the pipeline
        return path

    def resume(self) -> bool:
        path = latest_checkpoint(self.ckpt_root)
        if path is None:
            return False
        names = ["model", "optim", "trainer"] + (["ema"] if self.ema is not None else [])
        state = load_checkpoint(path, names)
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        trainer = state["trainer"]
        self.step = trainer["step"]
        self.cursor.load_state_dict(trainer["cursor"])
        restore_rng(trainer["rng"], self.generator)
        self._truncate_log(self.step)
        return True

    def _truncate_log(self, step: int) -> None:
        log = self.out / "log.jsonl"
        if log.is_file():
            kept = [ln for ln in log.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
            log.write_text("".join(k + "\n" for k in kept))

    # ------------------------------------------------------------------ loop
    def lr_at(self, step: int) -> float:
        base = self.cfg.optim.lr
        if self.cfg.warmup_steps and step < self.cfg.warmup_steps:
            return base * (step + 1) / self.cfg.warmup_steps
        return base

    def train_step(self) -> dict:
        cfg = self.cfg
        self.optim.set_lr(self.lr_at(self.step))
        self.optim.zero_grad()
        logs_acc: dict[str, float] = {}
        for _ in range(cfg.grad_accum):
            batch = load_batch(self.dataset, self.cursor, cfg.batch_size)
            device = next(self.model.parameters()).device
            batch = batch.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                loss, logs = self.method.loss(self.model, batch, self.step, self.generator)
            (loss / cfg.grad_accum).backward()
            for k, v in logs.items():
                logs_acc[k] = logs_acc.get(k, 0.0) + v / cfg.grad_accum
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
        self.optim.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        return {"step": self.step, **logs_acc, "grad_norm": float(grad_norm), "lr": self.lr_at(self.step - 1)}

    def fit(self, resume: bool = False, max_steps: int | None = None, progress: bool = True) -> list[dict]:
        """Train to ``cfg.steps`` (or ``max_steps`` more steps). Returns the logged records of this call."""
        from tqdm import tqdm

        if resume:
            self.resume()
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2))
        target = self.cfg.steps if max_steps is None else min(self.cfg.steps, self.step + max_steps)
        records = []
        bar = tqdm(total=self.cfg.steps, initial=self.step, desc=f"train {self.method.name}", disable=not progress)
        with open(self.out / "log.jsonl", "a") as log:
            while self.step < target:
                start = time.perf_counter()
                rec = self.train_step()
                rec["seconds"] = time.perf_counter() - start
                records.append(rec)
                if self.step % self.cfg.log_every == 0:
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                bar.update(1)
                bar.set_postfix(loss=f"{rec['loss']:.4f}")
                if self.step % self.cfg.ckpt_every == 0 or self.step == self.cfg.steps:
                    self.save()
        bar.close()
        return records


def train_from_config(cfg: TrainConfig, resume: bool = False, **overrides) -> Trainer:
    cfg = replace(cfg, **overrides) if overrides else cfg
    trainer = Trainer(cfg)
    trainer.fit(resume=resume)
    return trainer

"""The trainer: one loop for every stage (the stage is the TrainingMethod).

Gradient accumulation, bf16 autocast, gradient clipping, Muon + AdamW, linear warm-up, EMA, JSONL log and a
progress bar; checkpoints (model, EMA, optimizer, RNG, data position) every ``ckpt_every`` steps and at the
end. ``resume=True`` continues from the latest checkpoint exactly: the same losses and weights as an
uninterrupted run (bitwise on CPU), and the log is cut back to the checkpoint so no step is written twice.

Randomness (noise, timesteps, dropped conditions) comes from a generator seeded by (seed, step, micro-batch
index), and the data order from the shared cursor, so a step does not depend on how its micro-batches are
spread over processes. Under ``torchrun`` (``WORLD_SIZE`` > 1) the model is sharded with FSDP2 and the
``grad_accum`` micro-batches of a step are dealt out round-robin to the ranks: W ranks give the same step as
one process (tested on 2 gloo ranks). Checkpoints hold full state either way (rank 0 writes them).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from avatarv.config import get_preset
from avatarv.distributed.state import (
    all_reduce_mean,
    gather_full,
    shard_like,
    shard_optimizer_state,
    world_info,
)
from avatarv.models.dit import VideoRefDiT
from avatarv.precision import autocast, compute_dtype
from avatarv.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
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
        if cfg.audio_positions:
            model = model.with_audio_positions()
        self.world = world_info()
        self.dataset = dataset if dataset is not None else build_dataset(cfg, model.cfg)
        if cfg.motion_norm and model.cfg.motion_dim and not model.cfg.motion_std:
            from avatarv.training.motion_stats import dataset_motion_statistics

            mean, std = dataset_motion_statistics(self.dataset)
            model.cfg = replace(model.cfg, motion_mean=mean, motion_std=std)
        if cfg.ref_behaviour and not model.cfg.ref_behaviour:
            from avatarv.training.motion_stats import dataset_behaviour_statistics

            # the references as the method feeds them: an image-reference stage pools its one frame
            mean, std = dataset_behaviour_statistics(self.dataset, cfg.method.ref_latent_frames, model.cfg)
            model = model.with_ref_behaviour(mean, std)
        self.method = method or make_method(cfg.method, aux_losses)
        model = self.method.prepare_model(model)  # stage 4: the student (and critic), the frozen teacher
        if cfg.lora_rank:
            from avatarv.training.lora_train import add_lora

            model = add_lora(model, cfg.lora_rank, cfg.lora_alpha)
        if self.world.distributed:
            from avatarv.distributed.fsdp import apply_fsdp
            from avatarv.errors import ConfigError

            if cfg.grad_accum % self.world.size:
                raise ConfigError(f"grad_accum ({cfg.grad_accum}) must be a multiple of the world size "
                                  f"({self.world.size}): each step's micro-batches are dealt out to the ranks")
            if torch.cuda.is_available():
                model = model.to(torch.device("cuda", torch.cuda.current_device()))
            model = self.method.shard(model, apply_fsdp)
        self.model = model.train()
        self.optim = MuonAdamW(self.model, cfg.optim)
        self.ema = EMA(self.model, cfg.ema_decay) if cfg.ema_decay else None
        self.cursor = DataCursor(len(self.dataset), seed=cfg.seed)
        self.step = 0
        self.out = Path(cfg.out_dir)
        self.ckpt_root = self.out / "checkpoints"

    # ------------------------------------------------------------------ state
    def generator(self, micro: int, step: int | None = None) -> torch.Generator:
        """The random stream of one micro-batch of one step (independent of the process layout)."""
        step = self.step if step is None else step
        return torch.Generator().manual_seed((self.cfg.seed + 1) * 2**40 + step * 2**12 + micro)

    def _parts(self) -> dict[str, dict]:
        """Full (unsharded) training state; a collective under FSDP."""
        parts = {
            "model": gather_full(self.model.state_dict()),
            "optim": gather_full(self.optim.state_dict()),
            "trainer": {"step": self.step, "cursor": self.cursor.state_dict(),
                        "config": json.loads(json.dumps(self.cfg.to_dict()))},
        }
        if self.ema is not None:
            parts["ema"] = gather_full(self.ema.state_dict())
        return parts

    def save(self) -> Path | None:
        parts = self._parts()
        if not self.world.is_main:
            self._barrier()
            return None
        path = save_checkpoint(self.ckpt_root, self.step, parts, keep=self.cfg.keep_checkpoints)
        # the latest weights, loadable by the pipeline: the exported DiT (a DMD run's generator), LoRA merged
        state = self.method.exported_state(parts["model"])
        if self.cfg.lora_rank:
            from avatarv.training.lora_train import merged_state

            state = merged_state(state, self.cfg.lora_rank, self.cfg.lora_alpha)
        plain = VideoRefDiT(self.model.cfg)
        plain.load_state_dict(state)
        plain.save_pretrained(self.out / "model")
        self._barrier()
        return path

    def _barrier(self) -> None:
        if self.world.distributed:
            torch.distributed.barrier()

    def resume(self) -> bool:
        path = latest_checkpoint(self.ckpt_root)
        if path is None:
            return False
        names = ["model", "optim", "trainer"] + (["ema"] if self.ema is not None else [])
        state = load_checkpoint(path, names)
        own = self.model.state_dict()
        self.model.load_state_dict(shard_like(state["model"], own))
        if self.world.distributed:
            for name, opt in self.optim.optimizers.items():
                opt.load_state_dict(shard_optimizer_state(state["optim"][name], opt))
        else:
            self.optim.load_state_dict(state["optim"])
        if self.ema is not None:
            self.ema.load_state_dict(shard_like(state["ema"], dict(self.model.named_parameters())))
        trainer = state["trainer"]
        self.step = trainer["step"]
        self.cursor.load_state_dict(trainer["cursor"])
        self._truncate_log(self.step)
        return True

    def _truncate_log(self, step: int) -> None:
        log = self.out / "log.jsonl"
        if log.is_file() and self.world.is_main:
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
        local = cfg.grad_accum // self.world.size  # micro-batches of this rank
        device = self._device()
        for micro in range(cfg.grad_accum):
            if micro % self.world.size != self.world.rank:
                self.cursor.take(cfg.batch_size)  # another rank's micro-batch: keep the shared order
                continue
            batch = load_batch(self.dataset, self.cursor, cfg.batch_size).to(device)
            with autocast(device, compute_dtype(device, cfg.precision)):
                loss, logs = self.method.loss(self.model, batch, self.step, self.generator(micro))
            # FSDP averages gradients over ranks: ÷ local count here gives the mean over all micro-batches
            (loss / local).backward()
            for k, v in logs.items():
                logs_acc[k] = logs_acc.get(k, 0.0) + v / local
        grad_norm = clip_grad_norm(self.model.parameters(), cfg.clip_grad)
        self.optim.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        logs_acc = all_reduce_mean(logs_acc, self.world)
        return {"step": self.step, **logs_acc, "grad_norm": grad_norm, "lr": self.lr_at(self.step - 1)}

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device  # a DTensor reports its local shard's device

    def fit(self, resume: bool = False, max_steps: int | None = None, progress: bool = True) -> list[dict]:
        """Train to ``cfg.steps`` (or ``max_steps`` more steps). Returns the logged records of this call."""
        from tqdm import tqdm

        if resume:
            self.resume()
        self.out.mkdir(parents=True, exist_ok=True)
        if self.world.is_main:
            (self.out / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2))
        target = self.cfg.steps if max_steps is None else min(self.cfg.steps, self.step + max_steps)
        records = []
        main = self.world.is_main
        bar = tqdm(total=self.cfg.steps, initial=self.step, desc=f"train {self.method.name}",
                   disable=not (progress and main))
        with open(self.out / "log.jsonl", "a") if main else contextlib.nullcontext() as log:
            while self.step < target:
                start = time.perf_counter()
                rec = self.train_step()
                rec["seconds"] = time.perf_counter() - start
                records.append(rec)
                if main and self.step % self.cfg.log_every == 0:
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                bar.update(1)
                bar.set_postfix(loss=f"{rec['loss']:.4f}")
                if self.step % self.cfg.ckpt_every == 0 or self.step == self.cfg.steps:
                    self.save()
        bar.close()
        return records


def clip_grad_norm(params, max_norm: float) -> float:
    """Clip by the global gradient norm; under FSDP the per-shard norms are reduced first (torchtitan)."""
    from torch.distributed.tensor import DTensor

    params = [p for p in params if p.grad is not None]
    total = torch.nn.utils.get_total_norm([p.grad for p in params])
    if isinstance(total, DTensor):
        total = total.full_tensor()
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return float(total)



"""The loop of the small single-model trainers (the tiny decoder's, the tiny encoder's): one model, one optimiser, one
data generator; ``log.jsonl`` a record per step; a checkpoint every ``cfg.ckpt_minutes`` of wall clock (saving draws
no random numbers, so when it happens does not change the run) and at the end; exact resume
(training/checkpoint.py); the latest weights in ``out/<export_name>``."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict

import torch

from avatarv.training.checkpoint import resume_simple_trainer, save_simple_trainer, truncate_log


def cosine_lr(cfg, step: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based): cosine from ``cfg.lr`` to ``cfg.lr·cfg.min_lr_ratio`` over
    ``cfg.steps`` (constant when ``min_lr_ratio`` ≥ 1)."""
    if cfg.min_lr_ratio >= 1.0:
        return cfg.lr
    frac = min(step / max(1, cfg.steps - 1), 1.0)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


class SimpleTrainer:
    """Subclasses set ``cfg`` (a dataclass with ``steps``, ``lr``, ``min_lr_ratio``, ``ckpt_minutes`` and ``seed``) and
    ``out``, call ``start(model)``, and define ``batch_loss() -> (loss, logs)`` (a batch drawn with ``_randint``)."""

    export_name = "model"  # the weights' folder under ``out``
    desc = "train"  # the progress bar's label

    def start(self, model: torch.nn.Module) -> None:
        """The model to train, its AdamW (cosine learning rate, no weight decay) and the data generator."""
        self.model = model.train()
        self.optim = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=0.0)
        self.generator = torch.Generator().manual_seed(self.cfg.seed + 1)
        self.step = 0

    def _randint(self, n: int) -> int:
        return int(torch.randint(n, (1,), generator=self.generator))

    def batch_loss(self) -> tuple[torch.Tensor, dict]:
        """One batch's loss and what to log of it."""
        raise NotImplementedError

    def train_step(self) -> dict:
        for group in self.optim.param_groups:
            group["lr"] = cosine_lr(self.cfg, self.step)
        self.optim.zero_grad(set_to_none=True)
        loss, logs = self.batch_loss()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optim.step()
        self.step += 1
        return {"step": self.step, "loss": loss.item(), "lr": self.optim.param_groups[0]["lr"], **logs}

    def postfix(self, rec: dict) -> dict[str, str]:
        """What the progress bar shows of a step's record."""
        return {"loss": f"{rec['loss']:.4f}"}

    def finish(self) -> None:
        """After the last step (``cfg.steps``), once its checkpoint is written: e.g. held-out metrics."""

    def save(self) -> None:
        save_simple_trainer(self.out / "checkpoints", self.step, self.model, self.optim, self.generator,
                            asdict(self.cfg), keep=2)
        self.model.save_pretrained(self.out / self.export_name)

    def resume(self) -> bool:
        step = resume_simple_trainer(self.out / "checkpoints", self.model, self.optim, self.generator)
        if step is None:
            return False
        self.step = step
        truncate_log(self.out / "log.jsonl", step)  # the steps after the checkpoint are trained (and logged) again
        return True

    def fit(self, resume: bool = False, progress: bool = True, stop_at: int | None = None) -> list[dict]:
        """Train to ``cfg.steps`` (or stop, checkpointed, after step ``stop_at``: an interruption, for tests)."""
        from tqdm import tqdm

        if resume:
            self.resume()
        self.out.mkdir(parents=True, exist_ok=True)
        end = self.cfg.steps if stop_at is None else min(stop_at, self.cfg.steps)
        records, last_save = [], time.monotonic()
        with open(self.out / "log.jsonl", "a", buffering=1) as log, tqdm(total=self.cfg.steps, initial=self.step,
                                                                          desc=self.desc, disable=not progress) as bar:
            while self.step < end:
                rec = self.train_step()
                records.append(rec)
                log.write(json.dumps(rec) + "\n")
                bar.update(1)
                bar.set_postfix(**self.postfix(rec))
                if time.monotonic() - last_save > 60 * self.cfg.ckpt_minutes:
                    self.save()
                    last_save = time.monotonic()
        self.save()
        if self.step >= self.cfg.steps:
            self.finish()
        return records


def parse_trainer_args(config_cls: type, description: str, argv: list[str] | None = None) -> tuple[object, dict]:
    """A command line for a ``SimpleTrainer``: ``--out`` (the config's ``out_dir``), ``--resume``, ``--no-progress``
    and one flag per other field of ``config_cls`` (a bool field is a switch). → (config, {resume, no_progress})."""
    import argparse
    from dataclasses import fields

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", dest="out_dir", default=config_cls.out_dir)
    ap.add_argument("--resume", action="store_true", help="continue from out/checkpoints/latest")
    ap.add_argument("--no-progress", action="store_true")
    for f in fields(config_cls):
        if f.name == "out_dir":
            continue
        if isinstance(f.default, bool):  # argparse's type=bool reads any non-empty string as True
            ap.add_argument(f"--{f.name.replace('_', '-')}", action="store_true", default=f.default)
        else:
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    args = vars(ap.parse_args(argv))
    flags = {k: args.pop(k) for k in ("resume", "no_progress")}
    return config_cls(**args), flags

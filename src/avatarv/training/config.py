"""Training configuration: one typed dataclass, read from TOML or JSON, with the stage's method inside."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from avatarv.errors import ConfigError
from avatarv.precision import parse_dtype
from avatarv.training.methods.base import MethodConfig
from avatarv.training.optim import OptimConfig


@dataclass
class DataConfig:
    kind: str = "synthetic"  # synthetic | shards
    path: str | None = None  # shard directory (data engine output) for kind = shards
    size: int = 16  # synthetic items
    frames: int = 3
    latent_hw: int = 8


@dataclass
class TrainConfig:
    preset: str = "tiny"
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    steps: int = 100
    batch_size: int = 2
    grad_accum: int = 1
    clip_grad: float = 1.0
    warmup_steps: int = 0
    ema_decay: float | None = 0.999
    # auto: bf16 autocast where the hardware computes bf16, fp32 elsewhere (avatarv.precision) | bf16 | fp32
    precision: str = "auto"
    log_every: int = 1
    ckpt_every: int = 50
    keep_checkpoints: int = 3  # newest checkpoints kept (0: all); a small-preset checkpoint is ~120 MB
    out_dir: str = "runs/train"
    seed: int = 0
    init_from: str | None = None  # a DiT checkpoint directory (e.g. the previous stage)
    # normalise the motion stream per channel with the training data's statistics, when the starting DiT has
    # none (models/dit/motion_norm.py); they are written into the DiT's config and travel with its weights
    motion_norm: bool = False
    # add audio window positions (DiTConfig.audio_positions, zero at the start) to a starting DiT without them
    audio_positions: bool = False
    # add the reference-behaviour condition (DiTConfig.ref_behaviour, zero at the start) to a starting DiT
    # without it; its standardisation comes from the training references (models/dit/behaviour.py)
    ref_behaviour: bool = False
    # train a LoRA of the DiT's blocks instead of all weights (peft; training/lora_train.py): its rank (0 = off)
    # and alpha (None: the rank, a scale of 1)
    lora_rank: int = 0
    lora_alpha: float | None = None

    def __post_init__(self):
        self.precision = parse_dtype(self.precision, "precision")
        if self.steps < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("steps, batch_size and grad_accum must be ≥ 1")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        def build(kind, values):
            known = {f.name for f in fields(kind)}
            unknown = set(values) - known
            if unknown:
                raise ConfigError(f"unknown {kind.__name__} keys: {sorted(unknown)}")
            values = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                      for k, v in values.items()}
            return kind(**values)

        d = dict(d)
        sub = {"method": MethodConfig, "optim": OptimConfig, "data": DataConfig}
        for key, kind in sub.items():
            if key in d:
                d[key] = build(kind, d[key])
        return build(cls, d)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError("training config not found", path)
        try:
            raw = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path}: cannot parse: {err}") from None
        return cls.from_dict(raw)

"""The precision policy (avatarv.precision): bf16 only where the hardware computes it, fp32 elsewhere; the
override wins; every part (VAE, DiT, attention backend, trainers' autocast) asks it."""

from __future__ import annotations

import pytest
import torch

from avatarv import precision
from avatarv.errors import ConfigError


@pytest.fixture
def cpu(monkeypatch):
    """Set the CPU's capability: ``cpu(mkldnn=..., flags=...)``; AVATARV_DTYPE unset."""
    monkeypatch.delenv(precision.ENV_VAR, raising=False)

    def set_cpu(mkldnn: bool, flags: set[str], machine: str = "x86_64"):
        monkeypatch.setattr(precision, "mkldnn_bf16", lambda: mkldnn)
        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
        monkeypatch.setattr(precision.platform, "machine", lambda: machine)

    return set_cpu


AMX = {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
AVX2 = {"avx2", "fma"}
SKYLAKE = {"avx2", "avx512f", "avx512bw"}  # oneDNN says "bf16 supported" but only converts


@pytest.mark.parametrize("mkldnn,flags,machine,native", [
    (True, AMX, "x86_64", True),
    (True, {"avx512_bf16"}, "x86_64", True),
    (False, AVX2, "x86_64", False),  # AMD EPYC / Intel client: emulated, ~300x slower
    (True, SKYLAKE, "x86_64", False),  # AVX-512 without a bf16 dot product
    (False, AMX, "x86_64", False),  # oneDNN cannot use it: ATen's fallback would run
    (True, {"asimd", "bf16"}, "aarch64", True),
    (True, {"asimd"}, "aarch64", False),
])
def test_native_bf16_follows_the_instruction_set(cpu, mkldnn, flags, machine, native):
    cpu(mkldnn, flags, machine)
    assert precision.cpu_bf16_native() is native
    assert precision.compute_dtype("cpu") == (torch.bfloat16 if native else torch.float32)


def test_override_wins_over_the_hardware(cpu, monkeypatch):
    cpu(True, AMX)
    assert precision.compute_dtype("cpu", "fp32") == torch.float32
    monkeypatch.setenv(precision.ENV_VAR, "fp32")
    assert precision.compute_dtype("cpu") == torch.float32
    assert precision.compute_dtype("cpu", "auto") == torch.float32  # auto defers to the environment
    assert precision.compute_dtype("cpu", "bf16") == torch.bfloat16  # an explicit flag beats the environment
    cpu(False, AVX2)
    monkeypatch.setenv(precision.ENV_VAR, "bfloat16")
    assert precision.compute_dtype("cpu") == torch.bfloat16


def test_bad_dtype_names_the_field(cpu, monkeypatch):
    with pytest.raises(ConfigError, match="--dtype: unknown dtype 'fp8'"):
        precision.compute_dtype("cpu", "fp8")
    monkeypatch.setenv(precision.ENV_VAR, "half")
    with pytest.raises(ConfigError, match="AVATARV_DTYPE: unknown dtype 'half'"):
        precision.compute_dtype("cpu")


def test_autocast_is_off_for_fp32():
    with precision.autocast("cpu", torch.float32):
        assert not torch.is_autocast_enabled("cpu")
    with precision.autocast("cpu", torch.bfloat16):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_capability_names_the_machine(cpu):
    cpu(False, AVX2)
    cap = precision.capability()
    assert cap["bf16_native"] is False and cap["dtype"] == "fp32"
    assert {"cpu_model", "cpu_capability", "threads", "dtype_request"} <= set(cap)


@pytest.mark.parametrize("native", [True, False])
def test_pipeline_parts_get_the_policy_dtype(cpu, monkeypatch, native):
    from avatarv.config import get_preset
    from avatarv.models.dit import VideoRefDiT
    from avatarv.models.vae import VideoVAE
    from avatarv.pipelines.generate import AvatarPipeline

    cpu(native, AMX if native else AVX2)
    cfg = get_preset("tiny")
    want = torch.bfloat16 if native else torch.float32
    trained = AvatarPipeline(cfg, VideoRefDiT(cfg.dit), VideoVAE(cfg.vae))
    assert trained.dtype == want and trained.vae.compute_dtype == want
    with trained.autocast():  # the DiT's forward runs under it
        assert torch.is_autocast_enabled("cpu") is native
    # random weights stay exact fp32 unless a dtype is asked for
    assert AvatarPipeline.random("tiny").dtype == torch.float32
    assert AvatarPipeline.random("tiny", dtype="bf16").vae.compute_dtype == torch.bfloat16
    assert AvatarPipeline(cfg, VideoRefDiT(cfg.dit), VideoVAE(cfg.vae), dtype="fp32").dtype == torch.float32
    monkeypatch.setenv(precision.ENV_VAR, "fp32")
    assert AvatarPipeline(cfg, VideoRefDiT(cfg.dit), VideoVAE(cfg.vae)).dtype == torch.float32
    monkeypatch.setenv(precision.ENV_VAR, "bf16")
    assert AvatarPipeline.random("tiny").dtype == torch.bfloat16


@pytest.mark.parametrize("native", [True, False])
def test_trainer_autocast_follows_the_policy(cpu, tmp_path, native):
    from avatarv.training.config import TrainConfig
    from avatarv.training.trainer import Trainer

    cpu(native, AMX if native else AVX2)
    trainer = Trainer(TrainConfig(preset="tiny", steps=1, batch_size=1, out_dir=str(tmp_path), ema_decay=None))
    seen = []

    def loss(model, batch, step, generator):  # records the autocast state, costs nothing
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32)
        return sum(p.sum() for p in model.parameters()) * 0.0, {}

    trainer.method.loss = loss
    trainer.train_step()
    assert seen == [torch.bfloat16 if native else torch.float32]
    with pytest.raises(ConfigError, match="precision: unknown dtype"):
        TrainConfig(precision="fp16x")


@pytest.mark.parametrize("native", [True, False])
def test_vae_trainer_autocast_follows_the_policy(cpu, tmp_path, native):
    import numpy as np

    from avatarv.training.vae import VAETrainConfig, VAETrainer

    class Still:
        def sample(self, g):
            return np.zeros((5, 32, 32, 3), np.uint8)

    cpu(native, AMX if native else AVX2)
    seen = []
    for asked in ("auto", "fp32"):
        trainer = VAETrainer(VAETrainConfig(preset="tiny", batch_size=1, out_dir=str(tmp_path), precision=asked),
                             source=Still())

        def loss(batch, weights=None, squares=None, model=trainer.model):
            seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32)
            return sum(p.sum() for p in model.parameters()) * 0.0, {}

        trainer.loss = loss
        trainer.train_step()
    assert seen == [torch.bfloat16 if native else torch.float32, torch.float32]
    with pytest.raises(ConfigError, match="precision"):
        VAETrainConfig(precision="int8")


def test_world_shards_encode_in_the_policy_dtype(cpu, monkeypatch):
    from avatarv.config import get_preset
    from avatarv.models.vae import VideoVAE
    from avatarv.training import world_shards

    cpu(False, AVX2)
    vae = VideoVAE(get_preset("tiny").vae)
    seen = []
    monkeypatch.setattr(VideoVAE, "encode", lambda self, frames: seen.append(self.compute_dtype) or torch.zeros(1, 1))
    world_shards._encode_frames(vae, None)
    cpu(True, AMX)
    world_shards._encode_frames(vae, None)
    assert seen == [torch.float32, torch.bfloat16]
    assert vae.compute_dtype == torch.float32  # restored


def test_the_onednn_probe_exists_in_this_torch():
    """The probe must name an operator this torch has: a misspelt name fell into the ``except`` and made every
    CPU "not native" (auto chose fp32 on AMX and AVX512-BF16 machines alike)."""
    probe = torch.ops.mkldnn._is_mkldnn_bf16_supported
    assert precision.mkldnn_bf16() == bool(probe())
    if {"amx_bf16", "avx512_bf16"} & precision.cpu_flags() and platform_is_x86():
        assert precision.mkldnn_bf16() and precision.cpu_bf16_native()


def platform_is_x86() -> bool:
    import platform

    return platform.machine().lower() in ("x86_64", "amd64")

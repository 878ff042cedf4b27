"""Ulysses sequence parallelism and FSDP2 on 2 gloo ranks equal one process (CPU, torch.multiprocessing)."""

from __future__ import annotations

import json
import os
import shutil
import socket
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from avatarv.config import DiTConfig
from avatarv.models.dit import RefInputs, RefKVCache, VideoRefDiT

WORLD = 2
CFG = DiTConfig(dim=32, num_heads=4, num_layers=2, ffn_dim=48, latent_channels=4, cond_channels=8, text_dim=8,
                freq_dim=16, audio_dim=6, motion_dim=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> list[int]:
    """``n`` different free ports: one process group each, for runs made one after the other in one spawn."""
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def build_model() -> VideoRefDiT:
    torch.manual_seed(0)
    model = VideoRefDiT(CFG)
    with torch.no_grad():  # make the identity-initialised parts live so every path is exercised
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def inputs(frames: int = 3, batch: int = 2):
    g = torch.Generator().manual_seed(1)
    ref = RefInputs(torch.randn(1, 4, 3, 6, 8, generator=g), torch.randn(1, 3, 5, generator=g),
                    torch.tensor([[True, False, True]]))
    kw = dict(x=torch.randn(batch, 4, frames, 6, 8, generator=g), t=torch.rand(batch, generator=g),
              text=torch.randn(batch, 5, 8, generator=g), cond=torch.randn(batch, 8, frames, 6, 8, generator=g),
              audio=torch.randn(batch, frames, 4, 6, generator=g), motion=torch.randn(batch, frames, 5, generator=g))
    return kw, ref


def loss_of(out) -> torch.Tensor:
    return out.video.square().mean() + out.motion.square().mean()


def run_single(frames: int):
    model = build_model()
    kw, ref = inputs(frames)
    cache = RefKVCache()
    with torch.no_grad():
        first = model(**kw, ref=ref, ref_cache=cache).video
    out = model(**kw, ref=ref)
    loss_of(out).backward()
    return first, out, {n: p.grad.clone() for n, p in model.named_parameters()}


def _init(rank: int, port: int):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)


def _finish():
    """Both ranks reach the end before either tears gloo down: a rank that destroys the group while its peer
    is still inside a collective (or saving) can abort the peer ("terminate called without an active
    exception", seen once in CI on the FSDP2 test)."""
    try:  # bounded: a rank that failed earlier must not hang its peer here
        dist.monitored_barrier(timeout=timedelta(seconds=60))
    finally:
        dist.destroy_process_group()


def _ulysses_worker(rank: int, port: int, frames: int, out_path: str):
    from avatarv.distributed import apply_ulysses

    _init(rank, port)
    try:
        model = apply_ulysses(build_model())
        kw, ref = inputs(frames)
        cache = RefKVCache()
        with torch.no_grad():
            first = model(**kw, ref=ref, ref_cache=cache).video  # cached, sharded reference K/V
            again = model(**kw, ref=ref, ref_cache=cache).video
        out = model(**kw, ref=ref)
        loss_of(out).backward()
        grads = {}
        for n, p in model.named_parameters():
            dist.all_reduce(p.grad)  # each rank's loss is the whole loss: sum and average (as FSDP does)
            grads[n] = p.grad / WORLD
        if rank == 0:
            torch.save({"first": first, "again": again, "video": out.video.detach(), "motion": out.motion.detach(),
                        "grads": grads, "builds": cache.builds}, out_path)
    finally:
        _finish()


def _fsdp_worker(rank: int, port: int, steps: int, out_path: str):
    from avatarv.distributed import apply_fsdp

    _init(rank, port)
    try:
        model = apply_fsdp(build_model(), cpu_offload=False)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        kw, ref = inputs(batch=2)
        local = {k: v[rank : rank + 1] for k, v in kw.items()}  # each rank its half of the batch
        losses = []
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_of(model(**local, ref=ref))
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        full = {n: p.full_tensor().detach() for n, p in model.named_parameters()}
        if rank == 0:
            torch.save({"params": full}, out_path)
    finally:
        _finish()


FSDP_STEPS = 3


def _model_runs_worker(rank: int, ports: list[int], out_root: str):
    """The model-level runs of the tests below, one after the other in the same two rank processes (one spawn
    instead of four: each spawn imports torch and avatarv again in both ranks), each on its own process group."""
    _ulysses_worker(rank, ports[0], 3, str(Path(out_root) / "sp3.pt"))
    _ulysses_worker(rank, ports[1], 4, str(Path(out_root) / "sp4.pt"))
    _fsdp_worker(rank, ports[2], FSDP_STEPS, str(Path(out_root) / "fsdp.pt"))
    _ulysses_fsdp_worker(rank, ports[3], 3, str(Path(out_root) / "sp_fsdp.pt"))


@pytest.fixture(scope="module")
def model_runs(tmp_path_factory) -> Path:
    """The folder of the 2-rank results: ``sp3.pt``/``sp4.pt`` (Ulysses, 3 and 4 latent frames), ``fsdp.pt``
    (FSDP2, ``FSDP_STEPS`` SGD steps), ``sp_fsdp.pt`` (Ulysses under FSDP2, 3 frames)."""
    root = tmp_path_factory.mktemp("model_runs")
    mp.spawn(_model_runs_worker, args=(free_ports(4), str(root)), nprocs=WORLD, join=True)
    return root


@pytest.mark.parametrize("frames", [3, 4])  # 3 latent frames do not divide 2 ranks: padded and cut
def test_ulysses_equals_single_process(model_runs, frames):
    got = torch.load(model_runs / f"sp{frames}.pt")
    first, out, grads = run_single(frames)
    assert got["builds"] == 1
    torch.testing.assert_close(got["first"], first, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["again"], first, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["video"], out.video.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["motion"], out.motion.detach(), atol=1e-5, rtol=1e-5)
    assert set(got["grads"]) == set(grads)
    for name, g in grads.items():
        torch.testing.assert_close(got["grads"][name], g, atol=1e-5, rtol=1e-4, msg=name)


def test_fsdp2_steps_equal_single_process(model_runs):
    steps = FSDP_STEPS
    got = torch.load(model_runs / "fsdp.pt")["params"]
    model = build_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    kw, ref = inputs(batch=2)
    for _ in range(steps):
        opt.zero_grad()
        # FSDP averages the two ranks' gradients: the mean of per-sample losses
        loss = sum(loss_of(model(**{k: v[i : i + 1] for k, v in kw.items()}, ref=ref)) for i in range(2)) / 2
        loss.backward()
        opt.step()
    for name, p in model.named_parameters():
        # SGD with momentum, not Adam: Adam divides by sqrt(v) ≈ |g| and turns fp32 reduction-order noise in
        # near-zero gradients into steps of size lr; SGD keeps the comparison at gradient precision.
        err = (got[name] - p.detach()).abs().max().item()
        assert err < 1e-5, (name, err)


def _ulysses_fsdp_worker(rank: int, port: int, frames: int, out_path: str):
    from avatarv.distributed import apply_fsdp, apply_ulysses

    _init(rank, port)
    try:
        # both over the same 2 ranks: FSDP shards the weights, the Ulysses hooks shard the frames
        model = apply_fsdp(apply_ulysses(build_model()), cpu_offload=False)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        kw, ref = inputs(frames)
        cache = RefKVCache()
        with torch.no_grad():
            first = model(**kw, ref=ref, ref_cache=cache).video  # reference stream through the FSDP forward method
        opt.zero_grad()
        out = model(**kw, ref=ref)
        loss_of(out).backward()  # FSDP averages the ranks' partial gradients of the one whole loss
        opt.step()
        full = {n: p.full_tensor().detach() for n, p in model.named_parameters()}
        if rank == 0:
            torch.save({"first": first, "video": out.video.detach(), "params": full, "builds": cache.builds},
                       out_path)
    finally:
        _finish()


def test_ulysses_hooks_compose_with_fsdp2(model_runs):
    """Ulysses hooks under FSDP2 on the same 2 ranks, 3 latent frames (padded to 4, cut): the outputs and one
    SGD step equal one process."""
    got = torch.load(model_runs / "sp_fsdp.pt")
    model = build_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    kw, ref = inputs(3)
    with torch.no_grad():
        first = model(**kw, ref=ref, ref_cache=RefKVCache()).video
    out = model(**kw, ref=ref)
    loss_of(out).backward()
    opt.step()
    assert got["builds"] == 1
    torch.testing.assert_close(got["first"], first, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["video"], out.video.detach(), atol=1e-5, rtol=1e-5)
    for name, p in model.named_parameters():
        err = (got["params"][name] - p.detach()).abs().max().item()
        assert err < 1e-5, (name, err)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FSDP2 CPU offload needs CUDA (run on a lent GPU)")
def test_fsdp2_cpu_offload_on_cuda(tmp_path):
    out_path = str(tmp_path / "offload.pt")
    mp.spawn(_offload_worker, args=(free_port(), out_path), nprocs=1, join=True)
    got = torch.load(out_path)
    model = build_model().cuda()
    kw, ref = inputs(batch=2)
    kw = {k: v.cuda() for k, v in kw.items()}
    ref = RefInputs(ref.latents.cuda(), ref.motion.cuda(), ref.frame_mask.cuda())
    loss = loss_of(model(**kw, ref=ref))
    assert abs(got["loss"] - loss.item()) < 1e-4


def _offload_worker(rank: int, port: int, out_path: str):
    from avatarv.distributed import apply_fsdp

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl", rank=rank, world_size=1)
    try:
        torch.cuda.set_device(rank)
        model = apply_fsdp(build_model(), cpu_offload=True)  # shards live on the host between uses
        assert next(model.parameters()).to_local().device.type == "cpu"
        kw, ref = inputs(batch=2)
        kw = {k: v.cuda() for k, v in kw.items()}
        ref = RefInputs(ref.latents.cuda(), ref.motion.cuda(), ref.frame_mask.cuda())
        loss = loss_of(model(**kw, ref=ref))
        loss.backward()
        torch.save({"loss": loss.item()}, out_path)
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------------------ the trainer under FSDP2


def _trainer_cfg(out_dir: str, method: str = "personality"):
    from avatarv.training.config import DataConfig, TrainConfig
    from avatarv.training.methods.base import MethodConfig
    from avatarv.training.optim import OptimConfig

    extra = {"critic_steps": 1, "dmd_regression_steps": 1, "ode_steps": 2} if method == "dmd" else {}
    # 2 micro-batches per step: one per rank under FSDP, accumulated in one process
    return TrainConfig(preset="tiny", steps=3, batch_size=1, grad_accum=2, data=DataConfig(size=6),
                       method=MethodConfig(name=method, **extra), optim=OptimConfig(lr=1e-3), precision="fp32",
                       ema_decay=0.9, ckpt_every=2, out_dir=out_dir)


def _trainer_worker(rank: int, port: int, out_dir: str, method: str = "personality"):
    from avatarv.training.trainer import Trainer

    _init(rank, port)
    try:
        trainer = Trainer(_trainer_cfg(out_dir, method))
        assert trainer.world.size == WORLD
        trainer.fit(progress=False)
    finally:
        _finish()


TRAINER_METHODS = ("personality", "cfg_distill", "dmd")


def _trainer_runs_worker(rank: int, ports: list[int], out_root: str):
    """The three trainer runs of the tests below, one after the other in the same two rank processes (one
    spawn instead of three: each spawn imports torch and avatarv again in both ranks); a fresh process group
    on its own port for each."""
    for port, method in zip(ports, TRAINER_METHODS, strict=True):
        _trainer_worker(rank, port, str(Path(out_root) / method), method)


@pytest.fixture(scope="module")
def fsdp_runs(tmp_path_factory) -> dict[str, str]:
    """``{method: out_dir}`` of the FSDP2 trainer runs on 2 ranks (``_trainer_cfg``)."""
    root = tmp_path_factory.mktemp("fsdp_runs")
    mp.spawn(_trainer_runs_worker, args=(free_ports(len(TRAINER_METHODS)), str(root)), nprocs=WORLD, join=True)
    return {method: str(root / method) for method in TRAINER_METHODS}


def _final_state(out_dir):
    from avatarv.training.checkpoint import latest_checkpoint, load_checkpoint

    return load_checkpoint(latest_checkpoint(Path(out_dir) / "checkpoints"), ["model", "ema", "trainer"])


def _losses(out_dir):
    return [json.loads(ln)["loss"] for ln in (Path(out_dir) / "log.jsonl").read_text().splitlines()]


def _assert_same_training(got: dict, want: dict, init: dict, muon: set[str], part: str, lr: float = 1e-3):
    """Weights trained two ways agree. AdamW weights are fp32 throughout: only the reduction order differs
    between 2 shards and one process, and the error is a small fraction of one step (~lr). Muon weights
    go through torch's Newton–Schulz, which runs in bf16 (``torch.optim._muon``): an fp32 difference that
    flips one bf16 rounding of the gradient moves the orthogonalised update by a bf16 ulp, and the iteration
    spreads it. Measured: up to 0.05·lr per element (a fifth of one Muon step of these 32-wide matrices),
    1 % of the weight's movement in norm. So Muon weights are held to their movement: a lost or doubled
    micro-batch changes the update's direction, tens of percent of it."""
    for name, w in want.items():
        if name in muon:
            moved = (w - init[name]).norm().item()
            rel = (got[name] - w).norm().item() / max(moved, 1e-12)
            assert rel < 0.1, (part, name, rel, moved)
        else:
            err = (got[name] - w).abs().max().item()
            assert err < 0.05 * lr, (part, name, err)


def test_trainer_fsdp2_equals_single_process(tmp_path, fsdp_runs):
    """``torchrun``-style training (FSDP2 over the Muon + AdamW trainer, micro-batches dealt to 2 ranks) equals
    one process accumulating the same micro-batches; its full-state checkpoint resumes in one process."""
    from avatarv.training.optim import split_parameters
    from avatarv.training.trainer import Trainer

    dist_dir, single_dir = fsdp_runs["personality"], str(tmp_path / "single")
    single = Trainer(_trainer_cfg(single_dir))
    single.fit(progress=False)

    np.testing.assert_allclose(_losses(dist_dir), _losses(single_dir), rtol=1e-4)
    got, want = _final_state(dist_dir), _final_state(single_dir)
    assert got["trainer"]["cursor"] == want["trainer"]["cursor"]
    init = Trainer(_trainer_cfg(str(tmp_path / "init"))).model.state_dict()
    muon = set(split_parameters(single.model)[0])
    for part in ("model", "ema"):
        assert set(got[part]) == set(want[part])
        _assert_same_training(got[part], want[part], init, muon, part)

    # the checkpoint FSDP wrote (step 2) resumes in one process and lands on the same step 3
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(Path(dist_dir) / "checkpoints" / "step_0000002", resumed_dir / "checkpoints" / "step_0000002")
    (resumed_dir / "checkpoints" / "latest").write_text("step_0000002")
    resumed = Trainer(_trainer_cfg(str(resumed_dir)))
    resumed.fit(resume=True, progress=False)
    assert resumed.step == 3
    _assert_same_training(resumed.model.state_dict(), want["model"], init, muon, "resumed")


@pytest.mark.parametrize("method", ["cfg_distill", "dmd"])
def test_stage4_under_fsdp2_equals_single_process(tmp_path, method, fsdp_runs):
    """Stage 4 under ``torchrun``-style FSDP2 (the student, and DMD's critic, each sharded; the frozen teacher
    replicated) gives the single process's losses and weights; the exported model is the student."""
    from avatarv.models.dit import VideoRefDiT
    from avatarv.training.trainer import Trainer

    dist_dir, single_dir = fsdp_runs[method], str(tmp_path / "single")
    single = Trainer(_trainer_cfg(single_dir, method))
    single.fit(progress=False)
    np.testing.assert_allclose(_losses(dist_dir), _losses(single_dir), rtol=1e-4)
    got, want = _final_state(dist_dir), _final_state(single_dir)
    assert set(got["model"]) == set(want["model"])
    for name, w in want["model"].items():  # all AdamW here (no "blocks." prefix for DMD's pair) or Muon-tolerant
        assert (got["model"][name] - w).abs().max().item() < 0.05 * (w.abs().max().item() + 1e-3), name
    exported = VideoRefDiT.from_pretrained(Path(dist_dir) / "model")
    # CFG distillation grows the guidance input; DMD exports its generator as it started (no guidance input)
    assert exported.cfg.num_guidance_scales == (3 if method == "cfg_distill" else 0)

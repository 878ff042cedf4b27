"""Weight offloading for inference, applied to built models from outside (the models know nothing of it).

Two granularities:

- :func:`offload_blocks` — the DiT's blocks live in host memory (pinned when CUDA) and each is copied to the
  device just before it runs, on a side CUDA stream, while the previous block computes; the rest of the DiT
  (embeddings, head: a few hundred MB for 14B) stays on the device. Only ``prefetch + 1`` blocks are on the
  device at once: InfiniteTalk-14B's 34.6 GiB of bf16 block weights cost 1.7 GiB of device memory at
  prefetch 1 (``python -m avatarv.distributed.memory_plan``).
- :func:`offload_modules` — whole models (T5, CLIP, VAE, DiT) are on the device only inside
  ``with offloader.use("t5"): ...`` (diffusers' ``enable_model_cpu_offload``, as a context).

Both swap ``tensor.data`` of the same ``Parameter`` objects (the state dict, optimisers and hooks still see the
same parameters): *loading* copies the host copy to the device, *dropping* points the parameter back at its
host copy. Nothing is copied back: weights are read-only here, so both are for inference only, and
:func:`offload_blocks` refuses to run a block with autograd recording (a graph would save the device copy of
a parameter whose ``.data`` is swapped under it). On CPU (``device="cpu"``) loading is a plain copy (no
streams, no pinning): the same code path, bit-identical outputs, and residency that tests can observe (a
loaded tensor's storage is not its host copy's).

The blocks are reached two ways: ``block(...)`` (the generated stream: forward pre-/post-hooks) and
``block.forward_ref(...)`` (the reference stream, called directly by ``VideoRefDiT._reference_stream``, so no
module hook fires). For the latter the bound method is wrapped by an instance attribute that runs the same
load/drop steps around it — what FSDP2's ``register_fsdp_forward_method`` does for the same method
(``avatarv/distributed/fsdp.py`` registers it). Loading every block for the reference pass instead would put
the whole block stack on the device, which is what offloading is for avoiding. ``remove()`` deletes the
attribute (or restores one that was there before, e.g. FSDP's), so the class's method is seen again.

CUDA ordering (the code paths run only where CUDA is present):

- a block's copy is issued on the side stream and an event recorded after it; the compute stream waits for
  that event (a GPU-side wait, no CPU sync) before the block's kernels, and ``record_stream`` marks the
  device copies as used by the compute stream, so the caching allocator does not hand their memory to the
  side stream's next copy while kernels that read them are still queued;
- before issuing a new copy, the CPU waits for the previous block's compute (an event recorded after it):
  without this the CPU runs ahead of the GPU and the allocator, finding the dropped blocks' memory still in
  use, allocates fresh memory for every prefetched block — the device then holds many blocks, not
  ``prefetch + 1``. The wait leaves the GPU idle only for the launch latency of a block's first kernel.

Followed: diffusers' group offloading (``src/diffusers/hooks/group_offloading.py``: pinned host copies,
``param.data = cpu_copy.to(device, non_blocking=True)`` on a side stream, ``record_stream``, the prefetch of
the next group from the current one's hook); unlike it, readiness is an event the compute stream waits on
rather than a CPU ``stream.synchronize()``, and the prefetch wraps around to block 0 for the next call.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from itertools import chain

import torch
from torch import nn


def _check_device(device: torch.device | str) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"avatarv: offload to {device}: CUDA is not available on this machine (use device='cpu')")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _host_copy(x: torch.Tensor, pin: bool) -> torch.Tensor:
    """``x`` in host memory, page-locked when ``pin`` (copies from it can then run asynchronously)."""
    host = x if x.device.type == "cpu" else x.to("cpu")
    if pin and not host.is_pinned():
        host = host.pin_memory()
    return host


class ModuleWeights:
    """One module's parameters and buffers with their host copies (each tensor once, shared ones included).

    Construction moves every tensor to its host copy; :meth:`load` points them at fresh device copies,
    :meth:`drop` back at the host copies, :meth:`restore` at the devices they had before construction."""

    def __init__(self, module: nn.Module, pin: bool):
        seen: set[int] = set()
        self.tensors: list[torch.Tensor] = []
        for t in chain(module.parameters(), module.buffers()):
            if id(t) not in seen:
                seen.add(id(t))
                self.tensors.append(t)
        self.home = [t.device for t in self.tensors]
        self.host = [_host_copy(t.data, pin) for t in self.tensors]
        self.drop()

    def load(self, device: torch.device, non_blocking: bool = False) -> None:
        for t, h in zip(self.tensors, self.host, strict=True):
            t.data = h.to(device, non_blocking=non_blocking, copy=True)

    def drop(self) -> None:
        for t, h in zip(self.tensors, self.host, strict=True):
            t.data = h

    def restore(self) -> None:
        for t, h, home in zip(self.tensors, self.host, self.home, strict=True):
            t.data = h if home.type == "cpu" else h.to(home)

    def loaded(self) -> bool:
        """Whether the tensors point at device copies (storage other than the host copies'): observable on CPU too."""
        return any(t.data.data_ptr() != h.data_ptr() for t, h in zip(self.tensors, self.host, strict=True)
                   if h.numel())

    def record_stream(self, stream) -> None:
        for t in self.tensors:
            t.data.record_stream(stream)

    @property
    def nbytes(self) -> int:
        return sum(h.numel() * h.element_size() for h in self.host)


class BlockOffload:
    """What :func:`offload_blocks` attached to a model: ``remove()`` restores it; ``resident`` says which blocks
    have device copies (issued, possibly still in flight) right now."""

    def __init__(self, model: nn.Module, device: torch.device | str, prefetch: int = 1):
        if prefetch < 0:
            raise ValueError(f"prefetch must be ≥ 0, got {prefetch}")
        if getattr(model, "_block_offload", None) is not None:
            raise RuntimeError("offload_blocks was applied to this model already (call .remove() first)")
        self.model = model
        self.device = _check_device(device)
        self.prefetch = prefetch
        self.cuda = self.device.type == "cuda"
        self.blocks = list(model.blocks)
        in_blocks = {id(t) for b in self.blocks for t in chain(b.parameters(), b.buffers())}
        # the rest of the model (embeddings, head, adapters) stays on the device for the whole handle's life
        self.rest = [t for t in chain(model.parameters(), model.buffers()) if id(t) not in in_blocks]
        self.rest_home = [t.device for t in self.rest]
        for t in self.rest:
            t.data = t.data.to(self.device)
        self.weights = [ModuleWeights(b, pin=self.cuda) for b in self.blocks]
        self.copy_stream = torch.cuda.Stream(self.device) if self.cuda else None
        self._ready: dict[int, torch.cuda.Event | None] = {}  # issued copies: block → event after its copy
        self._done: dict[int, torch.cuda.Event] = {}  # block → event after its compute (CUDA)
        self._hooks = []
        self._forward_ref_before: list[tuple[bool, object]] = []
        for i, block in enumerate(self.blocks):
            self._hooks.append(block.register_forward_pre_hook(self._pre_hook(i)))
            self._hooks.append(block.register_forward_hook(self._post_hook(i), always_call=True))
            if hasattr(block, "forward_ref"):
                self._forward_ref_before.append(("forward_ref" in block.__dict__, block.__dict__.get("forward_ref")))
                block.forward_ref = self._wrap(i, block.forward_ref)
        model._block_offload = self

    # ------------------------------------------------------------- residency
    @property
    def resident(self) -> tuple[int, ...]:
        """Blocks whose device copies exist (bookkeeping; :meth:`loaded` checks the tensors themselves)."""
        return tuple(sorted(self._ready))

    def loaded(self, i: int) -> bool:
        return self.weights[i].loaded()

    def _load(self, i: int) -> None:
        if i in self._ready:
            return
        if self.cuda:
            with torch.cuda.stream(self.copy_stream):
                self.weights[i].load(self.device, non_blocking=True)
                ready = torch.cuda.Event()
                ready.record(self.copy_stream)
            self._ready[i] = ready
        else:
            self.weights[i].load(self.device)
            self._ready[i] = None

    def _drop(self, i: int) -> None:
        self.weights[i].drop()
        self._ready.pop(i, None)

    # ----------------------------------------------------------------- steps
    def before(self, i: int) -> None:
        """Block ``i`` is about to run: have it on the device, and start copying the next ``prefetch`` blocks."""
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.blocks[i].parameters()):
            raise RuntimeError("avatarv: offload_blocks is for inference: call the model under torch.no_grad() "
                               "(or inference_mode), or freeze it with model.requires_grad_(False)")
        n = len(self.blocks)
        if self.cuda:  # bound the device's copies to prefetch + 1 blocks (module docstring)
            previous = self._done.pop((i - 1) % n, None)
            if previous is not None:
                previous.synchronize()
        self._load(i)  # issued by an earlier block's prefetch, except on the first call
        for j in range(1, min(self.prefetch, n - 1) + 1):
            self._load((i + j) % n)  # wraps around: block 0 is prefetched for the next call
        if self.cuda:
            compute = torch.cuda.current_stream(self.device)
            compute.wait_event(self._ready[i])
            self.weights[i].record_stream(compute)

    def after(self, i: int) -> None:
        """Block ``i`` has run (its kernels queued): drop its device copy."""
        if self.cuda:
            done = torch.cuda.Event()
            done.record(torch.cuda.current_stream(self.device))
            self._done[i] = done
        self._drop(i)

    def _pre_hook(self, i: int):
        def hook(module, args):
            self.before(i)

        return hook

    def _post_hook(self, i: int):
        def hook(module, args, output):
            self.after(i)

        return hook

    def _wrap(self, i: int, method):
        def forward_ref(*args, **kwargs):
            self.before(i)
            try:
                return method(*args, **kwargs)
            finally:
                self.after(i)

        forward_ref.__wrapped__ = method
        return forward_ref

    # ---------------------------------------------------------------- remove
    def remove(self) -> nn.Module:
        """Take the hooks and wrappers off and put every tensor back on the device it had; returns the model."""
        if getattr(self.model, "_block_offload", None) is not self:
            return self.model
        if self.cuda:
            torch.cuda.current_stream(self.device).wait_stream(self.copy_stream)
        for h in self._hooks:
            h.remove()
        for block, (had, previous) in zip(self.blocks, self._forward_ref_before, strict=False):
            if had:
                block.forward_ref = previous
            else:
                del block.forward_ref
        for i in list(self._ready):
            self._drop(i)
        for w in self.weights:
            w.restore()
        for t, home in zip(self.rest, self.rest_home, strict=True):
            t.data = t.data.to(home)
        self._done.clear()
        self.model._block_offload = None
        return self.model


def offload_blocks(model: nn.Module, device: torch.device | str, prefetch: int = 1) -> BlockOffload:
    """Stream ``model.blocks`` from host memory to ``device`` one block ahead of use (``prefetch`` blocks ahead);
    the rest of the model moves to ``device``. Inference only. Returns the handle (``.remove()`` undoes it)."""
    return BlockOffload(model, device, prefetch)


class ModuleOffload:
    """Whole modules on the device only while used: ``with offloader.use("t5") as t5: ...``.

    Every module's weights move to (pinned, with CUDA) host memory at construction; ``use`` copies the named
    ones to the device (on the current stream, so the copies are ordered before the work that reads them) and
    drops them on leaving, unless an enclosing ``use`` still holds them. Inference only (weights read-only).
    """

    def __init__(self, modules: dict[str, nn.Module], device: torch.device | str):
        self.device = _check_device(device)
        self.cuda = self.device.type == "cuda"
        self.modules = dict(modules)
        self.weights = {name: ModuleWeights(m, pin=self.cuda) for name, m in self.modules.items()}
        self._users: Counter[str] = Counter()

    @property
    def resident(self) -> tuple[str, ...]:
        return tuple(name for name in self.modules if self._users[name])

    def loaded(self, name: str) -> bool:
        return self.weights[name].loaded()

    @contextlib.contextmanager
    def use(self, *names: str) -> Iterator[nn.Module | tuple[nn.Module, ...]]:
        """Yields the module (or a tuple of them) on the device; back in host memory after, unless still used."""
        unknown = [n for n in names if n not in self.modules]
        if unknown:
            raise KeyError(f"avatarv: no offloaded module named {', '.join(unknown)} "
                           f"(have {', '.join(self.modules)})")
        entered = []
        try:
            for name in names:
                if not self._users[name]:
                    self.weights[name].load(self.device, non_blocking=self.cuda)
                self._users[name] += 1
                entered.append(name)
            yield self.modules[names[0]] if len(names) == 1 else tuple(self.modules[n] for n in names)
        finally:
            for name in entered:
                self._users[name] -= 1
                if not self._users[name]:
                    self.weights[name].drop()

    def remove(self) -> dict[str, nn.Module]:
        """Every module back on the device it had before; returns them."""
        for name, w in self.weights.items():
            self._users[name] = 0
            w.restore()
        return self.modules


def offload_modules(modules: dict[str, nn.Module], device: torch.device | str) -> ModuleOffload:
    """Keep ``modules`` in host memory and bring each to ``device`` only inside ``offloader.use(name)``."""
    return ModuleOffload(modules, device)


__all__ = ["BlockOffload", "ModuleOffload", "ModuleWeights", "offload_blocks", "offload_modules"]

"""Step-level caching: skip the DiT's block stack on steps where its input barely changed.

The reference K/V cache (``models/dit/cache.py``) removes the reference stream from every step; this removes
whole steps' worth of blocks. The criterion is the First-Block Cache's (ParaAttention; diffusers
``hooks/first_block_cache.py``) with TeaCache's accumulation (Liu et al. 2024, ``TeaCache4Wan2.1``):

- block 0 always runs; its residual ``r₀ = block₀(x) − x`` is the cheap probe of how much this step's input
  differs from the last computed one's;
- the relative change ``δ = mean|r₀ − r₀_prev| / mean|r₀_prev|`` is summed over the steps since the stack last
  ran (``acc += δ``); while ``acc < threshold`` (and at most ``max_skips`` steps in a row, and never on the
  first ``warmup`` evaluations) blocks 1…L−1 are skipped and their residual of the last computed step is
  added instead: ``out = block₀(x) + (stack(x′) − block₀(x′))`` with x′ that step's input;
- otherwise the stack runs, its residual is stored and ``acc`` resets to 0.

Threshold 0 never skips (``acc < 0`` is never true): the output is bit-identical to no caching (tested).

Each guidance pass (its set of kept conditions) has its own state: its inputs and residuals differ from the
other passes'. Wrapping, not editing: :meth:`StepCache.attach` replaces the blocks' ``forward`` on the
instances (as diffusers' and accelerate's hooks do) and :meth:`detach` puts them back; parameter names and the
model class are untouched. The reference stream (``forward_ref``) is not affected.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from avatarv.models.dit import VideoRefDiT


@dataclass
class StepCacheStats:
    """Counts of block-stack evaluations: computed and skipped (over every pass of every step)."""

    computed: int = 0
    skipped: int = 0
    deltas: list[float] = field(default_factory=list)  # δ of every evaluation after a pass's first (calibration)

    @property
    def skip_fraction(self) -> float:
        total = self.computed + self.skipped
        return self.skipped / total if total else 0.0


@dataclass
class _PassState:
    first_residual: torch.Tensor | None = None  # r₀ of the last evaluation
    stack_residual: torch.Tensor | None = None  # stack(x′) − block₀(x′) of the last computed evaluation
    acc: float = 0.0
    run_of_skips: int = 0
    evaluations: int = 0


class StepCache:
    """Step caching on one DiT (see the module docstring). Use as a context manager::

        with StepCache(dit, threshold=0.1) as cache:
            with cache.pass_key(kept):  # one per guidance pass
                dit(...)
    """

    def __init__(self, dit: VideoRefDiT, threshold: float = 0.0, max_skips: int = 2, warmup: int = 1,
                 stats: StepCacheStats | None = None):
        if threshold < 0 or max_skips < 0 or warmup < 1:
            raise ValueError(f"step cache: threshold ≥ 0, max_skips ≥ 0, warmup ≥ 1 (got {threshold}, {max_skips}, "
                             f"{warmup})")
        self.dit, self.threshold, self.max_skips, self.warmup = dit, threshold, max_skips, warmup
        self.stats = stats if stats is not None else StepCacheStats()
        self._states: dict[object, _PassState] = {}
        self._key: object = None
        self._skip = False
        self._first_out: torch.Tensor | None = None
        self._originals: list = []

    # ------------------------------------------------------------------ wrapping
    def attach(self) -> StepCache:
        if self._originals:
            return self
        blocks = list(self.dit.blocks)
        for i, block in enumerate(blocks):
            original = block.forward
            self._originals.append((block, original))
            if i == 0:
                block.forward = self._first(original)
            elif i == len(blocks) - 1:
                block.forward = self._last(original)
            else:
                block.forward = self._middle(original)
        return self

    def detach(self) -> None:
        for block, _ in self._originals:
            del block.forward  # the instance attribute goes; the class's forward is back
        self._originals = []

    def __enter__(self) -> StepCache:
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def reset(self) -> None:
        """Forget every pass's state (a new chunk: other shapes, another trajectory)."""
        self._states.clear()

    @contextlib.contextmanager
    def pass_key(self, key: object):
        """The guidance pass the next DiT calls belong to (its own state)."""
        previous, self._key = self._key, key
        try:
            yield
        finally:
            self._key = previous

    # ------------------------------------------------------------------ the decision
    def _decide(self, x: torch.Tensor, out: torch.Tensor) -> bool:
        state = self._states.setdefault(self._key, _PassState())
        r0 = (out.float() - x.float())
        skip = False
        if state.first_residual is not None and state.first_residual.shape == r0.shape and len(self.dit.blocks) > 1:
            prev = state.first_residual
            delta = float((r0 - prev).abs().mean() / prev.abs().mean().clamp(min=1e-12))
            self.stats.deltas.append(delta)
            acc = state.acc + delta
            skip = (acc < self.threshold and state.evaluations >= self.warmup and state.run_of_skips < self.max_skips
                    and state.stack_residual is not None)
            state.acc = acc if skip else 0.0
        state.first_residual = r0
        state.evaluations += 1
        state.run_of_skips = state.run_of_skips + 1 if skip else 0
        if skip:
            self.stats.skipped += 1
        else:
            self.stats.computed += 1
        return skip

    def _first(self, original):
        def forward(x, *args, **kwargs):
            out = original(x, *args, **kwargs)
            self._skip = self._decide(x, out)
            self._first_out = out
            return out
        return forward

    def _middle(self, original):
        def forward(x, *args, **kwargs):
            return x if self._skip else original(x, *args, **kwargs)
        return forward

    def _last(self, original):
        def forward(x, *args, **kwargs):
            state = self._states[self._key]
            if self._skip:
                return (self._first_out.float() + state.stack_residual).type_as(self._first_out)
            out = original(x, *args, **kwargs)
            state.stack_residual = out.float() - self._first_out.float()
            return out
        return forward


__all__ = ["StepCache", "StepCacheStats"]

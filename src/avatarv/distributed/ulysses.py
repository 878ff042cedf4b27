"""Ulysses sequence parallelism (DeepSpeed-Ulysses, Jacobs et al. 2023) for the VideoRef DiT, as hooks.

Every rank holds a contiguous range of latent frames (tokens are frame-major, so a frame range is a token
range); per-token work (projections, FFN, modulation, text and audio cross-attention) stays local. Around
self-attention an all-to-all turns sequence shards into head shards: each rank then attends over the
whole sequence for H / P heads, and a second all-to-all turns it back. Reference tokens are sharded the
same way along reference frames, and so are their cached K/V (a ``RefKVCache`` holds this rank's shard).
Frame counts that do not divide the world size are padded with masked frames (never attended to) and cut
off at the end.

The model knows nothing of this. ``apply_ulysses(model, group)`` attaches hooks at the module boundaries
of its token streams, named in :data:`ULYSSES_PLAN` (submodule name → hook), and wraps every
self-attention's ``attn_fn``:

- ``tokens_in`` (forward pre-hook, both the generated and the reference stream): tokens ``[B, F·T, D]``,
  RoPE positions ``[F·T, 3]`` and the key mask → this rank's frames; the key mask marks the padding
  frames (False) and the frame count becomes the local one, so the blocks' layout is the local one;
- ``audio_context`` (forward hook): the per-frame audio windows → this rank's frames; padding frames get
  an all-valid window of silence (mask padded with True: no empty softmax rows);
- ``tokens_out`` (forward pre-hook): the head's output → all ranks' frames (autograd-aware all-gather),
  cut to the true frame count given by the full layout it is called with;
- InfiniteTalk's adapter: ``speaker_audio`` (forward hook): the per-frame audio tokens → this rank's frames;
  ``blocks.*.speaker_map`` (pre-hook): latent frame 0's keys, which only rank 0 holds, broadcast to every rank
  (L-RoPE reads every token's attention to frame 0); ``blocks.*.speaker_positions`` (pre-hook): the attention
  maps' min / max over every rank's real tokens (all-reduce), so each rank scales its tokens as one process;
- ``blocks.*.self_attn.attn_fn`` → :class:`UlyssesAttention` (the all-to-alls).

Followed: diffusers' context-parallel plans (``src/diffusers/hooks/context_parallel.py``: a ``_cp_plan`` of
submodule names → ``ContextParallelInput`` (split a named forward argument, or with ``split_output`` the
module's output) / ``ContextParallelOutput`` (gather the output), applied by ``ContextParallelSplitHook`` /
``ContextParallelGatherHook`` registered on those submodules; forward arguments found by their names in
the signature) and torchtitan's ``apply_cp`` (``torchtitan/distributed/context_parallel.py``: parallelism
applied from outside to each block's attention module, the model's code unchanged). Unlike both, the
split is by whole frames with padding rather than requiring the sequence to divide the world size, and
the attention is Ulysses (all-to-all over heads) rather than ring attention.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch.distributed.nn import functional as dist_fn

from avatarv.models.dit.attention import LocalWindow


class UlyssesParallel:
    """Frame-range sharding of token sequences over a process group."""

    def __init__(self, group: dist.ProcessGroup | None = None):
        self.group = group
        self.world = dist.get_world_size(group)
        self.rank = dist.get_rank(group)

    def frames_per_rank(self, frames: int) -> int:
        return math.ceil(frames / self.world)

    def shard(self, x: torch.Tensor, frames: int, pad_value=0) -> torch.Tensor:
        """x ``[B, F·T, ...]`` (frame-major) → this rank's frames ``[B, Fl·T, ...]``, zero-padded past F."""
        b, n = x.shape[:2]
        per_frame = n // frames
        fl = self.frames_per_rank(frames)
        framed = x.reshape(b, frames, per_frame, *x.shape[2:])
        pad = fl * self.world - frames
        if pad:
            filler = torch.full((b, pad, per_frame, *x.shape[2:]), pad_value, dtype=x.dtype, device=x.device)
            framed = torch.cat([framed, filler], dim=1)
        local = framed[:, self.rank * fl : (self.rank + 1) * fl]
        return local.reshape(b, fl * per_frame, *x.shape[2:])

    def frame_valid(self, frames: int, batch: int, per_frame: int, device=None) -> torch.Tensor:
        """``[B, Fl·T]`` bool: False on the padding frames of this rank."""
        fl = self.frames_per_rank(frames)
        idx = torch.arange(self.rank * fl, (self.rank + 1) * fl, device=device)
        return (idx < frames).repeat_interleave(per_frame)[None].expand(batch, -1)

    def gather(self, x_local: torch.Tensor, frames: int) -> torch.Tensor:
        """Inverse of :meth:`shard` (autograd-aware all-gather): ``[B, Fl·T, ...]`` → ``[B, F·T, ...]``."""
        parts = dist_fn.all_gather(x_local.contiguous(), group=self.group)
        full = torch.cat(parts, dim=1)
        per_frame = x_local.shape[1] // self.frames_per_rank(frames)
        return full[:, : frames * per_frame]


class UlyssesAttention:
    """Wraps an attention function: sequence-sharded q/k/v in, sequence-sharded output out."""

    def __init__(self, inner, sp: UlyssesParallel):
        self.inner = inner
        self.sp = sp

    def _seq_to_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, Nl, d]`` → ``[B, H/P, P·Nl, d]`` (rank-major sequence order)."""
        p = self.sp.world
        b, h, n, d = x.shape
        send = x.reshape(b, p, h // p, n, d).transpose(0, 1).contiguous()  # [P(dest), B, H/P, Nl, d]
        recv = dist_fn.all_to_all_single(torch.empty_like(send), send, group=self.sp.group)  # [P(src), ...]
        return recv.permute(1, 2, 0, 3, 4).reshape(b, h // p, p * n, d)

    def _heads_to_seq(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H/P, P·Nl, d]`` → ``[B, H, Nl, d]``."""
        p = self.sp.world
        b, hp, n, d = x.shape
        send = x.reshape(b, hp, p, n // p, d).permute(2, 0, 1, 3, 4).contiguous()  # [P(dest), B, H/P, Nl, d]
        recv = dist_fn.all_to_all_single(torch.empty_like(send), send, group=self.sp.group)  # [P(src head grp)]
        return recv.transpose(0, 1).reshape(b, p * hp, n // p, d)

    def _gather_seq(self, t: torch.Tensor) -> torch.Tensor:
        """All-gather along the sequence (dim 1 for [B, N] masks, dim 0 for [N] frame ids); no grad."""
        parts = [torch.empty_like(t) for _ in range(self.sp.world)]
        dist.all_gather(parts, t.contiguous(), group=self.sp.group)
        return torch.cat(parts, dim=t.dim() - 1)

    def __call__(self, q, k, v, key_mask=None, window: LocalWindow | None = None):
        if q.shape[1] % self.sp.world:
            raise ValueError(f"Ulysses needs heads ({q.shape[1]}) divisible by the world size ({self.sp.world})")
        qh, kh, vh = self._seq_to_heads(q), self._seq_to_heads(k), self._seq_to_heads(v)
        full_mask = None if key_mask is None else self._gather_seq(key_mask)
        full_window = None
        if window is not None:
            full_window = LocalWindow(self._gather_seq(window.q_frames), self._gather_seq(window.k_frames), window.radius)
        return self._heads_to_seq(self.inner(qh, kh, vh, key_mask=full_mask, window=full_window))


def _bind(module, args: tuple, kwargs: dict) -> inspect.BoundArguments:
    """The call's arguments by name (diffusers' ``ModuleForwardMetadata`` does the same lookup)."""
    bound = inspect.signature(module.forward).bind(*args, **kwargs)
    bound.apply_defaults()
    return bound


@dataclass
class ShardTokens:
    """Forward pre-hook on ``tokens_in``: ``tokens``, ``positions`` and ``key_mask`` → this rank's frames.

    The key mask becomes False on the padding frames (an absent mask means all valid) and ``frames`` the
    per-rank frame count."""

    sp: UlyssesParallel

    def __call__(self, module, args, kwargs):
        bound = _bind(module, args, kwargs)
        a = bound.arguments
        sp, tokens, frames, mask = self.sp, a["tokens"], a["frames"], a["key_mask"]
        valid = sp.frame_valid(frames, tokens.shape[0], tokens.shape[1] // frames, tokens.device)
        a["key_mask"] = valid if mask is None else sp.shard(mask, frames, pad_value=False) & valid
        a["tokens"] = sp.shard(tokens, frames)
        a["positions"] = sp.shard(a["positions"][None], frames)[0]
        a["frames"] = sp.frames_per_rank(frames)
        return bound.args, bound.kwargs


@dataclass
class ShardWindows:
    """Forward hook on ``audio_context``: (context ``[B, F, L, D]``, mask ``[B, F, L]``) → this rank's frames.
    Padding frames get an all-valid window of silence: no empty softmax rows."""

    sp: UlyssesParallel

    def __call__(self, module, args, output):
        ctx, mask = output
        frames = ctx.shape[1]
        return self.sp.shard(ctx, frames), self.sp.shard(mask, frames, pad_value=True)


@dataclass
class GatherTokens:
    """Forward pre-hook on ``tokens_out``: ``tokens`` (this rank's frames) → every frame of ``layout``."""

    sp: UlyssesParallel

    def __call__(self, module, args, kwargs):
        bound = _bind(module, args, kwargs)
        a = bound.arguments
        a["tokens"] = self.sp.gather(a["tokens"], a["layout"].frames)
        return bound.args, bound.kwargs


@dataclass
class ShardSpeakerAudio:
    """Forward hook on ``speaker_audio``: ``SpeakerAudio.tokens`` ``[B, F, S·K, C']`` → this rank's frames
    (padding frames: zero tokens, whose outputs are cut off)."""

    sp: UlyssesParallel

    def __call__(self, module, args, output):
        tokens = output.tokens
        return output._replace(tokens=self.sp.shard(tokens, tokens.shape[1]))


@dataclass
class BroadcastFirstFrame:
    """Forward pre-hook on ``speaker_map``: ``k_first`` (latent frame 0's keys) from the group's rank 0."""

    sp: UlyssesParallel

    def __call__(self, module, args, kwargs):
        bound = _bind(module, args, kwargs)
        k_first = bound.arguments["k_first"].contiguous()
        src = 0 if self.sp.group is None else dist.get_global_rank(self.sp.group, 0)
        dist.broadcast(k_first, src=src, group=self.sp.group)
        bound.arguments["k_first"] = k_first
        return bound.args, bound.kwargs


@dataclass
class GlobalMapBounds:
    """Forward pre-hook on ``speaker_positions``: ``bounds`` = the maps' min / max over every rank's real tokens."""

    sp: UlyssesParallel

    def __call__(self, module, args, kwargs):
        from avatarv.models.dit.infinitetalk_audio import map_bounds

        bound = _bind(module, args, kwargs)
        lo, hi = map_bounds(bound.arguments["attn_map"], bound.arguments["valid"])
        lo, hi = lo.contiguous(), hi.contiguous()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN, group=self.sp.group)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX, group=self.sp.group)
        bound.arguments["bounds"] = (lo, hi)
        return bound.args, bound.kwargs


@dataclass(frozen=True)
class Hook:
    """One entry of a plan: a hook class and where it runs (``pre``: before forward, on its arguments;
    ``post``: after, on its output)."""

    make: type
    when: str = "pre"


# submodule of VideoRefDiT → hook (diffusers' ``_cp_plan``, kept here: the model does not know it)
ULYSSES_PLAN: dict[str, Hook] = {
    "tokens_in": Hook(ShardTokens, "pre"),
    "audio_context": Hook(ShardWindows, "post"),
    "tokens_out": Hook(GatherTokens, "pre"),
    "speaker_audio": Hook(ShardSpeakerAudio, "post"),
    "blocks.*.speaker_map": Hook(BroadcastFirstFrame, "pre"),
    "blocks.*.speaker_positions": Hook(GlobalMapBounds, "pre"),
}


@dataclass
class UlyssesHandles:
    """What :func:`apply_ulysses` attached to a model, so :func:`remove_ulysses` can take it off."""

    sp: UlyssesParallel
    hooks: list = field(default_factory=list)


def _submodules(model, name: str) -> list:
    """The submodules a plan entry names (``*`` matches one name part, e.g. ``blocks.*.speaker_map``); none for
    an optional stage the model was built without (e.g. no audio)."""
    if "*" in name:
        import fnmatch

        return [m for n, m in model.named_modules() if fnmatch.fnmatchcase(n, name) and n.count(".") == name.count(".")]
    try:
        return [model.get_submodule(name)]
    except AttributeError:
        return []


def apply_ulysses(model, group: dist.ProcessGroup | None = None, plan: dict[str, Hook] | None = None):
    """Shard ``model``'s sequence over ``group`` (every rank gets the same full inputs and outputs).

    Registers the hooks of ``plan`` (default :data:`ULYSSES_PLAN`) on the model's stages and wraps every
    self-attention's ``attn_fn``; returns the model. Composes with :func:`avatarv.distributed.apply_fsdp`
    (either order: these hooks sit on parameter-free submodules and attention functions)."""
    sp = UlyssesParallel(group)
    if model.cfg.num_heads % sp.world:
        raise ValueError(f"{model.cfg.num_heads} heads do not split over {sp.world} ranks")
    if getattr(model, "_ulysses", None) is not None:
        raise RuntimeError("apply_ulysses was applied to this model already")
    handles = UlyssesHandles(sp)
    for name, hook in (ULYSSES_PLAN if plan is None else plan).items():
        for module in _submodules(model, name):
            if hook.when == "pre":
                handles.hooks.append(module.register_forward_pre_hook(hook.make(sp), with_kwargs=True))
            elif hook.when == "post":
                handles.hooks.append(module.register_forward_hook(hook.make(sp)))
            else:
                raise ValueError(f"hook time {hook.when!r} is neither 'pre' nor 'post'")
    for block in model.blocks:
        block.self_attn.attn_fn = UlyssesAttention(block.self_attn.attn_fn, sp)
    model._ulysses = handles
    return model


def remove_ulysses(model):
    """Undo :func:`apply_ulysses`: the hooks removed, the attention functions unwrapped."""
    handles = getattr(model, "_ulysses", None)
    if handles is None:
        return model
    for h in handles.hooks:
        h.remove()
    for block in model.blocks:
        if isinstance(block.self_attn.attn_fn, UlyssesAttention):
            block.self_attn.attn_fn = block.self_attn.attn_fn.inner
    model._ulysses = None
    return model

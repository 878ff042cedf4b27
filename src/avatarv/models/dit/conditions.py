"""What a VideoRef DiT forward is conditioned on, and the one definition of a dropped condition.

Training drops conditions at random (``training/methods/base.py``: nested, reference ⊂ + audio ⊂ + text) so
that inference can guide with them (``diffusion/guidance.py``: a pass per kept set). Both must feed a
dropped condition the same way, or guidance would extrapolate towards an input the model never saw. That
way is :meth:`Conditions.kept`, used by both:

- audio: zero tokens (not None: the audio attention still runs, on the embedding of silence);
- text: zero tokens (the null prompt; an empty prompt is encoded as zeros too);
- reference: every reference key masked. At inference, where a whole pass drops it, the reference is left
  out instead (no keys at all is the same attention and skips its stream and cache).

The I2V condition (Wan2.1's 4 mask channels + the known latents, zero elsewhere) is built here too, for the
pipeline's known leading frames (scene image, previous chunk's tail) and for training's known prefixes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch

from avatarv.models.dit.cache import RefKVCache
from avatarv.models.dit.inputs import RefInputs

CONDITION_ORDER = ("ref", "audio", "text")  # nested dropping order, the guidance order


def i2v_condition(known: torch.Tensor | None, known_mask: torch.Tensor, mask_channels: int = 4) -> torch.Tensor:
    """I2V condition ``[B, 4 + C, F, H, W]``: mask channels = 1 and the latents on the known frames, 0 elsewhere.

    ``known`` ``[B, C, K, H, W]`` (K ≤ F: the leading frames; latents past K are ignored) or None (nothing
    known); ``known_mask`` ``[B, F]`` bool, True on the known frames. The channel count and spatial size come
    from ``known``; with nothing known the caller passes zeros of the right shape as ``known``."""
    if known is None:
        raise ValueError("i2v_condition needs the latents' shape: pass zeros when nothing is known")
    b, c, k, h, w = known.shape
    f = known_mask.shape[1]
    if k < f:
        known = torch.cat([known, known.new_zeros(b, c, f - k, h, w)], dim=2)
    m = known_mask[:, None, :, None, None].to(known.dtype)  # [B, 1, F, 1, 1]
    return torch.cat([m.expand(b, mask_channels, f, h, w), known[:, :, :f] * m], dim=1)


def leading_mask(known_frames: torch.Tensor | int, frames: int, batch: int = 1, device=None) -> torch.Tensor:
    """``[B, F]`` bool: True on the first ``known_frames`` (an int, or ``[B]`` per sample) frames."""
    k = torch.as_tensor(known_frames, device=device).reshape(-1, 1)
    return (torch.arange(frames, device=device)[None, :] < k).expand(batch, frames)


@dataclass
class Conditions:
    """The conditions of one DiT forward (besides the noisy state and t). Shapes: ``cond`` ``[B, 4 + C, F, H,
    W]``; ``audio`` ``[B, F, Ka, audio_dim]``; ``text`` ``[B, L, text_dim]``; ``ref`` one or several reference
    streams (e.g. the reference video and the long-form appearance anchor) with their K/V caches; ``image``
    ``[B, 257, image_dim]`` CLIP hidden states for a DiT with Wan2.1 I2V's image branch.

    The image is never dropped: Wan2.1 ``image2video.py`` and InfiniteTalk ``multitalk.py`` pass the same
    ``clip_fea`` to the conditional and to every unconditional pass (``arg_null``, ``arg_null_text``,
    ``arg_null_audio``), so guidance contrasts text and audio with the image kept."""

    cond: torch.Tensor | None = None
    audio: torch.Tensor | None = None
    text: torch.Tensor | None = None
    ref: list[RefInputs] | None = None
    ref_cache: list[RefKVCache] | None = None
    image: torch.Tensor | None = None
    # what a dropped text becomes in a guidance pass: the negative prompt's tokens ``[B, L, text_dim]`` (Wan2.1 and
    # InfiniteTalk guide against ``n_prompt``); None: zeros, the null prompt avatarv trains with
    null_text: torch.Tensor | None = None
    # InfiniteTalk's two-speaker L-RoPE masks ``[B or 1, 3, H, W]`` (never dropped, as in multitalk.py)
    speaker_masks: torch.Tensor | None = None

    def kept(self, keep: Mapping[str, bool | torch.Tensor]) -> Conditions:
        """These conditions with some dropped. ``keep[name]`` is a bool (one guidance pass: the whole batch)
        or a ``[B]`` bool tensor (training's per-sample dropout); names not in ``keep`` are kept."""
        out = replace(self)
        if self.audio is not None and "audio" in keep:
            if self.audio.ndim == 6 and keep["audio"] is False:
                out.audio = None  # speaker windows (InfiniteTalk adapter): the DiT's one silent speaker
            else:
                out.audio = _gate(self.audio, keep["audio"])
        if self.text is not None and "text" in keep:
            if self.null_text is not None and keep["text"] is False:
                out.text = self.null_text
            else:
                out.text = _gate(self.text, keep["text"])
        if self.ref is not None and "ref" in keep:
            k = keep["ref"]
            if isinstance(k, bool):
                if not k:
                    out.ref, out.ref_cache = None, None
            else:
                out.ref = [_mask_ref(r, k) for r in self.ref]
                out.ref_cache = None  # per-sample masks differ from what a cache was built with
        return out

    def to(self, device: torch.device | str) -> Conditions:
        """These conditions with their tensors on ``device`` (the reference streams are left as they are: they
        are keyed by identity in their K/V caches)."""
        out = replace(self)
        for name in ("cond", "audio", "text", "image", "null_text", "speaker_masks"):
            value = getattr(self, name)
            if value is not None:
                setattr(out, name, value.to(device))
        return out

    def dit_kwargs(self) -> dict:
        """Keyword arguments of ``VideoRefDiT.forward`` (``image`` only when given: DiTs without the image branch,
        and stand-ins for them, see the same call as before it)."""
        kwargs = {"cond": self.cond, "audio": self.audio, "text": self.text, "ref": self.ref, "ref_cache": self.ref_cache}
        if self.image is not None:
            kwargs["image"] = self.image
        if self.speaker_masks is not None:
            kwargs["speaker_masks"] = self.speaker_masks
        return kwargs

    def select(self, kept: frozenset[str]) -> Conditions:
        """A guidance pass: the conditions in ``kept`` on, the others dropped (``CONDITION_ORDER``)."""
        return self.kept({name: name in kept for name in CONDITION_ORDER})


def _gate(x: torch.Tensor, keep: bool | torch.Tensor) -> torch.Tensor:
    if isinstance(keep, bool):
        return x if keep else torch.zeros_like(x)
    return x * keep.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)


def _mask_ref(ref: RefInputs, keep: torch.Tensor) -> RefInputs:
    b, f = keep.shape[0], ref.num_frames
    mask = ref.frame_mask if ref.frame_mask is not None else torch.ones(b, f, dtype=torch.bool, device=keep.device)
    return replace(ref, frame_mask=mask & keep[:, None])


__all__ = ["CONDITION_ORDER", "Conditions", "i2v_condition", "leading_mask"]

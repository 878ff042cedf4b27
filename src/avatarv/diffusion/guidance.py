"""Multi-condition classifier-free guidance with a separate scale per condition.

Conditions are ordered (default: reference, audio, text) and dropped from the end, as in compositional
CFG for several conditions (InstructPix2Pix, Brooks et al. 2023, eq. 3; MultiTalk/OmniAvatar use the same
nesting for audio and text):

    v = v(∅) + Σ_i s_i · (v(c_1..c_i) − v(c_1..c_{i−1}))

With every s_i = 1 the sum telescopes to v(c_1..c_K), the fully conditional prediction. Rewritten per pass,
the prediction of the first k conditions has weight w_k = s_k − s_{k+1} (s_0 = 1, s_{K+1} = 0), so a pass
whose weight is 0 is never evaluated: ``audio=3`` alone costs 3 passes ({ref}, {ref, audio}, all), not 4.
A distilled student takes the scales as an input instead (``VideoRefDiT(guidance=...)``) and needs one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

DEFAULT_ORDER = ("ref", "audio", "text")


@dataclass(frozen=True)
class GuidanceScales:
    # the one default: 1 each, the fully conditional prediction in one pass per step (what the bundled models
    # were trained and measured with); ``--guidance`` raises any of them
    scales: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(DEFAULT_ORDER, 1.0))
    order: tuple[str, ...] = DEFAULT_ORDER

    @classmethod
    def parse(cls, text: str, base: GuidanceScales | None = None) -> GuidanceScales:
        """``"audio=3,ref=1.5"`` → scales (conditions not named keep ``base``'s, default 1). Raises ValueError
        naming the bad part."""
        base = base or cls()
        scales = dict(base.scales)
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or name not in base.order:
                raise ValueError(f"guidance {part!r}: expected NAME=SCALE with NAME one of {', '.join(base.order)}")
            try:
                scales[name] = float(value)
            except ValueError:
                raise ValueError(f"guidance {part!r}: {value.strip()!r} is not a number") from None
        return cls(scales, base.order)

    def weights(self) -> dict[frozenset[str], float]:
        """Each pass's weight in the guided velocity (passes of weight 0 left out): the prediction with the
        first k conditions kept weighs s_k − s_{k+1}, with s_0 = 1 (∅'s own term) and s_{K+1} = 0."""
        s = [1.0] + [float(self.scales.get(name, 1.0)) for name in self.order] + [0.0]
        out = {}
        for k in range(len(self.order) + 1):
            w = s[k] - s[k + 1]
            if w != 0.0:
                out[frozenset(self.order[:k])] = w
        return out

    def passes(self) -> list[frozenset[str]]:
        """The condition sets to evaluate, fewest conditions first; only the full set when every scale is 1."""
        return list(self.weights())

    def is_unit(self) -> bool:
        return all(float(self.scales.get(name, 1.0)) == 1.0 for name in self.order)

    def combine(self, preds: Mapping[frozenset[str], torch.Tensor]) -> torch.Tensor:
        """Guided velocity from the predictions of :meth:`passes` (keyed by their condition sets)."""
        v = None  # the weights sum to s_0 − s_{K+1} = 1, so at least one pass is left
        for p, w in self.weights().items():
            term = preds[p] if w == 1.0 else w * preds[p]
            v = term if v is None else v + term
        return v


def combine_nested(preds: list[torch.Tensor], scales: torch.Tensor) -> torch.Tensor:
    """Guided velocity with a scale per sample: ``preds[k]`` is the prediction with the first k conditions kept
    (k = 0..K, each ``[B, ...]``), ``scales`` ``[B, K]``:

        v = preds[0] + Σ_k s_k · (preds[k] − preds[k−1])

    the formula of the module docstring, batched (CFG distillation draws the scales per sample)."""
    v = preds[0]
    for k in range(1, len(preds)):
        s = scales[:, k - 1].reshape(-1, *([1] * (preds[k].dim() - 1))).to(preds[k].dtype)
        v = v + s * (preds[k] - preds[k - 1])
    return v


def guided(predict: Callable[[frozenset[str]], torch.Tensor], scales: GuidanceScales) -> torch.Tensor:
    """Evaluate ``predict(kept_conditions)`` for every needed pass and combine."""
    return scales.combine({p: predict(p) for p in scales.passes()})

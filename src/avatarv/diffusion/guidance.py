"""Multi-condition classifier-free guidance with a separate scale per condition.

Conditions are ordered (default: reference, audio, text) and dropped from the end, as in compositional
CFG for several conditions (InstructPix2Pix, Brooks et al. 2023, eq. 3; MultiTalk/OmniAvatar use the same
nesting for audio and text):

    v = v(∅) + Σ_i s_i · (v(c_1..c_i) − v(c_1..c_{i−1}))

With every s_i = 1 the sum telescopes to v(c_1..c_K), the fully conditional prediction. A distilled student
takes the scales as an input instead (``VideoRefDiT(guidance=...)``) and needs one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

DEFAULT_ORDER = ("ref", "audio", "text")


@dataclass(frozen=True)
class GuidanceScales:
    scales: Mapping[str, float] = field(default_factory=lambda: {"ref": 1.0, "audio": 4.0, "text": 5.0})
    order: tuple[str, ...] = DEFAULT_ORDER

    @classmethod
    def parse(cls, text: str, base: GuidanceScales | None = None) -> GuidanceScales:
        """``"audio=3,ref=1.5"`` → scales (conditions not named keep ``base``'s, default 1). Raises ValueError
        naming the bad part."""
        base = base or cls({name: 1.0 for name in DEFAULT_ORDER})
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

    def passes(self) -> list[frozenset[str]]:
        """The condition sets to evaluate: ∅, {c1}, {c1, c2}, …; only the full set when every scale is 1."""
        if self.is_unit():
            return [frozenset(self.order)]
        return [frozenset(self.order[:i]) for i in range(len(self.order) + 1)]

    def is_unit(self) -> bool:
        return all(float(self.scales.get(name, 1.0)) == 1.0 for name in self.order)

    def combine(self, preds: Mapping[frozenset[str], torch.Tensor]) -> torch.Tensor:
        """Guided velocity from the predictions of :meth:`passes` (keyed by their condition sets)."""
        if self.is_unit():
            return preds[frozenset(self.order)]
        v = preds[frozenset()]
        for i, name in enumerate(self.order):
            hi, lo = preds[frozenset(self.order[: i + 1])], preds[frozenset(self.order[:i])]
            v = v + float(self.scales.get(name, 1.0)) * (hi - lo)
        return v


def guided(predict: Callable[[frozenset[str]], torch.Tensor], scales: GuidanceScales) -> torch.Tensor:
    """Evaluate ``predict(kept_conditions)`` for every needed pass and combine."""
    return scales.combine({p: predict(p) for p in scales.passes()})

"""The weights folder of the InfiniteTalk mode: its documented layout, where each part is, and what it holds."""

from avatarv.weights.layout import PartReport, WeightsParts, WeightsReport, check_weights, resolve_weights

__all__ = ["PartReport", "WeightsParts", "WeightsReport", "check_weights", "resolve_weights"]

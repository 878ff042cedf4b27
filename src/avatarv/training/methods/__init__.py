"""Training stages as methods of one trainer (seed "Training Strategy", stages 1–3)."""

from avatarv.training.methods.base import MethodConfig, TrainingMethod, make_method

__all__ = ["MethodConfig", "TrainingMethod", "make_method"]

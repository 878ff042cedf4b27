"""Training: one trainer, stages as TrainingMethod classes (flow pretraining, A2V, personality SFT)."""

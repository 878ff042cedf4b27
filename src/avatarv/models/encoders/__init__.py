"""Condition encoders: audio features per latent frame (log-mel default; Wav2Vec2 from a local path)."""

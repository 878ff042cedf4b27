"""Inference pipelines: chunked long-form generation from a reference video and speech."""

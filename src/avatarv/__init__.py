"""avatarv: video-reference talking-avatar generation.

Parts (one folder per concept of the seed): ``config`` (typed presets), ``models/dit`` (the VideoRef DiT),
``diffusion`` (rectified flow, samplers, guidance), ``media`` (video/audio I/O), ``world`` (the synthetic
talking-head world), ``eval``, ``data``, ``training``, ``pipelines``, ``voice``, ``serving``.
"""

__version__ = "0.1.0"

"""Evaluation: the seed's objective metrics under its protocol ("Evaluation Setup").

- ``sync``: Sync-C / Sync-D / offset exactly as syncnet_python (``sync_scores``, ``evaluate_track``), the SyncNet
  network and its public-checkpoint loader (``syncnet``), face tracks and crops (``face_tracks``, ``faces``),
  whole videos (``sync_video.evaluate_sync_video``);
- ``identity``: face similarity with dlib's ResNet (default), an ArcFace ONNX model, or the world embedder;
- ``quality``: Q-Align adapter and the classical no-reference index (default);
- ``protocol``: 2 fps frame sampling, 10 % trimmed means, per-case JSON and the summary;
- the world: ``world_syncnet`` / ``train_syncnet`` (the default SyncNet, trained on world clips with shifted-audio
  negatives), ``world_identity`` / ``train_identity`` (the ``world`` identity backend, ArcFace loss),
  ``behaviour`` (behaviour similarity and identification from the world analyzer's predicted signals),
  ``world_bench`` (the 70-case same / cross / generated benchmark), ``benchmark`` + ``systems`` (runner and
  adapters: ground truth, our pipeline, the image-reference ablation), ``report`` (the HTML report).
"""

from avatarv.eval.protocol import CaseResult, sample_frame_indices, summarize, trimmed_mean
from avatarv.eval.sync import SyncResult, distance_table, mfcc_features, sync_scores

__all__ = [
    "CaseResult",
    "SyncResult",
    "distance_table",
    "mfcc_features",
    "sample_frame_indices",
    "summarize",
    "sync_scores",
    "trimmed_mean",
]

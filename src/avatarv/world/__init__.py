"""The synthetic talking-head world: deterministic identities, scenes, speech, rendering and exact labels.

    from avatarv.world import make_clip
    clip = make_clip(identity_id=0, scene_id=0, seconds=4, size=128, seed=0)
    clip.save("out/clip.mp4")   # mp4 with sound + clip.npz (per-frame labels) + clip.json (meta)

See ``clip.py`` (one clip), ``raw.py`` (long footage with labelled defects), ``manifest.py`` (datasets),
``sheet.py`` (contact sheet) and ``facecheck.py`` (dlib on world frames).
"""

from avatarv.world.clip import Clip, make_clip
from avatarv.world.identity import Identity, sample_identity
from avatarv.world.labels import ClipLabels
from avatarv.world.scene import Scene, sample_scene

__all__ = ["Clip", "ClipLabels", "Identity", "Scene", "make_clip", "sample_identity", "sample_scene"]

"""The synthetic talking-head world: deterministic identities, scenes, speech, rendering and exact labels.

    from avatarv.world import make_clip
    clip = make_clip(identity_id=0, scene_id=0, seconds=4, size=128, seed=0)
    clip.save("out/clip.mp4")   # mp4 with sound + clip.npz (per-frame labels) + clip.json (meta)

Files, one idea each: ``seeds`` (named seed streams), ``identity`` (looks, behaviour, voice), ``scene``
(backgrounds, light, framing), ``geometry`` (68 iBUG points in 3D, expressions, pose), ``hair``, ``paint``
(anti-aliased shapes), ``render`` + ``face_parts`` + ``figure_parts`` (drawing), ``speech`` (espeak-ng /
formant fallback), ``audio_features`` (envelope, lag), ``motion`` (behaviour → per-frame signals),
``labels``, ``clip`` (one clip), ``raw`` (long footage with labelled defects), ``manifest`` (datasets),
``sheet`` (contact sheet), ``examples`` (demo inputs), ``facecheck`` (dlib on world frames), ``cli`` and
``analyzer/`` (a CNN reading the per-frame signals back from pixels; behaviour statistics).
"""

from avatarv.world.clip import Clip, make_clip
from avatarv.world.identity import Identity, sample_identity
from avatarv.world.labels import ClipLabels
from avatarv.world.scene import Scene, sample_scene

__all__ = ["Clip", "ClipLabels", "Identity", "Scene", "make_clip", "sample_identity", "sample_scene"]

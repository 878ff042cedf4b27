"""The cross-clip identity graph (seed: same person, different scene -> pairs for personality fine-tuning).

``identity`` (per item): for every clip from ``clips``, a face descriptor from the identity ``backend``
(``avatarv.eval.identity``: ``dlib``, dlib's 128-d ResNet, the default; ``world``, the world embedder)
averaged over ``samples`` frames inside the subject's box, and a background descriptor: the hue-saturation
histogram of the frame's background pixels. The background is what mediapipe's selfie segmentation does not
call person (``background="segmentation"``, the default); ``background="box"`` masks the face box widened
``mask_width`` times down to the bottom of the frame instead (a guess at the body). When less than 15 % of
the frame is left (a close-up), the frame's outer ring is used.

``identity_graph`` (collection): over every pair of clips of all items,

    same person  <=>  in one cluster of average-linkage clustering of face distances cut at ``face_max``
                     (a cluster's mean distance is steadier than one pair's)
    same scene   <=>  background Bhattacharyya distance  <  ``scene_max``
    cross-scene pair  <=>  same person and background distance > ``cross_min``

``face_max`` = 0 takes the threshold measured for the backend and the ``footage`` (:data:`FACE_THRESHOLDS`);
``footage="auto"`` is ``world`` when every item is the synthetic world's (its labels lie beside it), else
``real``.
People and scenes get ids from the connected components of the "same" relations. The pair list is what the
personality fine-tuning stage reads (a clip as reference, another scene as target).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import load_video

# Face thresholds of the identity graph per backend and footage: a cut on the ``face_distance`` of clip-mean
# descriptors (6 frames a clip), measured by ``benchmarks/identity_thresholds_real.py --world 8`` (2026-12-07):
# - dlib on real faces (five real clips = five people, 12 frames each; a clip's halves as two clips): same person
#   0.08-0.20 between halves (frames 0.18-0.39 apart on average per clip, up to 0.53 in the expressive selfie),
#   different people 0.48 at the closest (the two young East-Asian men) and 0.85 on average -> the midpoint of
#   the gap, 0.34. Its remaining risk: the same-person side is measured within one recording; the same person
#   filmed elsewhere is farther apart (not measurable on these fixtures), and is split above 0.34.
# - dlib on world faces (8 identities x 3 scenes): same person across scenes 0.20 mean, 0.27 max; different
#   0.26 min, 0.42 mean: not separable pair by pair; 0.3 with average linkage (the value tuned on the world).
# - world embedder (1 - cosine) on world faces: same 0.09 mean, 0.17 max; different 0.47 min -> 0.32.
#   (On real faces it separates the five people too, same <= 0.04, different >= 0.28, but it never saw one.)
FACE_THRESHOLDS: dict[str, dict[str, float]] = {
    "dlib": {"real": 0.34, "world": 0.3},
    "world": {"world": 0.32},
}


def face_distance(backend: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The backend's own face distance along the last axis: dlib's Euclidean distance on raw descriptors (its
    verification rule: same person below 0.6), 1 - cosine for the others (ArcFace-style unit embeddings)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if backend == "dlib":
        return np.linalg.norm(a - b, axis=-1)
    cos = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    return 1.0 - cos


def face_threshold(backend: str, footage: str) -> float:
    from avatarv.errors import ConfigError

    table = FACE_THRESHOLDS.get(backend)
    if table is None or footage not in table:
        known = [f"{b}/{f}" for b, t in FACE_THRESHOLDS.items() for f in t]
        raise ConfigError(f"identity_graph: no measured face threshold for backend {backend!r} on {footage!r} "
                          f"footage (measured: {known}); set face_max")
    return table[footage]


def box_background_mask(shape: tuple[int, int], box, mask_width: float) -> np.ndarray:
    """[H, W] bool background: everything but the face box widened ``mask_width`` times, from half a face
    above it to the bottom of the frame (where the body is)."""
    h, w = shape
    x0, y0, x1, y1 = box
    cx, bw = (x0 + x1) / 2, (x1 - x0) * mask_width
    mask = np.ones((h, w), bool)
    mask[max(int(y0 - 0.5 * (y1 - y0)), 0) :, max(int(cx - bw / 2), 0) : min(int(cx + bw / 2), w)] = False
    return mask


def background_hist(frame: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Normalised 18 x 8 hue-saturation histogram ``[144]`` of the ``background [H, W]`` bool pixels; the frame's
    outer ring when under 15 % of the frame is background (the person fills a close-up)."""
    import cv2

    h, w = frame.shape[:2]
    mask = np.where(background, 255, 0).astype(np.uint8)
    if mask.mean() < 0.15 * 255:  # a close-up: the person fills the frame; use its outer ring
        ring = max(int(0.1 * min(h, w)), 2)
        mask[:ring], mask[:, :ring], mask[:, -ring:] = 255, 255, 255
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], mask, [18, 8], [0, 180, 0, 256]).astype(np.float32).ravel()
    return hist / (hist.sum() + 1e-6)


def bhattacharyya(a: np.ndarray, b: np.ndarray) -> float:
    bc = float(np.sqrt(np.clip(a, 0, None) * np.clip(b, 0, None)).sum())
    return float(np.sqrt(max(0.0, 1.0 - bc)))


def average_linkage(dist: np.ndarray, cut: float) -> list[int]:
    """Cluster labels from agglomerative clustering (average linkage) stopped when the closest pair of
    clusters is ``cut`` or more apart."""
    clusters = [[i] for i in range(len(dist))]
    while len(clusters) > 1:
        best, pair = np.inf, None
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                d = float(dist[np.ix_(clusters[i], clusters[j])].mean())
                if d < best:
                    best, pair = d, (i, j)
        if best >= cut:
            break
        i, j = pair
        clusters[i] += clusters.pop(j)
    labels = [0] * len(dist)
    for k, members in enumerate(sorted(clusters, key=min)):
        for m in members:
            labels[m] = k
    return labels


def components(n: int, edges: list[tuple[int, int]]) -> list[int]:
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges:
        parent[find(a)] = find(b)
    roots: dict[int, int] = {}
    return [roots.setdefault(find(i), len(roots)) for i in range(n)]


class ClipIdentity(Stage):
    name = "identity"
    version = "4"
    inputs = ("normalise", "faces", "clips")
    resources = Resources(cpu=1.0, memory_mb=1024)

    @dataclass(frozen=True)
    class Config:
        samples: int = 6
        backend: str = "dlib"  # an avatarv.eval.identity backend with a measured threshold (FACE_THRESHOLDS)
        background: str = "segmentation"  # "segmentation" (mediapipe selfie segmentation) | "box"
        mask_width: float = 2.2  # background="box": the person's width in face widths

        def __post_init__(self):
            from avatarv.errors import ConfigError

            if self.background not in ("segmentation", "box"):
                raise ConfigError(f"identity: unknown background {self.background!r} (segmentation | box)")
            if self.backend not in FACE_THRESHOLDS:
                raise ConfigError(f"identity: backend {self.backend!r} has no measured graph threshold "
                                  f"(choose from {sorted(FACE_THRESHOLDS)})")

    def process(self, item: Item) -> Output:
        from avatarv.eval.identity import get_identity_embedder

        c = self.config
        clips = item.upstream["clips"].values["clips"]
        boxes = item.upstream["faces"].array("box")
        video = load_video(item) if clips else None
        emb = get_identity_embedder(c.backend)
        faces, bgs, person_fracs = [], [], []
        for a, b in clips:
            ts = [t for t in (int(a + (b - a) * (k + 1) / (c.samples + 1)) for k in range(c.samples))
                  if np.isfinite(boxes[t]).all()]
            frames = video.frames[ts]  # [S, H, W, 3]
            fe = [emb.embed_faces(f, [tuple(boxes[t])])[0] for f, t in zip(frames, ts, strict=True)]
            faces.append(np.mean(fe, 0) if fe else np.full(emb.dim, np.nan))
            if not ts:
                bgs.append(np.full(18 * 8, np.nan))
                continue
            if c.background == "segmentation":
                from avatarv.media.body import person_masks

                background = person_masks(frames) < 0.5  # [S, H, W]
            else:
                background = np.stack([box_background_mask(frames.shape[1:3], boxes[t], c.mask_width) for t in ts])
            person_fracs.append(float(1.0 - background.mean()))
            bgs.append(np.mean([background_hist(f, m) for f, m in zip(frames, background, strict=True)], 0))
        return Output(values={"clips": clips, "backend": c.backend, "background": c.background,
                              "person_fraction": person_fracs},
                      arrays={"face": np.array(faces, np.float32).reshape(len(clips), emb.dim),
                              "background": np.array(bgs, np.float32).reshape(len(clips), 18 * 8)})


class IdentityGraph(Stage):
    name = "identity_graph"
    version = "3"
    inputs = ("identity",)
    scope = "collection"
    resources = Resources(cpu=1.0, memory_mb=1024)

    @dataclass(frozen=True)
    class Config:
        face_max: float = 0.0  # 0: the measured threshold of the identity backend on this footage
        # auto | real | world: "auto" = world when every item is the synthetic world's (its labels lie beside
        # it, as the lipsync stage decides: sync.is_world_footage), else real
        footage: str = "auto"
        scene_max: float = 0.35
        cross_min: float = 0.5

        def __post_init__(self):
            from avatarv.errors import ConfigError

            if self.footage not in ("auto", "real", "world"):
                raise ConfigError(f"identity_graph: unknown footage {self.footage!r} (auto | real | world)")

    def process(self, items: list[Item]) -> Output:
        c = self.config
        backends = {it.upstream["identity"].values.get("backend", "dlib") for it in items}
        if len(backends) > 1:
            from avatarv.errors import ConfigError

            raise ConfigError(f"identity_graph: items embedded by different backends {sorted(backends)}")
        backend = backends.pop() if backends else "dlib"
        footage = c.footage
        if footage == "auto":
            from avatarv.data.curation.stages.sync import is_world_footage

            footage = "world" if items and all(is_world_footage(it.source) for it in items) else "real"
        face_max = c.face_max or face_threshold(backend, footage)
        nodes, faces, bgs = [], [], []
        for it in items:
            art = it.upstream["identity"]
            f, b = art.array("face"), art.array("background")
            for k, clip in enumerate(art.values["clips"]):
                if np.isfinite(f[k]).all():
                    nodes.append({"item": it.item_id, "clip": clip})
                    faces.append(f[k])
                    bgs.append(b[k])
        n = len(nodes)
        face = np.array(faces).reshape(n, -1) if n else np.zeros((0, 1))  # -1 is ambiguous for 0 rows
        fd = face_distance(backend, face[:, None], face[None]) if n else np.zeros((0, 0))
        bd = np.array([[bhattacharyya(bgs[i], bgs[j]) for j in range(n)] for i in range(n)]).reshape(n, n)
        person = average_linkage(fd, face_max)
        same_person = [(i, j) for i in range(n) for j in range(i + 1, n) if person[i] == person[j]]
        same_scene = [(i, j) for i in range(n) for j in range(i + 1, n) if bd[i, j] < c.scene_max]
        scene = components(n, same_scene)
        pairs = [{"a": i, "b": j, "face_distance": float(fd[i, j]), "background_distance": float(bd[i, j])}
                 for i, j in same_person if bd[i, j] > c.cross_min]
        for k, node in enumerate(nodes):
            node["person_id"], node["scene_id"] = person[k], scene[k]
        return Output(values={"clips": nodes, "cross_scene_pairs": pairs, "people": len(set(person)),
                              "scenes": len(set(scene)), "backend": backend, "footage": footage,
                              "face_max": face_max},
                      arrays={"face_distance": fd.astype(np.float32), "background_distance": bd.astype(np.float32)})

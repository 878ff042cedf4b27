"""The cross-clip identity graph (seed: same person, different scene -> pairs for personality fine-tuning).

``identity`` (per item): for every clip from ``clips``, dlib's ResNet face descriptor (``avatarv.eval.identity``,
128-d, same person below 0.6) averaged over ``samples`` frames inside the subject's box, and a background
descriptor: the hue-saturation histogram of the frame with the person masked out (the face box widened
``mask_width`` times and extended to the bottom of the frame, where the body is; in a close-up that leaves
too little, the frame's outer ring is used).

``identity_graph`` (collection): over every pair of clips of all items,

    same person  <=>  in one cluster of average-linkage clustering of face distances cut at ``face_max``
                     (a cluster's mean distance is steadier than one pair's: the world's faces are measured
                     0.13-0.29 apart for one person and from 0.30 for two)
    same scene   <=>  background Bhattacharyya distance  <  ``scene_max``
    cross-scene pair  <=>  same person and background distance > ``cross_min``

People and scenes get ids from the connected components of the "same" relations. The pair list is what the
personality fine-tuning stage reads (a clip as reference, another scene as target).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import load_video


def background_hist(frame: np.ndarray, box, mask_width: float) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    x0, y0, x1, y1 = box
    cx, bw = (x0 + x1) / 2, (x1 - x0) * mask_width
    mask = np.full((h, w), 255, np.uint8)
    mask[max(int(y0 - 0.5 * (y1 - y0)), 0) :, max(int(cx - bw / 2), 0) : min(int(cx + bw / 2), w)] = 0
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
    version = "3"
    inputs = ("normalise", "faces", "clips")
    resources = Resources(cpu=1.0, memory_mb=1024)

    @dataclass(frozen=True)
    class Config:
        samples: int = 6
        mask_width: float = 2.2

    def process(self, item: Item) -> Output:
        from avatarv.eval.identity import DlibResNetEmbedder

        clips = item.upstream["clips"].values["clips"]
        boxes = item.upstream["faces"].array("box")
        video = load_video(item) if clips else None
        emb = DlibResNetEmbedder()
        faces, bgs = [], []
        for a, b in clips:
            ts = [int(a + (b - a) * (k + 1) / (self.config.samples + 1)) for k in range(self.config.samples)]
            fe = [emb.embed_faces(video.frames[t], [tuple(boxes[t])])[0] for t in ts if np.isfinite(boxes[t]).all()]
            faces.append(np.mean(fe, 0) if fe else np.full(128, np.nan))
            bgs.append(np.mean([background_hist(video.frames[t], boxes[t], self.config.mask_width) for t in ts
                                if np.isfinite(boxes[t]).all()], 0))
        return Output(values={"clips": clips},
                      arrays={"face": np.array(faces, np.float32).reshape(len(clips), 128),
                              "background": np.array(bgs, np.float32).reshape(len(clips), 18 * 8)})


class IdentityGraph(Stage):
    name = "identity_graph"
    version = "2"
    inputs = ("identity",)
    scope = "collection"
    resources = Resources(cpu=1.0, memory_mb=1024)

    @dataclass(frozen=True)
    class Config:
        face_max: float = 0.3  # dlib's own cut-off is 0.6; the world's faces are closer (measured 0.31-0.5 apart)
        scene_max: float = 0.35
        cross_min: float = 0.5

    def process(self, items: list[Item]) -> Output:
        c = self.config
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
        face = np.array(faces).reshape(n, -1)
        fd = np.linalg.norm(face[:, None] - face[None], axis=-1) if n else np.zeros((0, 0))
        bd = np.array([[bhattacharyya(bgs[i], bgs[j]) for j in range(n)] for i in range(n)]).reshape(n, n)
        person = average_linkage(fd, c.face_max)
        same_person = [(i, j) for i in range(n) for j in range(i + 1, n) if person[i] == person[j]]
        same_scene = [(i, j) for i in range(n) for j in range(i + 1, n) if bd[i, j] < c.scene_max]
        scene = components(n, same_scene)
        pairs = [{"a": i, "b": j, "face_distance": float(fd[i, j]), "background_distance": float(bd[i, j])}
                 for i, j in same_person if bd[i, j] > c.cross_min]
        for k, node in enumerate(nodes):
            node["person_id"], node["scene_id"] = person[k], scene[k]
        return Output(values={"clips": nodes, "cross_scene_pairs": pairs, "people": len(set(person)),
                              "scenes": len(set(scene))},
                      arrays={"face_distance": fd.astype(np.float32), "background_distance": bd.astype(np.float32)})

"""Near-duplicate removal (seed: embeddings + nearest neighbours + threshold).

``fingerprint`` (per item): every ``every``-th frame becomes a 256-d vector (16x16 grey thumbnail, zero mean,
unit norm), at several centre-crop scales (1 down to 0.7) so that a cropped-and-resized copy still lands
near its source (a copy cropped to c of the frame shows what the source shows at scale c).

``dedup`` (collection): faiss inner-product search of every item's scale-1 vectors against all items' vectors
at all scales. Items A and B are duplicates when at least ``min_matches`` *consecutive* sampled frames of A find frames
of B with cosine >= ``threshold`` at one time offset (within ``every`` frames): a copy matches its source in
order, another take of the same person in the same place matches at scattered offsets. Copies of one source
are also copies of each other even where their own frames match too weakly (a crop against a resize): two
items whose matched stretches cover at least ``min_shared_frames`` common frames of a third item pair up
(``shared_pairs``). The pair list and, per pair, the item to drop (the shorter, else the smaller frame, else
the later name) are the output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import load_video

SCALES = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7)


def frame_vectors(frame: np.ndarray, scales=SCALES, side: int = 16) -> np.ndarray:
    """[len(scales), side * side] unit vectors of centre crops."""
    import cv2

    g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = g.shape
    out = []
    for s in scales:
        ch, cw = int(round(h * s)), int(round(w * s))
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        v = cv2.resize(g[y0 : y0 + ch, x0 : x0 + cw], (side, side), interpolation=cv2.INTER_AREA).ravel()
        v = v - v.mean()
        out.append(v / (np.linalg.norm(v) + 1e-6))
    return np.stack(out).astype(np.float32)


def _longest_consistent_run(matches: list[tuple[int, int]], tol: int) -> tuple[int, int, int, int]:
    """Longest run of consecutive query samples whose matches keep one time offset (within ``tol`` frames).

    Returns ``(length, offset, first_sample, last_sample)`` of that run (``(0, 0, 0, 0)`` without matches)."""
    best = (0, 0, 0, 0)
    by_sample = dict(matches)
    for start, off in matches:
        run, i, miss, last = 0, start, 0, start
        while miss <= 1:  # one unmatched sample may interrupt a run (a compression artefact, a blink)
            if i in by_sample and abs(by_sample[i] - off) <= tol:
                run, miss, last = run + 1, 0, i
            else:
                miss += 1
            i += 1
        if run > best[0]:
            best = (run, off, start, last)
    return best


def shared_pairs(spans: dict[tuple[int, int], tuple[int, int, int]], min_shared: int) -> dict[tuple[int, int], int]:
    """Pairs implied by a common partner: copies of one source are copies of each other.

    ``spans[(x, y)] = (start, end, offset)``: frames ``[start, end)`` of ``x`` match ``y`` at ``t_y = t_x +
    offset``. When two items x1, x2 both match y and their matched stretches cover at least ``min_shared``
    common frames of y, (x1, x2) is a pair, found with that many shared frames. Only matched stretches count,
    so a short chance match between two different videos cannot join their copies."""
    by_partner: dict[int, list[tuple[int, int, int]]] = {}
    for (x, y), (a, b, off) in spans.items():
        by_partner.setdefault(y, []).append((x, a + off, b + off))  # x's stretch in y's time
    out: dict[tuple[int, int], int] = {}
    for members in by_partner.values():
        for i, (x1, a1, b1) in enumerate(members):
            for x2, a2, b2 in members[i + 1 :]:
                shared = min(b1, b2) - max(a1, a2)
                if x1 != x2 and shared >= min_shared:
                    key = (min(x1, x2), max(x1, x2))
                    out[key] = max(out.get(key, 0), shared)
    return out


class Fingerprint(Stage):
    name = "fingerprint"
    version = "2"
    inputs = ("normalise",)
    resources = Resources(cpu=1.0, memory_mb=512)

    @dataclass(frozen=True)
    class Config:
        every: int = 5

    def process(self, item: Item) -> Output:
        video = load_video(item)
        idx = np.arange(0, video.num_frames, self.config.every)
        vecs = np.stack([frame_vectors(video.frames[t]) for t in idx])  # [K, S, 256]
        return Output(values={"frames": video.num_frames, "samples": len(idx), "every": self.config.every,
                              "size": [int(video.frames.shape[2]), int(video.frames.shape[1])]},
                      arrays={"vectors": vecs, "frame_index": idx})


class Dedup(Stage):
    name = "dedup"
    version = "5"
    inputs = ("fingerprint",)
    scope = "collection"
    resources = Resources(cpu=1.0, memory_mb=2048)

    @dataclass(frozen=True)
    class Config:
        threshold: float = 0.95
        min_matches: int = 7  # samples in one run (1.4 s at every = 5)
        min_shared_frames: int = 25  # two items whose matched stretches share >= 1 s of a third item pair up

    def process(self, items: list[Item]) -> Output:
        import faiss

        c = self.config
        vecs = [it.upstream["fingerprint"].array("vectors") for it in items]  # [K, S, 256] each
        times = [it.upstream["fingerprint"].array("frame_index") for it in items]
        if not vecs:
            return Output(values={"items": 0, "pairs": [], "drop": []})
        owners = np.concatenate([np.full(v.shape[0] * v.shape[1], k) for k, v in enumerate(vecs)])
        sample_t = np.concatenate([np.repeat(t, v.shape[1]) for t, v in zip(times, vecs, strict=True)])
        base = np.concatenate([v.reshape(-1, v.shape[-1]) for v in vecs])
        index = faiss.IndexFlatIP(base.shape[1])
        index.add(np.ascontiguousarray(base))
        every = int(items[0].upstream["fingerprint"].values.get("every", 5))
        found: dict[tuple[int, int], int] = {}
        spans: dict[tuple[int, int], tuple[int, int, int]] = {}
        for a, v in enumerate(vecs):
            sims, ids = index.search(np.ascontiguousarray(v[:, 0]), min(64, len(base)))  # scale 1 of each sample
            offsets: dict[int, list[tuple[int, int]]] = {}  # item b -> (query sample, offset)
            for i, (row_s, row_i) in enumerate(zip(sims, ids, strict=True)):
                seen = set()
                for s, j in zip(row_s, row_i, strict=True):
                    if j < 0 or s < c.threshold:
                        continue
                    b = int(owners[j])
                    if b == a or b in seen:
                        continue
                    seen.add(b)  # the best match of sample i in item b
                    offsets.setdefault(b, []).append((i, int(sample_t[j]) - int(times[a][i])))
            for b, offs in offsets.items():
                # a copy matches at one time offset; another take of the same person and place matches anywhere
                consistent, off, first, last = _longest_consistent_run(offs, every)
                if consistent >= c.min_matches:
                    key = (min(a, b), max(a, b))
                    found[key] = max(found.get(key, 0), consistent)
                    start, end = int(times[a][first]), int(times[a][last]) + every
                    spans[(a, b)] = (start, end, off)
                    spans[(b, a)] = (start + off, end + off, -off)
        via = {}
        if c.min_shared_frames:
            for key, shared in shared_pairs(spans, c.min_shared_frames).items():
                if key not in found:
                    found[key] = shared // every  # in samples, like a direct match
                    via[key] = True
        pairs = [(a, b, n) for (a, b), n in found.items()]
        out = []
        for a, b, count in sorted(pairs):
            ia, ib = items[a], items[b]
            fa, fb = ia.upstream["fingerprint"].values, ib.upstream["fingerprint"].values
            key_a = (fa["frames"], fa["size"][0] * fa["size"][1], [-ord(ch) for ch in ia.item_id])
            key_b = (fb["frames"], fb["size"][0] * fb["size"][1], [-ord(ch) for ch in ib.item_id])
            drop = ib.item_id if key_a >= key_b else ia.item_id
            out.append({"a": ia.item_id, "b": ib.item_id, "matches": count, "drop": drop,
                        "via_shared_partner": bool(via.get((a, b)))})
        return Output(values={"items": len(items), "pairs": out, "drop": sorted({p["drop"] for p in out})})

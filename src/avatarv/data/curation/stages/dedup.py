"""Near-duplicate removal (seed: embeddings + nearest neighbours + threshold).

``fingerprint`` (per item): every ``every``-th frame becomes a 256-d vector (16x16 grey thumbnail, zero mean,
unit norm), at several centre-crop scales (1 down to 0.7) so that a cropped-and-resized copy still lands
near its source (a copy cropped to c of the frame shows what the source shows at scale c); and the sound's
loudness per video frame (log RMS), when there is sound.

``dedup`` (collection): faiss inner-product search of every item's scale-1 vectors against all items' vectors
at all scales proposes candidate pairs (items with at least ``min_matches`` matched samples). Each candidate
pair is then aligned in time: in the thresholded sample-by-sample similarity matrix (cosine >= ``threshold``,
best scale) each diagonal's longest run (``diagonal_runs``: one time offset, give or take a sample, one missed
sample bridged) of at least ``min_matches`` samples is a candidate offset, longest first: a copy matches its
source in order. Taking only each sample's single best match instead (the earlier rule) breaks a copy's run
whenever a near-still talking head has a slightly better match a few frames away (it missed 2 of 18 crop
copies on world footage); without sound the longest run decides.

Pictures alone cannot tell a copy from another take of the same person in the same place with the same
framing (on world footage such takes match at cosine 0.997, above many real copies). When both items have
sound, a pair is kept only if, along one of its candidate diagonals, the loudness envelopes over the matched
stretch correlate at ``audio_min_corr`` or more at some lag within a sample of the picture offset: a copy
carries the same sound (0.9999 measured after AAC re-encoding); another take of the same voice saying other
sentences reached 0.93 (trying every candidate diagonal, the pause patterns of two stretches can line up).
Items without sound, and silent stretches, are judged on pictures alone.

Where sound cannot decide (either item silent), the perceptual hash does: the prefilter's per-frame 64-bit pHash
(imagehash: 32 x 32 DCT, top-left 8 x 8 against their median) of the aligned samples must agree to a median
Hamming distance of at most ``phash_max`` bits. pHash keeps mid-frequency structure the 16 x 16 thumbnails
average away, so a re-encoded or resized copy stays within a few bits while a look-alike picture does not; it
is not crop-invariant, so a pair matched at a crop scale (best scale < 1) is not held to it. Every pair
reports its median Hamming distance (``phash_hamming``) when both items carry hashes. ``fingerprint`` takes
the hashes of its samples from the prefilter's ``phash`` array when a prefilter ran upstream (the same
frames, 64 px grey), and hashes them itself otherwise.

Copies of one source are also copies of each other even where their own frames match too weakly (a crop
against a resize): two items whose matched stretches cover at least ``min_shared_frames`` common frames of a
third item pair up (``shared_pairs``). The pair list and, per pair, the item to drop (the shorter, else the
smaller frame, else the later name) are the output.
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


def diagonal_runs(match: np.ndarray, tol: int = 1, max_miss: int = 1, min_len: int = 1
                  ) -> list[tuple[int, int, int, int]]:
    """Per diagonal ``j = i + o`` of a boolean ``[Ka, Kb]`` match matrix (give or take ``tol`` columns), its
    longest run of consecutive rows, bridging up to ``max_miss`` unmatched rows in a row: a list of
    ``(length, o, first_row, last_row)`` (``length`` counts matched rows), longest first; runs shorter than
    ``min_len`` are left out (diagonals with fewer matched rows are not scanned)."""
    ka, kb = match.shape
    out = []
    rows = np.arange(ka)
    for o in range(-ka + 1, kb):
        hit = np.zeros(ka, bool)
        for d in range(-tol, tol + 1):
            j = rows + o + d
            ok = (j >= 0) & (j < kb)
            hit[ok] |= match[rows[ok], j[ok]]
        if hit.sum() < min_len:
            continue
        best = (0, o, 0, 0)
        run = miss = 0
        first = -1
        for i in range(ka):
            if hit[i]:
                if run == 0:
                    first = i
                run, miss = run + 1, 0
                if run > best[0]:
                    best = (run, o, first, i)
            elif run:
                miss += 1
                if miss > max_miss:
                    run = miss = 0
        if best[0] >= min_len:
            out.append(best)
    return sorted(out, key=lambda r: (-r[0], abs(r[1])))


def longest_diagonal_run(match: np.ndarray, tol: int = 1, max_miss: int = 1) -> tuple[int, int, int, int]:
    """The longest of ``diagonal_runs`` (``(0, 0, 0, 0)`` if nothing matches)."""
    runs_ = diagonal_runs(match, tol, max_miss)
    return runs_[0] if runs_ else (0, 0, 0, 0)


def best_lag_corr(x: np.ndarray, y: np.ndarray, lags: range, min_len: int = 10) -> float:
    """max over ``lags`` of corr(x[t], y[t + lag]) over the overlap (NaN if no lag leaves ``min_len`` frames)."""
    best = np.nan
    for lag in lags:
        lo, hi = max(0, -lag), min(len(x), len(y) - lag)
        if hi - lo < min_len:
            continue
        a, b = x[lo:hi], y[lo + lag : hi + lag]
        if a.std() < 1e-6 or b.std() < 1e-6:
            continue
        r = float(np.corrcoef(a, b)[0, 1])
        best = r if not np.isfinite(best) else max(best, r)
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


def hamming64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance of two uint64 arrays (broadcast)."""
    x = np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64))
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(-1)


class Fingerprint(Stage):
    name = "fingerprint"
    version = "4"
    inputs = ("normalise", "prefilter")
    resources = Resources(cpu=1.0, memory_mb=512)

    @dataclass(frozen=True)
    class Config:
        every: int = 5

    def process(self, item: Item) -> Output:
        video = load_video(item)
        idx = np.arange(0, video.num_frames, self.config.every)
        vecs = np.stack([frame_vectors(video.frames[t]) for t in idx])  # [K, S, 256]
        pre = item.upstream.get("prefilter")
        if pre is not None and pre.ok and (pre.path / "phash.npy").is_file():
            hashes = pre.array("phash")[idx]  # [K] uint64, the prefilter's per-frame pHash
        else:
            from avatarv.data.curation.stages.common import grey_small
            from avatarv.data.curation.stages.prefilter import phash64

            hashes = np.array([phash64(g) for g in grey_small(video.frames[idx])], np.uint64)
        arrays = {"vectors": vecs, "frame_index": idx, "phash": hashes}
        if video.audio is not None and len(video.audio):
            from avatarv.data.curation.stages.sync import loudness_envelope

            hop = int(round(video.sample_rate / video.fps))
            arrays["loudness"] = loudness_envelope(video.audio, video.num_frames, hop)  # [T] log RMS per frame
        return Output(values={"frames": video.num_frames, "samples": len(idx), "every": self.config.every,
                              "size": [int(video.frames.shape[2]), int(video.frames.shape[1])],
                              "audio": "loudness" in arrays},
                      arrays=arrays)


class Dedup(Stage):
    name = "dedup"
    version = "9"
    inputs = ("fingerprint",)
    scope = "collection"
    resources = Resources(cpu=1.0, memory_mb=2048)

    @dataclass(frozen=True)
    class Config:
        threshold: float = 0.95
        min_matches: int = 7  # samples in one run (1.4 s at every = 5)
        min_shared_frames: int = 25  # two items whose matched stretches share >= 1 s of a third item pair up
        audio_min_corr: float = 0.97  # loudness correlation over the matched stretch that confirms a copy
        phash_max: int = 10  # median pHash Hamming bits of aligned samples that confirm a copy without sound

    def process(self, items: list[Item]) -> Output:
        import faiss

        c = self.config
        vecs = [it.upstream["fingerprint"].array("vectors") for it in items]  # [K, S, 256] each
        times = [it.upstream["fingerprint"].array("frame_index") for it in items]
        if not vecs:
            return Output(values={"items": 0, "pairs": [], "drop": []})
        owners = np.concatenate([np.full(v.shape[0] * v.shape[1], k) for k, v in enumerate(vecs)])
        base = np.concatenate([v.reshape(-1, v.shape[-1]) for v in vecs])
        index = faiss.IndexFlatIP(base.shape[1])
        index.add(np.ascontiguousarray(base))
        every = int(items[0].upstream["fingerprint"].values.get("every", 5))
        loud = [it.upstream["fingerprint"].array("loudness") if it.upstream["fingerprint"].values.get("audio")
                else None for it in items]
        hashes = [it.upstream["fingerprint"].array("phash") if (it.upstream["fingerprint"].path / "phash.npy").is_file()
                  else None for it in items]
        hamming: dict[tuple[int, int], float] = {}
        found: dict[tuple[int, int], int] = {}
        spans: dict[tuple[int, int], tuple[int, int, int]] = {}
        rejected: list[dict] = []
        by_phash: list[dict] = []
        for a, v in enumerate(vecs):
            sims, ids = index.search(np.ascontiguousarray(v[:, 0]), min(64, len(base)))  # scale 1 of each sample
            hits: dict[int, set[int]] = {}  # candidate item b -> query samples with a match in b
            for i, (row_s, row_i) in enumerate(zip(sims, ids, strict=True)):
                for s_, j in zip(row_s, row_i, strict=True):
                    if j >= 0 and s_ >= c.threshold and int(owners[j]) != a:
                        hits.setdefault(int(owners[j]), set()).add(i)
            for b, samples in sorted(hits.items()):
                if len(samples) < c.min_matches:
                    continue
                # align in time: [Ka, Kb] cosine at the best scale of b, thresholded; every diagonal with a long
                # enough run is a candidate offset (a near-still picture matches along many of them)
                sims_ab = np.einsum("id,jsd->ijs", v[:, 0], vecs[b])  # [Ka, Kb, scales]
                match = sims_ab.max(-1) >= c.threshold
                cands = diagonal_runs(match, min_len=c.min_matches)
                if not cands:
                    continue
                chosen, best_r, worst_ham = None, np.nan, None
                for run, o, first, last in cands:
                    start, end = int(times[a][first]), int(times[a][last]) + every
                    j0 = int(np.clip(first + o, 0, len(times[b]) - 1))
                    off = int(times[b][j0]) - int(times[a][first])  # frame t of a is frame t + off of b
                    ham = None
                    if hashes[a] is not None and hashes[b] is not None:
                        rows = np.arange(first, last + 1)
                        cols = np.clip(rows + o, 0, len(times[b]) - 1)
                        ham = float(np.median(hamming64(hashes[a][rows], hashes[b][cols])))
                        cropped = bool(np.median(sims_ab[rows, cols].argmax(-1)) > 0)  # matched at a crop scale
                    if loud[a] is None or loud[b] is None:  # no sound on one side: the pictures decide
                        if ham is not None and not cropped and ham > c.phash_max:
                            worst_ham = ham if worst_ham is None else min(worst_ham, ham)
                            continue
                        chosen = (run, start, end, off)
                        hamming[(min(a, b), max(a, b))] = ham
                        break
                    r = best_lag_corr(loud[a][start:end], loud[b], range(start + off - every, start + off + every + 1))
                    if not np.isfinite(r) or r >= c.audio_min_corr:  # the same sound (or silence: no evidence)
                        chosen = (run, start, end, off)
                        hamming[(min(a, b), max(a, b))] = ham
                        break
                    best_r = r if not np.isfinite(best_r) else max(best_r, r)
                if chosen is None and worst_ham is not None and not np.isfinite(best_r):
                    by_phash.append({"a": items[a].item_id, "b": items[b].item_id, "matches": cands[0][0],
                                     "phash_hamming": worst_ham})
                    continue
                if chosen is None:
                    rejected.append({"a": items[a].item_id, "b": items[b].item_id, "matches": cands[0][0],
                                     "audio_corr": round(float(best_r), 3)})
                    continue
                run, start, end, off = chosen
                key = (min(a, b), max(a, b))
                found[key] = max(found.get(key, 0), run)
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
            pair = {"a": ia.item_id, "b": ib.item_id, "matches": count, "drop": drop,
                    "via_shared_partner": bool(via.get((a, b))), "phash_hamming": hamming.get((a, b))}
            if (a, b) in spans:  # the matched stretches, for inspection: frames [start, end) of a and of b
                start, end, off = spans[(a, b)]
                pair.update(a_frames=[start, end], b_frames=[start + off, end + off])
            else:  # through the partner whose frames both copy
                y = max((y for y in range(len(items)) if (a, y) in spans and (b, y) in spans),
                        key=lambda y: min(spans[(a, y)][1] + spans[(a, y)][2], spans[(b, y)][1] + spans[(b, y)][2])
                        - max(spans[(a, y)][0] + spans[(a, y)][2], spans[(b, y)][0] + spans[(b, y)][2]))
                pair["partner"] = items[y].item_id
            out.append(pair)
        return Output(values={"items": len(items), "pairs": out, "drop": sorted({p["drop"] for p in out}),
                              "rejected_by_sound": rejected, "rejected_by_phash": by_phash})

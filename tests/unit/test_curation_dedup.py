"""Dedup's time alignment (near-diagonal runs), its sound check, and the shared-partner rule (copies of one
source are copies of each other)."""

from __future__ import annotations

import numpy as np

from avatarv.data.curation.stages.dedup import best_lag_corr, longest_diagonal_run, shared_pairs


def test_longest_diagonal_run_reports_offset_and_extent():
    # rows 2..9 of a match row 20 + i (row 5 missed and bridged; row 7 one column off); rows 11..12 elsewhere
    m = np.zeros((15, 40), bool)
    for i in (2, 3, 4, 6, 8, 9):
        m[i, 20 + i] = True
    m[7, 28] = True  # within tol = 1 of the diagonal
    m[11, 3] = m[12, 4] = True
    run, o, first, last = longest_diagonal_run(m)
    assert (run, o, first, last) == (7, 20, 2, 9)
    assert longest_diagonal_run(np.zeros((5, 5), bool)) == (0, 0, 0, 0)
    two_misses = np.zeros((10, 10), bool)
    two_misses[[0, 1, 2, 5, 6], [0, 1, 2, 5, 6]] = True  # rows 3 and 4 missed: the run breaks
    assert longest_diagonal_run(two_misses, tol=0)[0] == 3


def test_every_match_counts_not_only_each_rows_best():
    """A near-still talking head matches many frames of its copy; the copy's run holds when each row's single
    best match sits a few frames off (which broke the old best-match rule) as long as the diagonal matches."""
    rng = np.random.default_rng(0)
    m = rng.random((20, 60)) > 0.5  # a near-still picture: half of all pairs match ...
    m[np.arange(20), np.arange(20) + 30] = True  # ... and the copy matches its source all along one diagonal
    run, o, first, last = longest_diagonal_run(m, tol=0, max_miss=0)
    assert run == 20 and o == 30 and (first, last) == (0, 19)


def test_sound_check_tells_a_copy_from_another_take():
    rng = np.random.default_rng(1)
    env = np.convolve(rng.normal(size=400), np.ones(4) / 4, mode="same")  # a loudness envelope [T]
    copy = env[100:160] + rng.normal(0, 0.02, 60)  # a re-encoded copy of frames 100..160
    other = np.convolve(rng.normal(size=60), np.ones(4) / 4, mode="same")  # another take: other words
    assert best_lag_corr(copy, env, range(95, 106)) > 0.95
    assert best_lag_corr(other, env, range(95, 106)) < 0.6
    assert np.isnan(best_lag_corr(copy, env, range(1000, 1001)))  # no overlap: no evidence


def test_shared_pairs_joins_copies_that_overlap_in_their_common_partner():
    # item 0 = source; 1 and 2 copy frames [100, 160) and [120, 170) of it; 3 matches 0 by chance at [500, 540)
    spans = {
        (1, 0): (0, 60, 100),  # frames 0..60 of item 1 are frames 100..160 of item 0
        (2, 0): (0, 50, 120),
        (3, 0): (10, 50, 490),
    }
    pairs = shared_pairs(spans, min_shared=25)
    assert pairs == {(1, 2): 40}  # 120..160 shared; the chance match overlaps neither copy
    assert shared_pairs(spans, min_shared=41) == {}


def test_dedup_stage_keeps_a_copy_and_rejects_a_lookalike_take_by_its_sound(tmp_path):
    """Three items that look the same (one near-still picture): ``copy`` also carries the source's sound,
    ``take`` has other sound. Pictures alone would pair all three."""
    from pathlib import Path

    from avatarv.data.curation.stage import Artifact, Item
    from avatarv.data.curation.stages.dedup import Dedup, frame_vectors

    rng = np.random.default_rng(2)
    picture = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    frames = np.stack([np.clip(picture.astype(int) + rng.integers(-2, 3, picture.shape), 0, 255).astype(np.uint8)
                       for _ in range(60)])
    sound = np.convolve(rng.normal(size=60), np.ones(3) / 3, mode="same").astype(np.float32)
    other = np.convolve(rng.normal(size=60), np.ones(3) / 3, mode="same").astype(np.float32)

    def item(name: str, loudness) -> Item:
        d = tmp_path / name
        d.mkdir()
        idx = np.arange(0, 60, 5)
        np.save(d / "vectors.npy", np.stack([frame_vectors(frames[t]) for t in idx]))
        np.save(d / "frame_index.npy", idx)
        values = {"frames": 60, "samples": len(idx), "every": 5, "size": [64, 64], "audio": loudness is not None}
        if loudness is not None:
            np.save(d / "loudness.npy", loudness)
        it = Item(name, Path(name), "0")
        it.upstream["fingerprint"] = Artifact("fingerprint", d, values)
        return it

    items = [item("source.mp4", sound), item("copy.mp4", sound + 0.01), item("take.mp4", other)]
    out = Dedup().process(items).values
    assert {(p["a"], p["b"]) for p in out["pairs"]} == {("source.mp4", "copy.mp4")}
    assert {(r["a"], r["b"]) for r in out["rejected_by_sound"]} >= {("source.mp4", "take.mp4")}
    silent = [item("s2.mp4", None), item("t2.mp4", None)]  # no sound: pictures decide
    assert len(Dedup().process(silent).values["pairs"]) == 1


def test_unlabelled_same_content_pairs_are_left_out_of_the_score(tmp_path):
    """Two raw videos showing the same person saying the same sentence in the same place are the same content
    though no copy label names them; other pairs between the same videos still count."""
    import json

    from avatarv.data.curation.evaluate import unlabelled_content_pairs

    def shot(a, b, ident, scene, sentences):
        return {"start": a, "end": b, "identity_id": ident, "speaker_id": ident, "scene_id": scene,
                "sentences": sentences, "defect": None}

    (tmp_path / "raw_a.json").write_text(json.dumps({"video": "raw_a.mp4", "shots": [shot(0, 100, 1, 2, ["S1"])],
                                                     "duplicates": [{"file": "raw_a_dup0.mp4", "start": 10, "end": 60}]}))
    (tmp_path / "raw_b.json").write_text(json.dumps({"video": "raw_b.mp4", "shots": [
        shot(0, 100, 1, 2, ["S1", "S3"]), shot(100, 200, 1, 2, ["S2"])], "duplicates": []}))
    labelled = sorted(tmp_path.glob("raw_*.json"))
    truth = {frozenset(("raw_a.mp4", "raw_a_dup0.mp4"))}
    same = {"a": "raw_a.mp4", "b": "raw_b.mp4", "a_frames": [0, 50], "b_frames": [20, 70]}
    other_sentence = {"a": "raw_a.mp4", "b": "raw_b.mp4", "a_frames": [0, 50], "b_frames": [120, 170]}
    via = {"a": "raw_a_dup0.mp4", "b": "raw_b.mp4", "partner": "raw_a.mp4"}
    assert unlabelled_content_pairs([same, via], truth, labelled) == {frozenset(("raw_a.mp4", "raw_b.mp4")),
                                                                      frozenset(("raw_a_dup0.mp4", "raw_b.mp4"))}
    assert unlabelled_content_pairs([other_sentence, via], truth, labelled) == set()
    assert unlabelled_content_pairs([same], {frozenset(("raw_a.mp4", "raw_b.mp4"))}, labelled) == set()


def test_without_sound_the_phash_decides(tmp_path):
    """Two silent items whose thumbnails match exactly: kept as copies when their aligned pHashes agree, rejected
    when they are 20+ bits apart, and a pair matched at a crop scale is not held to the pHash."""
    from pathlib import Path

    from avatarv.data.curation.stage import Artifact, Item
    from avatarv.data.curation.stages.dedup import Dedup, frame_vectors, hamming64

    assert hamming64(np.array([0b1011], np.uint64), np.array([0b0001], np.uint64)) == 2
    rng = np.random.default_rng(5)
    picture = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    base = rng.integers(0, 2**63, 12, dtype=np.uint64)
    flip = np.uint64((1 << 24) - 1)  # 24 bits

    def item(name: str, hashes, crop: bool = False) -> Item:
        d = tmp_path / name
        d.mkdir()
        v = np.stack([frame_vectors(picture)] * 12)  # [12, S, 256]
        if crop:  # the picture only matches at the scale-0.8 crop
            v = np.roll(v, 4, axis=1)
        np.save(d / "vectors.npy", v)
        np.save(d / "frame_index.npy", np.arange(0, 60, 5))
        np.save(d / "phash.npy", hashes)
        it = Item(name, Path(name), "0")
        it.upstream["fingerprint"] = Artifact("fingerprint", d, {"frames": 60, "samples": 12, "every": 5,
                                                                  "size": [64, 64], "audio": False})
        return it

    out = Dedup().process([item("a.mp4", base), item("copy.mp4", base ^ np.uint64(3))]).values
    assert [(p["a"], p["b"], p["phash_hamming"]) for p in out["pairs"]] == [("a.mp4", "copy.mp4", 2.0)]
    out = Dedup().process([item("b.mp4", base), item("other.mp4", base ^ flip)]).values
    assert out["pairs"] == [] and out["rejected_by_phash"][0]["phash_hamming"] == 24.0
    out = Dedup().process([item("c.mp4", base), item("cropped.mp4", base ^ flip, crop=True)]).values
    assert len(out["pairs"]) == 1  # a crop changes the pHash: not held to it


def test_fingerprint_takes_the_prefilters_phash(tmp_path, monkeypatch):
    from pathlib import Path

    from avatarv.data.curation.stage import Artifact, Item
    from avatarv.data.curation.stages import dedup
    from avatarv.data.curation.stages.common import grey_small
    from avatarv.data.curation.stages.prefilter import frame_statistics
    from avatarv.media.read import Video

    rng = np.random.default_rng(1)
    frames = (rng.random((30, 64, 64, 3)) * 255).astype(np.uint8)
    monkeypatch.setattr(dedup, "load_video", lambda item: Video(frames, 25.0, None, 16000, Path("x.mp4")))
    _, hashes, _ = frame_statistics(frames, grey_small(frames))
    own = dedup.Fingerprint().process(Item("x.mp4", Path("x.mp4"), "0")).arrays["phash"]
    assert (own == hashes[::5]).all()  # hashed itself: the prefilter's function on the same frames
    np.save(tmp_path / "phash.npy", hashes ^ np.uint64(1))  # marked, to see which one is used
    it = Item("x.mp4", Path("x.mp4"), "0", {"prefilter": Artifact("prefilter", tmp_path, {})})
    assert (dedup.Fingerprint().process(it).arrays["phash"] == (hashes ^ np.uint64(1))[::5]).all()

"""Dedup's run finder and the shared-partner rule (copies of one source are copies of each other)."""

from __future__ import annotations

from avatarv.data.curation.stages.dedup import _longest_consistent_run, shared_pairs


def test_longest_consistent_run_reports_offset_and_extent():
    # samples 2..9 match at offset 100 (one miss at 5 is bridged); 11..12 at a different offset
    matches = [(2, 100), (3, 101), (4, 99), (6, 100), (7, 100), (8, 102), (9, 100), (11, 300), (12, 300)]
    run, off, first, last = _longest_consistent_run(matches, tol=5)
    assert (run, first, last) == (7, 2, 9) and abs(off - 100) <= 5
    assert _longest_consistent_run([], 5) == (0, 0, 0, 0)


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

"""ChunkPlan arithmetic: 4k+1 rule, overlaps, the last partial chunk, audio alignment without drift."""

from __future__ import annotations

import pytest

from avatarv.pipelines.chunks import ChunkPlan, frames_to_latents, latents_to_frames


def test_frames_latents_rule():
    assert latents_to_frames(41) == 161 and frames_to_latents(161) == 41
    assert frames_to_latents(1) == 1 and frames_to_latents(2) == 2 and frames_to_latents(5) == 2
    for n in range(1, 300):
        k = frames_to_latents(n)
        assert latents_to_frames(k) >= n > latents_to_frames(k - 1) if k > 1 else latents_to_frames(k) >= n


def test_seed_chunk_geometry():
    plan = ChunkPlan(total_frames=25 * 60)  # one minute
    chunks = plan.chunks()
    first = chunks[0]
    assert first.num_latents == 41 and first.num_frames == 161 and first.prefix_latents == 0
    assert plan.overlap_frames == 5  # 2 latent frames of the causal VAE = 1 + 4 video frames
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start_frame == a.end_frame - plan.overlap_frames  # prefix = previous tail
        assert b.prefix_latents == 2
    # every continuation adds 4·(41 − 2) = 156 new frames
    assert all(c.num_frames - plan.overlap_frames == 156 for c in chunks[1:-1])
    last = chunks[-1]
    assert last.end_frame >= plan.total_frames
    assert last.end_frame - plan.total_frames < 4  # shortened to the fewest latents covering the end
    covered = set()
    for c in chunks:
        covered |= set(range(c.start_frame, c.end_frame))
    assert covered >= set(range(plan.total_frames))


@pytest.mark.parametrize("total", [1, 2, 160, 161, 162, 317, 318, 1000])
def test_short_and_boundary_lengths(total):
    chunks = ChunkPlan(total_frames=total).chunks()
    assert chunks[-1].end_frame >= total
    assert all(c.num_latents > c.prefix_latents for c in chunks)
    if total <= 161:
        assert len(chunks) == 1


def test_audio_alignment_ten_minutes_no_drift():
    plan = ChunkPlan(total_frames=25 * 600, fps=25, sample_rate=16000)
    end = 0
    for c in plan.chunks():
        a, b = plan.sample_range(c.start_frame, c.num_frames)
        assert a == c.start_frame * 640 and b - a == c.num_frames * 640
        end = max(end, b)
    assert plan.total_samples() == 600 * 16000
    # an fps that does not divide the sample rate still lands exactly (rational arithmetic)
    odd = ChunkPlan(total_frames=30000 * 10 // 1001, fps=30, sample_rate=44100)
    a, b = odd.sample_range(0, 30 * 600)
    assert b == 600 * 44100


def test_bad_plans():
    with pytest.raises(ValueError):
        ChunkPlan(total_frames=0)
    with pytest.raises(ValueError):
        ChunkPlan(total_frames=10, chunk_latents=2, overlap_latents=2)

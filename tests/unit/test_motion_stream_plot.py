"""benchmarks/motion_stream_plot.py: where the seams are and how much a stream jumps there."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def plot():
    return load_benchmark("motion_stream_plot")


def test_seams_are_each_later_chunks_first_generated_frame(plot):
    seams = plot.seam_frames(300)
    assert seams[0] == 33 and np.all(np.diff(seams) == 28)  # 9-latent chunks, 2 latents of overlap


def test_seam_jump_ratio(plot):
    seams = plot.seam_frames(300)
    ramp = ((np.arange(300) + 3) // 4).astype(float)  # held over each latent frame (frames 4j − 3 … 4j): steps of 1
    assert plot.seam_jumps(ramp, seams) == pytest.approx(1.0)
    jumpy = ramp.copy()
    for s in seams:
        jumpy[s:] += 10.0  # a jump of 10 at every seam
    assert plot.seam_jumps(jumpy, seams) > 5

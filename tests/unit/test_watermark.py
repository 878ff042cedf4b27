"""The watermark's parts: CRC + Chase decoding, the tile, and embed → attack → detect on a real clip."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from avatarv.provenance.pattern import make_tile
from avatarv.provenance.payload import CODE_BITS, crc16, decode_soft, encode_payload
from avatarv.provenance.watermark import detect_file, detect_frames, embed_file, embed_frames, payload_for_job

PAYLOAD = bytes.fromhex("0123456789abcdef")


def test_crc16_check_value():
    assert crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE's published check value


def test_chase_decoding_corrects_weak_bits_and_rejects_noise():
    soft = encode_payload(PAYLOAD).astype(float) * 2 - 1
    soft[[3, 40, 77]] *= -0.1  # three wrong but weak decisions
    decoded = decode_soft(soft)
    assert decoded.payload == PAYLOAD and decoded.bit_errors == 3
    rng = np.random.default_rng(0)
    hits = sum(decode_soft(rng.standard_normal(CODE_BITS)).payload is not None for _ in range(200))
    assert hits <= 2  # 64 CRC trials each: p ≈ 1e-3 per noise vector


def test_tile_is_key_dependent_and_partitions_cells():
    a, b = make_tile(b"k1"), make_tile(b"k2")
    assert not np.array_equal(a.chips, b.chips)
    counts = np.bincount(a.bit_of[a.bit_of >= 0])
    assert len(counts) == CODE_BITS and (counts == counts[0]).all()
    assert np.array_equal(a.pilot != 0, a.bit_of < 0)


def test_payload_for_job():
    assert payload_for_job("0123456789abcdef") == PAYLOAD
    assert len(payload_for_job("3f2b9c1e-job")) == 8


@pytest.fixture(scope="module")
def short_real(real_clips, tmp_path_factory):
    """The first 3 s of a real clip (480 px), written as our own mp4."""
    out = tmp_path_factory.mktemp("wm") / "clip.mp4"
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-i", str(real_clips[2]), "-t", "3", "-c:v", "libx264",
                    "-crf", "18", "-c:a", "aac", str(out)], check=True)
    return out


def test_frames_round_trip_and_quality(short_real):
    from avatarv.provenance.mp4io import iter_frames

    frames = np.stack(list(iter_frames(short_real)))
    marked = embed_frames(frames, PAYLOAD)
    assert marked.shape == frames.shape and marked.dtype == np.uint8
    mse = np.mean((marked.astype(float) - frames) ** 2)
    assert 10 * np.log10(255**2 / mse) > 35  # measured ≈ 38 dB on the real clips
    found = detect_frames(marked)
    assert found.payload == PAYLOAD and found.bit_errors == 0
    assert detect_frames(frames).payload is None  # the unmarked frames


@pytest.mark.parametrize("vf", [None, "crop=trunc(iw*0.45)*2:trunc(ih*0.45)*2:trunc(iw*0.07):trunc(ih*0.03)"],
                         ids=["crf28", "crop10+crf28"])
def test_file_survives_reencode_and_crop(short_real, tmp_path, vf):
    marked = embed_file(short_real, tmp_path / "marked.mp4", PAYLOAD)
    attacked = tmp_path / "attacked.mp4"
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-i", str(marked), *(["-vf", vf] if vf else []),
                    "-c:v", "libx264", "-crf", "28", str(attacked)], check=True)
    found = detect_file(attacked)
    assert found.payload == PAYLOAD, found


def test_no_false_positive_on_unmarked_real_clips(real_clips):
    for clip in real_clips[:2]:
        found = detect_file(clip, max_frames=100)
        assert found.payload is None and found.confidence < 5.5, (clip.name, found)

"""The watermark's message: a 64-bit payload + CRC-16 = an 80-bit codeword, decoded from soft bits.

A false positive must pass two independent tests: the sync pilot's correlation peak (``pattern.py``) and
this checksum. Decoding is Chase-style (Chase 1972, "A class of algorithms for decoding block codes with
channel measurement information"): take the hard decisions, and if the CRC fails flip the ``CHASE_BITS``
least reliable bits in every combination, accepting the first codeword whose CRC matches. That corrects a
few weak bits at the cost of ``2**CHASE_BITS`` CRC trials (a random codeword matches with p ≈ 2**-10
instead of 2**-16, which is why the pilot's threshold carries most of the false-positive guarantee).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

PAYLOAD_BYTES = 8  # 64 bits: a job id (or the CLI's random id)
CRC_BITS = 16
CODE_BITS = PAYLOAD_BYTES * 8 + CRC_BITS  # 80
CHASE_BITS = 6  # flip up to the 6 least reliable bits: 64 CRC trials


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): ``crc16(b"123456789") == 0x29B1``."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def encode_payload(payload: bytes) -> np.ndarray:
    """8 bytes → ``[80]`` uint8 bits (payload MSB first, then the CRC-16 of the payload)."""
    if len(payload) != PAYLOAD_BYTES:
        raise ValueError(f"the watermark payload is {PAYLOAD_BYTES} bytes (64 bits), got {len(payload)}")
    data = bytes(payload) + crc16(payload).to_bytes(2, "big")
    return np.unpackbits(np.frombuffer(data, np.uint8))


def _check(bits: np.ndarray) -> bytes | None:
    data = np.packbits(bits.astype(np.uint8)).tobytes()
    payload, crc = data[:PAYLOAD_BYTES], int.from_bytes(data[PAYLOAD_BYTES:], "big")
    return payload if crc16(payload) == crc else None


@dataclass
class Decoded:
    payload: bytes | None  # None: no codeword within CHASE_BITS flips of the hard decisions
    bit_errors: int  # bits flipped to reach the accepted codeword (-1 when none was found)
    hard_bits: np.ndarray  # [80] uint8, the hard decisions before correction


def decode_soft(soft: np.ndarray) -> Decoded:
    """``soft`` [80] float (positive = 1) → the payload if a codeword within ``CHASE_BITS`` flips checks."""
    hard = (soft > 0).astype(np.uint8)
    weakest = np.argsort(np.abs(soft))[:CHASE_BITS]
    for n_flips in range(CHASE_BITS + 1):
        for flips in itertools.combinations(weakest, n_flips):
            bits = hard.copy()
            bits[list(flips)] ^= 1
            payload = _check(bits)
            if payload is not None:
                return Decoded(payload, n_flips, hard)
    return Decoded(None, -1, hard)

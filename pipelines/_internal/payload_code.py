"""The error-correcting code both invisible marks write their 64-bit payload in.

The payload and its CRC-32 (96 message bits) through a rate-1/2 convolutional code (constraint
length 7, generators 171 and 133 octal, zero-terminated: 204 coded bits), decoded from soft values
by the Viterbi algorithm; a decoded message counts only when its CRC holds, so a reading of
random values yields a payload with probability 2^-32. The pixel watermark
(``visuels.marking.watermark``) spreads the coded bits over the luminance, the starting-noise
mark (``visuels.models.noise_mark``) over the signs of the starting noise.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

PAYLOAD_BITS = 64
CRC_BITS = 32
MESSAGE_BITS = PAYLOAD_BITS + CRC_BITS
CONSTRAINT = 7
GENERATORS = (0o171, 0o133)
STATES = 2 ** (CONSTRAINT - 1)
CODED_BITS = 2 * (MESSAGE_BITS + CONSTRAINT - 1)  # zero-terminated


def message_bits(payload: int) -> np.ndarray:
    """The payload's 64 bits, then their CRC-32, most significant first."""
    data = payload.to_bytes(8, "big")
    crc = zlib.crc32(data).to_bytes(4, "big")
    return np.unpackbits(np.frombuffer(data + crc, dtype=np.uint8))


@lru_cache(maxsize=1)
def _trellis() -> tuple[np.ndarray, np.ndarray]:
    """Encoder outputs (state, input) -> 2 bits, and each next state's two (state, input) origins."""
    outputs = np.zeros((STATES, 2, 2), dtype=np.int8)
    for state in range(STATES):
        for bit in (0, 1):
            register = ((state << 1) | bit) & (2 * STATES - 1)
            outputs[state, bit] = [(register & generator).bit_count() & 1 for generator in GENERATORS]
    origins = np.array([[next_state >> 1, (next_state >> 1) | STATES // 2] for next_state in range(STATES)])
    return outputs, origins


def convolve(bits: np.ndarray) -> np.ndarray:
    """The coded bits (0/1) of message bits, the encoder flushed back to state 0."""
    outputs, _ = _trellis()
    state, coded = 0, []
    for bit in [*bits.tolist(), *([0] * (CONSTRAINT - 1))]:
        coded += outputs[state, bit].tolist()
        state = ((state << 1) | bit) & (STATES - 1)
    return np.array(coded, dtype=np.uint8)


def coded_bits(payload: int) -> np.ndarray:
    """The 204 coded bits (0/1) a payload is written as."""
    return convolve(message_bits(payload))


@lru_cache(maxsize=1)
def _generator_matrix() -> np.ndarray:
    """The code as a 96 x 204 matrix over GF(2): row i holds the coded bits of message bit i alone
    (a convolutional code started from zero is linear), so many payloads encode in one product."""
    return np.stack([convolve(row) for row in np.eye(MESSAGE_BITS, dtype=np.uint8)]).astype(np.float32)


def coded_bits_of_many(payloads: Sequence[int]) -> np.ndarray:
    """The coded bits of each payload, one row each: ``coded_bits`` for many at once."""
    data = b"".join(
        payload.to_bytes(8, "big") + zlib.crc32(payload.to_bytes(8, "big")).to_bytes(4, "big") for payload in payloads
    )
    messages = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).reshape(-1, MESSAGE_BITS).astype(np.float32)
    # A float product is exact here (sums of at most 96 ones) and runs on BLAS; its parity is the code.
    return (messages @ _generator_matrix()).astype(np.int32).astype(np.uint8) & 1


def viterbi(soft: np.ndarray) -> np.ndarray:
    """Most likely message bits for soft coded values (positive means 1), by correlation metric."""
    outputs, origins = _trellis()
    signs = outputs.astype(np.float64) * 2 - 1  # (state, input, 2)
    steps = len(soft) // 2
    metric = np.full(STATES, -np.inf)
    metric[0] = 0.0
    choices = np.zeros((steps, STATES), dtype=np.int8)
    inputs = np.arange(STATES) & 1  # the input bit that leads into each next state
    for step in range(steps):
        branch = signs @ soft[2 * step : 2 * step + 2]  # (state, input)
        candidates = metric[origins] + branch[origins, inputs[:, None]]  # (next state, 2 origins)
        choices[step] = candidates.argmax(axis=1)
        metric = candidates.max(axis=1)
    state, bits = 0, []  # zero-terminated: the path ends in state 0
    for step in range(steps - 1, -1, -1):
        bits.append(state & 1)
        state = origins[state, choices[step, state]]
    return np.array(bits[::-1][:MESSAGE_BITS], dtype=np.uint8)


def payload_of(bits: np.ndarray) -> int | None:
    """The payload of decoded message bits, or None when their CRC does not hold."""
    raw = np.packbits(bits.astype(np.uint8)).tobytes()
    data, crc = raw[:8], raw[8:12]
    return int.from_bytes(data, "big") if zlib.crc32(data).to_bytes(4, "big") == crc else None


def decode(soft: np.ndarray) -> int | None:
    """The payload soft coded values carry, or None."""
    return payload_of(viterbi(soft))

"""The starting-noise mark's code: which sign each value of a job's starting noise takes, and how a
payload is read back from noise recovered by inverting the sampler.

Gaussian Shading (Yang, Zeng, Qian, Zhang et al., "Gaussian Shading: Provable Performance-Lossless
Image Watermarking for Diffusion Models", CVPR 2024), as visuels applies it: the payload (the
first 64 bits of the job's generation key, which the files made from one generated picture share)
is written in the pixel watermark's code (CRC-32 and a convolutional code: 204 coded bits,
``visuels._internal.payload_code``), repeated over the latent values; the repeated bits are XORed
with a keystream (ChaCha20 under a key derived from the deployment's watermark key), so they are
uniformly random to anyone without the key; each bit then picks the half of the standard normal
its value is drawn from (``visuels.models.noise``). A uniform bit choosing a half, and a uniform
draw inside it, give exactly a standard normal sample: the starting noise is distributed as
ordinary noise, and the picture costs nothing in quality. (Gaussian Shading repeats its bits in
blocks and corrects with majority votes; visuels' convolutional code corrects the few values
inversion gets wrong after the export's overlays and attacks.)

Reading: the signs of the recovered noise, XORed with the same keystream, give each coded bit a
soft vote; the Viterbi decoder finds the payload and its CRC decides (a picture never marked gives
a payload with probability 2^-32). Given candidate payloads (the marks the ledger records), the
share of coded bits that agree with the best of them decides too, with its false-positive rate
from the binomial law times the number of candidates tried: a reading too worn to decode (a
poster's second pass, a layout's overlays on a small latent) is still confirmed at that rate.

This module is numpy only; making noise and inverting the sampler need the model
(``visuels.models.noise``, ``visuels.models.inversion``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from visuels._internal.payload_code import CODED_BITS, coded_bits, coded_bits_of_many, decode

VERSION = "1"  # in every marked job's key: a change of the code re-renders what it marked
# A candidate payload is confirmed when at least this many of the 204 coded bits agree: a picture
# the key never marked agrees with a given candidate this well with probability 7.7e-10
# (``false_positive_rate``).
AGREEING_BITS = 145
# What a reading may claim: a picture never marked decodes to a payload with probability 2^-32, and
# is confirmed against candidates with at most this probability too.
FALSE_POSITIVE_RATE = 2.0**-32
CANDIDATES_AT_ONCE = 65_536  # candidates encoded per matrix product (bounded memory)


def payload_for_key(key: str) -> int:
    """The first 64 bits of a key: a file's watermark id (of its job key), a generated picture's
    starting-noise payload (of its generation key)."""
    return int(key[:16], 16)


def keystream(key: int, count: int) -> np.ndarray:
    """``count`` keyed pseudo-random bits (0/1): ChaCha20 under a key derived from the watermark key
    for this use alone, a fixed nonce (the mark must be read without knowing which job made it)."""
    derived = hashlib.sha256(b"visuels starting-noise mark\0" + key.to_bytes(16, "big")).digest()
    encryptor = Cipher(algorithms.ChaCha20(derived, bytes(16)), mode=None).encryptor()
    stream = encryptor.update(bytes((count + 7) // 8))
    return np.unpackbits(np.frombuffer(stream, dtype=np.uint8))[:count]


def noise_bits(payload: int, key: int, count: int) -> np.ndarray:
    """The half (1: positive) each of ``count`` noise values is drawn from: the code repeated over
    the values, XORed with the keystream."""
    repeated = coded_bits(payload)[np.arange(count) % CODED_BITS]
    return repeated ^ keystream(key, count)


@dataclass(frozen=True)
class NoiseReading:
    """What recovered noise says: each coded bit's vote (-1 to 1: the share of its values read as
    1, less those read as 0), and the payload when the decoded message's CRC holds."""

    votes: np.ndarray
    payload: int | None

    @property
    def bits(self) -> np.ndarray:
        return (self.votes > 0).astype(np.uint8)


def read_bits(noise: np.ndarray, key: int) -> NoiseReading:
    """Vote each coded bit from the signs of recovered noise (flattened in the order it was made)."""
    flat = noise.reshape(-1).astype(np.float64)
    signs = ((flat > 0).astype(np.uint8) ^ keystream(key, flat.size)).astype(np.float64) * 2 - 1
    # A value far from zero is less likely to have crossed it on the way back: it weighs more.
    confidence = np.clip(np.abs(flat) / (flat.std() + 1e-12), 0, 2)
    positions = np.arange(flat.size) % CODED_BITS
    votes = np.bincount(positions, weights=signs * confidence, minlength=CODED_BITS)
    votes /= np.bincount(positions, weights=confidence, minlength=CODED_BITS) + 1e-12
    return NoiseReading(votes=votes, payload=decode(votes))


def agreeing_bits(reading: NoiseReading, payload: int) -> int:
    """How many of the 204 coded bits read agree with ``payload``'s."""
    return int((reading.bits == coded_bits(payload)).sum())


def false_positive_rate(agreeing: int, bits: int = CODED_BITS) -> float:
    """The chance that a picture the key never marked agrees with a given payload on at least
    ``agreeing`` of ``bits`` coded bits (each agrees with probability 1/2, independently)."""
    return sum(math.comb(bits, k) for k in range(agreeing, bits + 1)) / 2**bits


@dataclass(frozen=True)
class Confirmation:
    """The candidate payload a reading agrees with most, how many coded bits agree, and the chance
    that a picture never marked agrees so well with one of the candidates tried."""

    payload: int
    agreeing: int
    rate: float

    @property
    def confirmed(self) -> bool:
        return self.rate <= FALSE_POSITIVE_RATE


def best_candidate(reading: NoiseReading, candidates: Sequence[int], tries: int | None = None) -> Confirmation | None:
    """The candidate ``reading`` agrees with most (None without candidates). ``tries``: how many
    candidates were tried in all (several keys' readings: the candidates times the keys)."""
    best: tuple[int, int] | None = None
    for start in range(0, len(candidates), CANDIDATES_AT_ONCE):
        chunk = candidates[start : start + CANDIDATES_AT_ONCE]
        agreeing = (coded_bits_of_many(chunk) == reading.bits).sum(axis=1)
        index = int(agreeing.argmax())
        if best is None or agreeing[index] > best[0]:
            best = (int(agreeing[index]), chunk[index])
    if best is None:
        return None
    count = tries if tries is not None else len(candidates)
    return Confirmation(payload=best[1], agreeing=best[0], rate=min(1.0, count * false_positive_rate(best[0])))

"""The proof-of-memory sequence both sides compute: the agent fills the GPU's memory with it,
the coordinator (or `attest` on its own) checks the words read back at positions chosen after
the fill.

Word `i` of the fill for `seed` is the `i`-th output of SplitMix64 started at `seed`
(Steele, Lea and Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014): a
counter-based generator, so the GPU fills in parallel and a checker computes any word alone.
The CUDA kernel (agent/attest/attest.cu) and the fake libcuda of the tests compute the same.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

MASK = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


def word(seed: int, index: int) -> int:
    """The fill's word at `index` (0-based)."""
    z = (seed + (index + 1) * GAMMA) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def expected(seed: int, positions: Iterable[int]) -> list[int]:
    return [word(seed, i) for i in positions]


def new_seed() -> int:
    """A fresh 64-bit nonce: a fill recorded for an earlier seed answers nothing right."""
    return secrets.randbits(64)


def choose_positions(words: int, count: int) -> list[int]:
    """`count` distinct positions below `words`, spread over the whole fill: one drawn in each
    of `count` equal slices, so the far end of memory is always probed."""
    if words <= 0 or count <= 0:
        return []
    count = min(count, words)
    step = words / count
    return [int(k * step) + secrets.randbelow(max(1, int(step))) for k in range(count)]

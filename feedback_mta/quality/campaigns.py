"""Campaigns: the same, or nearly the same, comments in many leads (pure).

Form spam is sent by the thousand with the words spun a little, so an exact match finds
little. Each lead's comments become a set of word shingles (three words in a row); a
MinHash signature of ``HASHES`` values estimates how much two sets overlap (Broder, "On
the resemblance and containment of documents", 1997), and locality-sensitive hashing cuts
it into ``BANDS`` bands of ``ROWS``: two leads that share any band overlap by about
(1/BANDS)^(1/ROWS), 0.46 here, or more with high probability (Leskovec, Rajaraman and
Ullman, "Mining of Massive Datasets", chapter 3): a spun pitch (overlap about 0.5) matches
its sibling 7 times in 10, two buyers' questions built alike (about 0.14) 3 times in 100.
The bands are stored per lead; a new lead's bands are looked up among the last hours'
leads, by index, not compared pairwise.

Short comments ("Is it still available?") are what every buyer writes: they get no bands.
"""

from __future__ import annotations

import hashlib
import re
import sys
from array import array

HASHES = 30
BANDS = 10
ROWS = HASHES // BANDS
#: Fewer words than this: too common to call a campaign.
MIN_WORDS = 8
_PRIME = (1 << 61) - 1
_WORD = re.compile(r"[^\W_]+")


def _seeds() -> tuple[tuple[int, int], ...]:
    """Fixed (a, b) pairs for the hash functions: the same on every node and every run."""
    out = []
    for i in range(HASHES):
        digest = hashlib.blake2b(f"minhash:{i}".encode(), digest_size=16).digest()
        a = int.from_bytes(digest[:8], "big") % _PRIME or 1
        b = int.from_bytes(digest[8:], "big") % _PRIME
        out.append((a, b))
    return tuple(out)


_SEEDS = _seeds()


def shingles(text: str) -> set[int]:
    """The 64-bit hashes of the comments' word 3-grams (lower case, digits kept)."""
    words = [w.lower() for w in _WORD.findall(text or "")]
    if len(words) < MIN_WORDS:
        return set()
    return {int.from_bytes(hashlib.blake2b(" ".join(words[i:i + 3]).encode(),
                                           digest_size=8).digest(), "big")
            for i in range(len(words) - 2)}


#: ``signature`` works on all the shingles at once, each in a slot of this many bytes of
#: one integer: ``a * s + b`` (under 2**126) fits in one without reaching the next.
_SLOT = 16
_LOW = (1 << 61) - 1  # a slot's low 61 bits
_HIGH = (1 << 67) - 1  # after a shift by 61: the rest of the slot


def signature(found: set[int]) -> tuple[int, ...]:
    """MinHash: per hash function ``(a, b)`` of ``_SEEDS``, the least
    ``(a * s + b) % _PRIME`` over the shingles ``s``.

    The part of a long lead's scoring that grows with its words (30 hash functions times
    the shingles), worked out in about 15 operations on one integer per hash function
    instead of 3 per shingle: the shingles packed in ``_SLOT``-byte slots, ``x % (2**61 -
    1)`` taken as ``(x & (2**61 - 1)) + (x >> 61)`` (a Mersenne prime) in every slot at
    once, twice, then once more on ``x + 1`` less 1 to bring a slot of ``_PRIME`` or more
    under it; the least slot read from their bytes. The same values as the loop over each
    shingle and hash function, in half its time for a comment of 200 words."""
    if not found:
        return ()
    n = len(found)
    packed = int.from_bytes(b"".join(s.to_bytes(_SLOT, "little") for s in found), "little")
    ones = int.from_bytes((b"\x01" + bytes(_SLOT - 1)) * n, "little")
    low, high = _LOW * ones, _HIGH * ones
    out = []
    for a, b in _SEEDS:
        x = a * packed + b * ones  # every slot under 2**126
        x = (x & low) + ((x >> 61) & high)  # under 2**66
        x = (x & low) + ((x >> 61) & high) + ones  # x % _PRIME + 1, or x % _PRIME + _PRIME + 1
        x = (x & low) + ((x >> 61) & high) - ones  # x % _PRIME
        slots = array("Q", x.to_bytes(_SLOT * n, "little"))
        if sys.byteorder == "big":
            slots.byteswap()
        out.append(min(slots[::2]))  # each slot's low 8 bytes: its value, under 2**61
    return tuple(out)


def bands(comments: str) -> list[int]:
    """The comments' LSH band keys (signed 63-bit, for a BIGINT column); none when short."""
    sig = signature(shingles(comments))
    if not sig:
        return []
    out = []
    for band in range(BANDS):
        rows = sig[band * ROWS:(band + 1) * ROWS]
        digest = hashlib.blake2b(repr((band, rows)).encode(), digest_size=8).digest()
        out.append(int.from_bytes(digest, "big", signed=True) >> 1)
    return out


def resemblance(a: str, b: str) -> float:
    """Estimated Jaccard overlap of two comments' shingles (for tests and the bench)."""
    sa_, sb = signature(shingles(a)), signature(shingles(b))
    if not sa_ or not sb:
        return 0.0
    return sum(x == y for x, y in zip(sa_, sb, strict=True)) / HASHES

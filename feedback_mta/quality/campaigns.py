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

HASHES = 30
BANDS = 10
ROWS = HASHES // BANDS
#: Fewer words than this: too common to call a campaign.
MIN_WORDS = 8
_PRIME = (1 << 61) - 1
_MASK = (1 << 61) - 1
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


def signature(found: set[int]) -> tuple[int, ...]:
    """MinHash: per hash function, the least value over the shingles."""
    if not found:
        return ()
    return tuple(min(((a * s + b) % _PRIME) & _MASK for s in found) for a, b in _SEEDS)


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

"""Is this a person's name? The check that finds contacts a form bot made up.

``check(first, last)`` returns the reasons a name is clearly not a name (empty: it may be
one). It is pure and offline, and it must not hit real names of any culture: a name is only
called junk for something no naming tradition does.

- **digits**, an **email address** or a **URL** in a name;
- **no letters** at all (``...``, ``-``), **one letter repeated** (``aaaa``, ``Xxxxx``), a
  short piece repeated (``asdasd``, ``hahaha``);
- **absurd length** (a field longer than any name, or more words than one);
- **keyboard mash**: a run along a keyboard row (``asdf``, ``ertyui``) or a word typed with
  neighbouring keys only (``kjhgfd``);
- **random letters**: letters in an order names never have. A character trigram model of
  real first and last names from many locales (``data/name_trigrams.json``, built by
  ``bench/names.py --train``) scores each Latin-script word; a word far less likely than
  any real name is junk. Words in other scripts are not scored (bots type Latin), and short
  words (``Li``, ``Ng``, ``Ito``) never are;
- **random mixed case** (``hGtRfDsE``; ``McDonald``, ``DeShawn``, ``VanDerBeek`` are fine);
- **the same junk in both fields**: an identical first and last name that also scores low
  (``Ahmed Ahmed`` is a real name; ``Ksdjfh Ksdjfh`` is not).

``bench/names.py`` measures the false-positive rate on real names (Faker's locales and the
names-dataset package) and the recall on bot-style names; docs/benchmarks.md gives them.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

DIGITS = "digits in name"
EMAIL = "email address in name"
URL = "URL in name"
NO_LETTERS = "no letters in name"
REPEATED = "one letter repeated"
REPEATED_PIECE = "repeated piece"
TOO_LONG = "absurd length"
MASH = "keyboard mash"
RANDOM = "random letters"
MIXED_CASE = "random mixed case"
SAME_JUNK = "same junk in both fields"

#: Longest field and word we take for a name. The longest real ones we know of are about
#: 35 letters in one word (Hawaiian, German double names written together).
MAX_FIELD = 70
MAX_WORD = 40
MAX_WORDS = 8
#: Mean log2-probability per trigram below which a word is random letters, and the looser
#: one for a first name equal to the last name. Chosen on held-out real names (bench/names.py).
RANDOM_THRESHOLD = -5.3
SAME_THRESHOLD = -5.0
#: Trigrams seen fewer times than this in the training names count as never seen.
RARE_COUNT = 3
#: A word with this many never-seen trigrams is random whatever its mean.
RARE_LIMIT = 3
#: Words shorter than this are never scored: too little to tell (``Ng``, ``Xu``, ``Ito``).
MIN_SCORED = 4

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_KEY = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}
_SPECIAL = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ð": "d", "þ": "th",
                          "ł": "l", "đ": "d", "ı": "i", "ħ": "h", "ŋ": "ng", "ə": "e"})
_URL = re.compile(r"(?i)(?:https?:|www\.|://|\.(?:com|net|org|info|biz|ru|cn|xyz|top|site|"
                  r"online|io|co|me|club|shop|pro|link|click|tk|ml|ga|cf|gq|su|ua|de|uk)\b)")
_EMAIL = re.compile(r"\S@\S+\.\S")
_TOKEN = re.compile(r"[^\s\-‐–'’ʻʼ.,()]+")


@functools.cache
def _script(char: str) -> str:
    name = unicodedata.name(char, "")
    first = name.split(" ", 1)[0]
    if first in ("HIRAGANA", "KATAKANA", "CJK", "IDEOGRAPHIC"):
        return "CJK"
    return first or "?"


def fold(word: str) -> str:
    """Lower-case a-z only: accents dropped, ß -> ss, ø -> o, þ -> th, and so on."""
    word = unicodedata.normalize("NFKD", word.lower().translate(_SPECIAL))
    return "".join(c for c in word if "a" <= c <= "z")


def latin_words(name: str) -> list[str]:
    """The Latin-script words of a name, folded (``'O'Brien'`` -> ``o``, ``brien``)."""
    words = []
    for token in _TOKEN.findall(name):
        letters = [c for c in token if c.isalpha()]
        if letters and all(_script(c) == "LATIN" for c in letters):
            folded = fold(token)
            if folded:
                words.append(folded)
    return words


@dataclass(frozen=True)
class TrigramModel:
    """Counts of letter trigrams in real names (``^`` starts a word, ``$`` ends it)."""

    trigrams: dict[str, int]
    contexts: dict[str, int]
    bigrams: dict[str, int]
    unigrams: dict[str, int]
    total: int

    @classmethod
    def from_counts(cls, trigrams: dict[str, int]) -> TrigramModel:
        contexts: dict[str, int] = {}
        bigrams: dict[str, int] = {}
        unigrams: dict[str, int] = {}
        for tri, n in trigrams.items():
            contexts[tri[:2]] = contexts.get(tri[:2], 0) + n
            bigrams[tri[1:]] = bigrams.get(tri[1:], 0) + n
            unigrams[tri[1]] = unigrams.get(tri[1], 0) + n
        return cls(trigrams, contexts, bigrams, unigrams, sum(trigrams.values()))

    @classmethod
    def train(cls, words: Iterable[str]) -> TrigramModel:
        counts: dict[str, int] = {}
        for word in words:
            padded = f"^^{word}$"
            for i in range(len(padded) - 2):
                counts[padded[i:i + 3]] = counts.get(padded[i:i + 3], 0) + 1
        return cls.from_counts(counts)

    def score(self, word: str) -> tuple[float, int]:
        """Mean log2 P(letter | two before) over the word, and how many of its trigrams are
        (nearly) never seen in real names. Interpolated with bigrams and unigrams so one odd
        trigram does not sink a real name."""
        padded = f"^^{word}$"
        total, rare = 0.0, 0
        tri, ctx, bi, uni = self.trigrams, self.contexts, self.bigrams, self.unigrams
        for i in range(len(padded) - 2):
            t = padded[i:i + 3]
            n3 = tri.get(t, 0)
            c2 = ctx.get(t[:2], 0)
            c1 = uni.get(t[1], 0)
            p = (0.6 * (n3 / c2 if c2 else 0.0)
                 + 0.3 * (bi.get(t[1:], 0) / c1 if c1 else 0.0)
                 + 0.1 * uni.get(t[2], 0) / self.total)
            total += math.log2(p + 1e-7)
            rare += n3 < RARE_COUNT
        return total / (len(padded) - 2), rare


@functools.cache
def model() -> TrigramModel:
    """The shipped model (loaded once, on first use)."""
    data = json.loads(resources.files("feedback_mta.quality").joinpath("data/name_trigrams.json")
                      .read_text(encoding="utf-8"))
    return TrigramModel.from_counts(data["trigrams"])


def _keyboard_run(word: str) -> int:
    """Longest run of keys along one keyboard row in one direction (``asdf``, ``poiu``);
    back and forth (``sasa``, ``rere``) is how real names go, so it does not count."""
    best = run = 1
    direction = 0
    for a, b in itertools.pairwise(word):
        ra, ia = _KEY.get(a, (-1, -9))
        rb, ib = _KEY.get(b, (-2, -9))
        step = ib - ia if ra == rb and abs(ib - ia) == 1 else 0
        if step and (step == direction or run == 1):
            run += 1
        else:
            run = 2 if step else 1
        direction = step
        best = max(best, run)
    return best


_POS = {c: (r, i + 0.5 * r) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}


def _neighbour_share(word: str) -> float:
    """Share of letter pairs typed with the same or a neighbouring key (any direction)."""
    pairs = list(itertools.pairwise(word))
    if not pairs:
        return 0.0
    near = 0
    for a, b in pairs:
        (ra, ca), (rb, cb) = _POS[a], _POS[b]
        near += abs(ra - rb) <= 1 and abs(ca - cb) <= 1.0
    return near / len(pairs)


def _repeated_piece(word: str) -> bool:
    """``hahaha``, ``asdasd``, ``xyzxyzxy``: a piece of 1-4 letters repeated 3 times or more,
    or a piece of 3-4 letters twice that is itself a keyboard run."""
    n = len(word)
    for size in range(1, 5):
        if n < 2 * size:
            break
        piece = word[:size]
        if (piece * (n // size + 1))[:n] != word:
            continue
        reps = n / size
        if reps >= 3 or (size >= 3 and _keyboard_run(piece) >= 3):
            return True
    return False


def _mixed_case(token: str) -> bool:
    """Random case (``nonIUjHI``, ``hGtRfDsE``), not ``McDonald``, ``DeSHAWN`` or
    ``VanDerBeek``: three or more lower-to-upper switches, or two where the parts they start
    are not each a capital and lower-case letters."""
    letters = "".join(c for c in token if c.isalpha())
    if len(letters) < 5:
        return False
    cuts = [i + 1 for i, (a, b) in enumerate(itertools.pairwise(letters))
            if a.islower() and b.isupper()]
    if len(cuts) >= 3:
        return True
    if len(cuts) < 2:
        return False
    parts = [letters[a:b] for a, b in zip(cuts, [*cuts[1:], len(letters)], strict=False)]
    return not all(p[0].isupper() and p[1:].islower() for p in parts)


def _field_reasons(field: str, scored: dict[str, float]) -> list[str]:
    reasons: list[str] = []
    text = field.strip()
    if not text:
        return reasons
    if _EMAIL.search(text):
        reasons.append(EMAIL)
    elif _URL.search(text):
        reasons.append(URL)
    if any(c.isdigit() for c in text):
        reasons.append(DIGITS)
    letters = [c for c in text if c.isalpha()]
    if not letters:
        if not reasons:
            reasons.append(NO_LETTERS)
        return reasons
    if len(text) > MAX_FIELD or len(text.split()) > MAX_WORDS:
        reasons.append(TOO_LONG)
    if (len(letters) >= 3 and len({c.lower() for c in letters}) == 1
            and _script(letters[0]) in ("LATIN", "CYRILLIC", "GREEK")):
        reasons.append(REPEATED)
        return reasons
    if reasons:
        return reasons
    if not any(_script(c) == "LATIN" for c in letters):
        return reasons
    if any(_mixed_case(token) for token in _TOKEN.findall(text)):
        reasons.append(MIXED_CASE)
    m = model()
    for word in latin_words(text):
        if len(word) > MAX_WORD:
            reasons.append(TOO_LONG)
            break
        if len(word) >= 3 and re.search(r"(.)\1\1\1", word):
            reasons.append(REPEATED)
            break
        if len(word) >= 6 and _repeated_piece(word):
            reasons.append(REPEATED_PIECE)
            break
        run = _keyboard_run(word)
        if run >= 5 or (len(word) >= 4 and run == len(word)):
            reasons.append(MASH)
            break
        if len(word) < MIN_SCORED:
            continue
        mean, rare = m.score(word)
        scored[word] = mean
        if mean < RANDOM_THRESHOLD or rare >= RARE_LIMIT:
            reasons.append(MASH if len(word) >= 6 and _neighbour_share(word) >= 0.8 else RANDOM)
            break
    return reasons


def check(first: str, last: str) -> tuple[str, ...]:
    """Why ``first`` / ``last`` is clearly not a person's name; empty when it may be one.

    An empty field is no evidence either way (many forms ask for one name only)."""
    scored: dict[str, float] = {}
    reasons: list[str] = []
    for field in (first or "", last or ""):
        for reason in _field_reasons(field, scored):
            if reason not in reasons:
                reasons.append(reason)
    if not reasons:
        a, b = latin_words(first or ""), latin_words(last or "")
        if a and a == b and all(scored.get(w, 0.0) < SAME_THRESHOLD for w in a
                                if len(w) >= MIN_SCORED) and any(len(w) >= MIN_SCORED
                                                                 for w in a):
            reasons.append(SAME_JUNK)
    return tuple(reasons)

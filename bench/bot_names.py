"""Bot-style names, the way form bots fill name fields, for measuring the name check's recall.

Each generator returns ``(first, last)``; ``generate(n, seed)`` mixes every category in equal
shares, so recall can be reported per category. The categories follow what the issue names
(keyboard mashes, random letter runs, digits, URLs or addresses in a name, one letter
repeated, absurd length, the same junk in both fields) plus the mixed-case strings of
XRumer-style bots. A real name is never produced here on purpose; where a category pairs junk
with a real name (a bot filling one field well), the real one comes from ``REAL``.
"""

from __future__ import annotations

import random
import string

ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
#: Real names a bot may put in the other field (and the base of "name + digits").
REAL = ("John", "Maria", "Smith", "Garcia", "Wei", "Anna", "Müller", "Okafor", "Priya", "Kim",
        "Nguyen", "Olga", "Ahmed", "Sato", "Lucas", "Fatima", "Jones", "Rossi", "Ivan", "Li")
TLDS = ("com", "net", "ru", "info", "xyz", "top", "online", "biz", "site", "io", "cn", "org")
_NEIGHBOURS: dict[str, str] = {}
for _r, _row in enumerate(ROWS):
    for _i, _c in enumerate(_row):
        near = _row[max(0, _i - 1):_i] + _row[_i + 1:_i + 2]
        for _dr in (-1, 1):
            if 0 <= _r + _dr < len(ROWS):
                other = ROWS[_r + _dr]
                near += other[max(0, _i - 1):_i + 1]
        _NEIGHBOURS[_c] = near


def _case(rnd: random.Random, word: str) -> str:
    return rnd.choice((word.lower(), word.capitalize(), word.upper(), word.capitalize()))


def random_letters(rnd: random.Random) -> str:
    return _case(rnd, "".join(rnd.choice(string.ascii_lowercase)
                              for _ in range(rnd.randint(5, 14))))


def keyboard_mash(rnd: random.Random) -> str:
    if rnd.random() < 0.4:  # a slice of a row, maybe repeated: asdf, qwerty, asdasd
        row = rnd.choice(ROWS)
        start = rnd.randrange(0, len(row) - 3)
        piece = row[start:start + rnd.randint(3, len(row) - start)]
        word = piece * rnd.randint(1, 3) if len(piece) < 5 else piece
        return _case(rnd, word if len(word) >= 4 else word * 2)
    key = rnd.choice(string.ascii_lowercase)
    word = key
    for _ in range(rnd.randint(4, 11)):
        key = rnd.choice(_NEIGHBOURS[key])
        word += key
    return _case(rnd, word)


def mixed_case(rnd: random.Random) -> str:
    return "".join(rnd.choice((c.lower(), c.upper()))
                   for c in rnd.choices(string.ascii_letters, k=rnd.randint(6, 14)))


def with_digits(rnd: random.Random) -> str:
    kind = rnd.randrange(4)
    if kind == 0:
        return rnd.choice(REAL) + str(rnd.randint(1, 99999))
    if kind == 1:
        return str(rnd.randint(10, 10**9))
    if kind == 2:  # leetspeak
        return rnd.choice(REAL).replace("o", "0").replace("i", "1").replace("a", "4") + "1"
    return "".join(rnd.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def url(rnd: random.Random) -> str:
    host = "".join(rnd.choice(string.ascii_lowercase) for _ in range(rnd.randint(4, 10)))
    tld = rnd.choice(TLDS)
    return rnd.choice((f"http://{host}.{tld}", f"https://{host}.{tld}/p?id=1", f"www.{host}.{tld}",
                       f"{host}.{tld}", f"Visit {host}.{tld} now"))


def email(rnd: random.Random) -> str:
    user = rnd.choice(REAL).lower() + str(rnd.randint(1, 999))
    return f"{user}@{rnd.choice(('gmail.com', 'mail.ru', 'yahoo.com', 'qq.com'))}"


def repeated(rnd: random.Random) -> str:
    return _case(rnd, rnd.choice(string.ascii_lowercase) * rnd.randint(3, 12))


def absurd_length(rnd: random.Random) -> str:
    words = [rnd.choice(REAL) for _ in range(rnd.randint(12, 30))]
    if rnd.random() < 0.5:
        return " ".join(words)
    return "".join(w.lower() for w in words)


def syllable_repeat(rnd: random.Random) -> str:
    piece = "".join(rnd.choice(string.ascii_lowercase) for _ in range(rnd.randint(2, 4)))
    return _case(rnd, piece * rnd.randint(3, 5))


JUNK = {
    "random letters": random_letters,
    "keyboard mash": keyboard_mash,
    "mixed case": mixed_case,
    "digits": with_digits,
    "url": url,
    "email": email,
    "one letter repeated": repeated,
    "absurd length": absurd_length,
    "syllable repeated": syllable_repeat,
}


def pair(rnd: random.Random, category: str) -> tuple[str, str]:
    """A (first, last) pair from one category: both fields junk, or one junk and one real,
    or the same junk in both fields."""
    make = JUNK[category]
    shape = rnd.randrange(4)
    if shape == 0:
        return make(rnd), make(rnd)
    if shape == 1:
        junk = make(rnd)
        return junk, junk
    if shape == 2:
        return make(rnd), rnd.choice(REAL)
    return rnd.choice(REAL), make(rnd)


def generate(n: int, seed: int = 1) -> list[tuple[str, str, str]]:
    """``n`` (category, first, last) rows, categories in equal shares."""
    rnd = random.Random(seed)
    categories = list(JUNK)
    return [(c, *pair(rnd, c)) for c in (categories[i % len(categories)] for i in range(n))]

"""flufl.bounce's detectors, run as ``flufl.bounce.all_failures`` runs them (in its order,
stopping at the first that finds an address), with three differences:

* its generic ``SimpleMatch`` and ``SimpleWarning`` detectors read the bounce's lines once
  instead of once per pattern set (they have 42 and 6), and skip a set whose start pattern
  is nowhere in the text (its first words looked up in the whole text, or one search of
  it, where flufl.bounce searches each line): the same matches, a small part of the time
  (they were a fifth of a mailbox-wide ``parse``);
* a detector is not run where it cannot find anything: qmail's and Exchange's without
  their start markers in the text, Yahoo's, Yale's, AOL's and Exim's without their
  sender or header;
* a detector that raises is skipped (flufl.bounce gives up on the whole message).

``tests/test_formats.py`` checks that both give the same addresses on every sample. Uses
flufl.bounce 6's detector list (pinned in ``pyproject.toml``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from email.iterators import body_line_iterator
from email.message import Message

from flufl.bounce._detectors import (
    aol,
    exchange,
    exim,
    qmail,
    simplematch,
    simplewarning,
    yahoo,
    yale,
)
from flufl.bounce._interfaces import BounceDetector
from flufl.bounce._scan import _DETECTORS

# flufl.bounce logs every detector it runs at INFO, and detector errors: we report ours.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL + 1)

Found = frozenset[bytes]


def _in_whole_text(pattern: re.Pattern[str]) -> re.Pattern[str] | None:
    """``pattern`` to search all lines at once (joined by newlines), finding it wherever it
    is in one line: line anchors become multiline ones; None when a line match might not
    show in the joined text (lookbehinds, ``\\B``, ``\\A``, ``\\Z``)."""
    source = pattern.pattern
    if any(token in source for token in ("(?<", "\\B", "\\A", "\\Z")):
        return None
    if "^" in source or "$" in source:
        return re.compile(source, pattern.flags | re.MULTILINE)
    return pattern


_META = frozenset(".^$*+?{}[]|()")


def _literal(pattern: re.Pattern[str]) -> str:
    """The words every match of ``pattern`` starts with, lower-cased (at least 4 ASCII
    characters, else ""): in an ASCII text, a set whose start pattern's words are not in
    the lower-cased text cannot start, and ``in`` finds that many times faster than a
    case-insensitive search."""
    source = pattern.pattern
    words: list[str] = []
    at = 1 if source.startswith("^") else 0
    while at < len(source):
        char = source[at]
        if char == "\\" and at + 1 < len(source) and not source[at + 1].isalnum():
            words.append(source[at + 1])  # an escaped punctuation mark stands for itself
            at += 2
        elif char == "\\" or char in _META:
            break
        else:
            words.append(char)
            at += 1
    if at < len(source) and source[at] in "*+?{" and words:
        words.pop()  # the last one is optional or repeated
    literal = "".join(words).lower()
    return literal if len(literal) >= 4 and literal.isascii() else ""


def _prefilters(patterns: Sequence[tuple[re.Pattern[str], ...]]
                ) -> tuple[tuple[re.Pattern[str] | None, str], ...]:
    """For each pattern set, its start pattern for the whole text and its first words."""
    return tuple((_in_whole_text(start), _literal(start)) for start, *_ in patterns)


class _Body:
    """A bounce's body lines (as ``body_line_iterator`` gives them), read once for all the
    detectors that look at them, and the text they make."""

    def __init__(self, msg: Message) -> None:
        try:
            self.lines = list(body_line_iterator(msg))
        except Exception:  # a charset Python cannot decode with: every detector that
            self.lines = []  # reads the lines would raise, and be skipped
        self.text = "\n".join(self.lines)
        self.lowered = self.text.lower() if self.text.isascii() else None


class SimpleMatch(simplematch.SimpleMatch):
    """``SimpleMatch`` with the lines read once, and pattern sets that cannot start
    skipped."""

    PREFILTERS = _prefilters(simplematch.PATTERNS)

    def process(self, msg: Message) -> tuple[Found, Found]:
        return self.read(_Body(msg))

    def read(self, body: _Body) -> tuple[Found, Found]:
        addresses: set[bytes] = set()
        for (scre, ecre, acre), (start, literal) in zip(self.PATTERNS, self.PREFILTERS,
                                                        strict=True):
            if body.lowered is not None and literal:
                if literal not in body.lowered:
                    continue  # no line can match scre: the loop below would find nothing
            elif start is not None and not start.search(body.text):
                continue
            seen = False
            for line in body.lines:
                if not seen and scre.search(line):
                    seen = True
                if seen:
                    if found := acre.search(line):
                        if address := found.group("addr"):
                            addresses.add(simplematch._quopri_decode(address))
                    elif ecre.search(line):
                        break
            if addresses:
                break
        return frozenset(), frozenset(a for a in addresses if simplematch.VALID.match(a))


class SimpleWarning(SimpleMatch):
    """``SimpleWarning``: the same reading over its own patterns; what it finds is a
    temporary failure."""

    PATTERNS = simplewarning.PATTERNS
    PREFILTERS = _prefilters(simplewarning.PATTERNS)

    def read(self, body: _Body) -> tuple[Found, Found]:
        _, found = super().read(body)
        return found, frozenset()


_OURS: dict[type[BounceDetector], type[BounceDetector]] = {
    simplematch.SimpleMatch: SimpleMatch, simplewarning.SimpleWarning: SimpleWarning}
DETECTORS = tuple(_OURS.get(d, d) for d in _DETECTORS)

#: Detectors that find nothing unless one of these strings is in a line of the bounce
#: (their start markers, matched case-sensitively in a line): skipped on a text without
#: any, where each walked the whole message.
_NEEDS: dict[type[BounceDetector], tuple[str, ...]] = {
    qmail.Qmail: tuple(qmail.introtags),
    exchange.Exchange: (exchange.scre.pattern,),
}


def _sender_could_be(msg: Message, *atoms: str) -> bool:
    """Could flufl.bounce's address parser find a From whose parts are ``atoms``? Without
    comments, quotes or escapes in the header, what it returns is made of the header's own
    runs of characters, so each atom must be in it; with them, it might be: yes."""
    sender = str(msg.get("from", "")).lower()
    return any(c in sender for c in '("\\') or all(atom in sender for atom in atoms)


#: Detectors that find nothing when the sender cannot be theirs (each parses the From
#: header first, the costly part of their run on others' bounces).
_SENDERS: dict[type[BounceDetector], Callable[[Message], bool]] = {
    yahoo.Yahoo: lambda msg: _sender_could_be(msg, "mailer-daemon", "yahoo"),
    yale.Yale: lambda msg: not msg.is_multipart() and _sender_could_be(
        msg, "mailer-daemon", "yale", "edu"),
    aol.AOL: lambda msg: msg.get_content_type() == "text/plain" and _sender_could_be(
        msg, "aol", "com"),
    exim.Exim: lambda msg: "x-failed-recipients" in msg,
}


def all_failures(msg: Message) -> tuple[Found, Found]:
    """(temporary, permanent) failed addresses, as ``flufl.bounce.all_failures``."""
    body: _Body | None = None
    for detector in DETECTORS:
        needs, could = _NEEDS.get(detector), _SENDERS.get(detector)
        if needs:
            body = body or _Body(msg)
            if not any(marker in body.text for marker in needs):
                continue
        if could is not None and not could(msg):
            continue
        try:
            if issubclass(detector, SimpleMatch):  # ours: the lines already read
                body = body or _Body(msg)
                temporary, permanent = detector().read(body)
            else:
                temporary, permanent = detector().process(msg)
        except Exception:  # noqa: S112 - one detector's trouble with odd MIME
            continue
        if temporary or permanent:
            return frozenset(temporary), frozenset(permanent)
    return frozenset(), frozenset()

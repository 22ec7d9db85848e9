"""flufl.bounce's detectors, run as ``flufl.bounce.all_failures`` runs them (in its order,
stopping at the first that finds an address), with two differences:

* its generic ``SimpleMatch`` detector reads the bounce's lines once instead of once per
  pattern set (it has 38): the same matches, a quarter of the time, which was a fifth of
  a mailbox-wide ``parse``;
* a detector that raises is skipped (flufl.bounce gives up on the whole message).

``tests/test_formats.py`` checks that both give the same addresses on every sample. Uses
flufl.bounce 6's detector list (pinned in ``pyproject.toml``).
"""

from __future__ import annotations

import logging
from email.iterators import body_line_iterator
from email.message import Message

from flufl.bounce._detectors import simplematch
from flufl.bounce._scan import _DETECTORS

# flufl.bounce logs every detector it runs at INFO, and detector errors: we report ours.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL + 1)

Found = frozenset[bytes]


class SimpleMatch(simplematch.SimpleMatch):
    """``SimpleMatch`` with the lines read once."""

    def process(self, msg: Message) -> tuple[Found, Found]:
        lines = list(body_line_iterator(msg))
        addresses: set[bytes] = set()
        for scre, ecre, acre in self.PATTERNS:
            seen = False
            for line in lines:
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


DETECTORS = tuple(SimpleMatch if d is simplematch.SimpleMatch else d for d in _DETECTORS)


def all_failures(msg: Message) -> tuple[Found, Found]:
    """(temporary, permanent) failed addresses, as ``flufl.bounce.all_failures``."""
    for detector in DETECTORS:
        try:
            temporary, permanent = detector().process(msg)
        except Exception:  # noqa: S112 - one detector's trouble with odd MIME
            continue
        if temporary or permanent:
            return frozenset(temporary), frozenset(permanent)
    return frozenset(), frozenset()

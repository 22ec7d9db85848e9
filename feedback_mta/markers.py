"""Lines of our lead notification that say how to use it. A leaf: the config's default for
``[replies] markers`` and the reply reader's, without the reader loading the config."""

from __future__ import annotations

#: Wherever one appears in a reply, what follows is the quoted notification (lower-case
#: substrings, matched after accents are folded).
NOTIFICATION_MARKERS = (
    "reply spam to flag",
    "reply not spam to undo",
    "reply not spam to restore",
)

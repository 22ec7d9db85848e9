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

#: Lines of a confirmation request (``Reply-To: confirm+TOKEN``) that say how to answer it:
#: wherever one appears in a reply, what follows is the quoted request, so its own "reply
#: YES" never counts, even quoted without marks. The request must word its instruction so.
CONFIRMATION_MARKERS = (
    "reply yes",
    "reply no",
    'reply "yes"',
    "reply \u201cyes\u201d",
    "reply with yes",
    "reply with a yes",
    "answer yes",
    "to confirm, reply",
)

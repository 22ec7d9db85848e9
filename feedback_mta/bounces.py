"""The reasons a recipient bounces, in Sisimai's vocabulary (https://libsisimai.org/en/reason/),
and which of them make a bounce hard unless ``[feedback] hard_reasons`` says otherwise. A
leaf: the config checks names against it, ``reading.reasons`` finds them in bounces."""

from __future__ import annotations

#: Every reason; the last three are not bounces (a delivery report, an auto-reply, a
#: feedback-loop report), named so that every report has a word.
REASONS = (
    "userunknown", "hostunknown", "hasmoved", "mailboxfull", "mesgtoobig", "exceedlimit",
    "suspend", "blocked", "rejected", "spamdetected", "policyviolation", "securityerror",
    "virusdetected", "authfailure", "badreputation", "requireptr", "notcompliantrfc",
    "norelaying", "notaccept", "contenterror", "syntaxerror", "systemerror", "systemfull",
    "networkerror", "expired", "toomanyconn", "ratelimited", "speeding", "failedstarttls",
    "filtered", "mailererror", "suppressed", "onhold", "undefined",
    "delivered", "vacation", "feedback",
)

#: Reasons that say the address itself is gone (or that the sending platform's own
#: suppression list holds it): one such bounce makes the contact unmailable.
HARD = frozenset({"userunknown", "hostunknown", "hasmoved", "notaccept", "suppressed"})

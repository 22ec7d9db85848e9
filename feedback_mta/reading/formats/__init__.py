"""Feedback report formats: one module per format, each with one ``detect(parsed)`` that
returns a ``Report`` or None. ``detect`` below asks them in order and the first answer wins.

The order goes from exact structure to wording:

1. ``ses``: Amazon SES JSON (a body that would otherwise look like nothing at all);
2. ``arf``: RFC 5965 / RFC 6591 feedback reports;
3. ``dsn``: RFC 3464 delivery status notifications;
4. ``jmrp``: Microsoft's non-ARF complaint mails;
5. ``abuse``: spam-trap and reporting-service mails (SpamCop, abuse desks), by wording;
6. ``apple``: Apple Mail's one-tap unsubscribe mails, by wording;
7. ``legacy_bounce``: non-standard bounces, through flufl.bounce.

Adding a format is adding a module and a line here, plus rows in the fixture table
(``tests/test_formats.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from feedback_mta.kinds import Kind
from feedback_mta.reading.formats import abuse, apple, arf, dsn, jmrp, legacy_bounce, ses
from feedback_mta.reading.formats.report import Bounced, Report
from feedback_mta.reading.parse import ParsedMessage

__all__ = ["REGISTRY", "Bounced", "Kind", "Report", "detect"]

REGISTRY: tuple[tuple[str, Callable[[ParsedMessage], Report | None]], ...] = (
    ("ses", ses.detect),
    ("arf", arf.detect),
    ("dsn", dsn.detect),
    ("jmrp", jmrp.detect),
    ("abuse", abuse.detect),
    ("apple", apple.detect),
    ("legacy_bounce", legacy_bounce.detect),
)


def detect(msg: ParsedMessage) -> Report | None:
    """The first format that recognises ``msg``, or None (then it is a reply, an
    auto-reply or unknown: ``classify`` decides)."""
    empty = None
    for _name, read in REGISTRY:
        report = read(msg)
        if report is not None and (report.recipients or report.kind is not Kind.BOUNCE):
            return report
        # A bounce that names no recipient where it should (a DSN whose recipient blocks
        # are missing): a later format may find them in its words.
        empty = empty or report
    return empty

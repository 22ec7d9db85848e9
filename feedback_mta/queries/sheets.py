"""CSV as the service writes it: every CSV goes through ``cell`` (or ``lines``), so that a
spreadsheet opening it never runs a formula from a cell.

A value that a form submitter, an ESP or a remote mail server chose (an address, an
opt-out reason, a bounce's words) can start with ``=HYPERLINK(...)``, ``+1+1`` or
``@SUM(...)``. OWASP's rule for CSV injection: a cell that begins with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return gets a single quote in front, which spreadsheets
show as text (and hide); the csv module quotes whatever else needs it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from feedback_mta.queries import iso

#: What a spreadsheet takes for the start of a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """One value as a CSV cell: empty for None, ``true``/``false``, times as everywhere
    (UTC, ISO 8601, ``Z``), and text that could start a formula behind a single quote."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = iso(value) or "" if isinstance(value, datetime) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class Writer:
    """CSV text a row at a time, every value through ``cell``; ``take`` gives what was
    written since the last ``take`` (to stream a page at a time)."""

    __slots__ = ("_out", "_writer")

    def __init__(self) -> None:
        self._out = io.StringIO()
        self._writer = csv.writer(self._out)

    def row(self, values: Iterable[Any]) -> None:
        self._writer.writerow([cell(v) for v in values])

    def take(self) -> str:
        text = self._out.getvalue()
        self._out.seek(0)
        self._out.truncate()
        return text

"""How commands print rows: JSON lines for scripts, an aligned table for people.

Kept apart from ``cli`` (and free of heavy imports) because the offline ``parse`` fast path
(``cli.parse``) prints the same way without loading the database stack.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def human(value: Any) -> str:
    """A value as people read it: lists comma-separated, objects as JSON, never a repr."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(human(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], out=None) -> None:
    """``columns`` of ``rows`` as a left-aligned table with an upper-case header line."""
    out = out or sys.stdout
    cells = [[human(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
          file=out)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out)

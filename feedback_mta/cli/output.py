"""How commands print: one object or rows, as JSON for scripts or aligned for people.

Kept apart from ``common`` (and free of heavy imports) because the fast paths, the offline
``parse`` (``cli.parse``) and the reads (``cli.reads``), print the same way without loading
typer or the models: one set of functions, so both ways print the same bytes.

Times print as the API gives them, UTC ISO 8601 with ``Z`` (``queries.iso``), in a table
as in JSON; truth values print as yes and no for people, true and false in JSON.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any, NoReturn

from feedback_mta.queries import iso


def human(value: Any) -> str:
    """A value as people read it: yes/no, times as ``iso``, lists comma-separated, objects as
    JSON, never a repr."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return iso(value) or ""
    if isinstance(value, list | tuple):
        return ", ".join(human(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(jsonable(value), ensure_ascii=False, default=str)
    return str(value)


def jsonable(obj: dict[str, Any]) -> dict[str, Any]:
    """An object's times as ``iso`` gives them, at any depth (the rest as it is)."""
    return {k: _plain(v) for k, v in obj.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return jsonable(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def emit(obj: dict[str, Any], as_json: bool) -> None:
    """One object: JSON, or ``key  value`` lines for people (lists and objects readable)."""
    obj = jsonable(obj)
    if as_json:
        print(json.dumps(obj, ensure_ascii=False, default=str))
        return
    width = max((len(k) for k in obj), default=0)
    for key, value in obj.items():
        print(f"{key:<{width}}  {human(value)}")


def emit_rows(rows: Iterable[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    """Rows: one JSON object a line, or the ``columns`` of a table for people."""
    rows = [jsonable(r) for r in rows]
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False, default=str))
        return
    table(rows, columns)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], out=None) -> None:
    """``columns`` of ``rows`` as a left-aligned table with an upper-case header line."""
    out = out or sys.stdout
    cells = [[human(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
          file=out)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out)


def leave(code: int) -> NoReturn:
    """End the process with ``code`` once stdout and stderr are written, without tearing
    the interpreter down: everything is committed and written, and dropping thousands of
    modules and objects only makes an admin wait (about 0.1 s of every command). A reader
    that stopped reading (``| head``) is left quietly."""
    for stream in (sys.stdout, sys.stderr):
        with suppress(BrokenPipeError, ValueError):  # its reader is gone (or it was closed)
            stream.flush()
    os._exit(code)

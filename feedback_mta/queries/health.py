"""``/healthz``, on the metrics listener and the API alike: does the database answer?"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from feedback_mta.logs import error_line


def health(engine: Engine) -> tuple[bool, dict[str, Any]]:
    """(healthy, details): the database answers a trivial query."""
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any failure to reach it is "unhealthy", with the reason
        return False, {"status": "unhealthy", "database": error_line(exc)}
    return True, {"status": "ok", "database": "ok",
                  "database_ms": round((time.perf_counter() - started) * 1000, 2)}

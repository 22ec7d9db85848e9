"""The garbage collector kept off the sessions' path: what start-up made is frozen.

CPython's cyclic collector walks every tracked object of the generation it collects.
``serve`` holds about 160,000 of them once started (SQLAlchemy's and FastAPI's classes,
the compiled statements, the configuration), nearly all for good; a full
(oldest-generation) collection walked them all while the event loop stood still: 100 to
150 ms, once or twice in a bench run, every session in flight waiting behind it (the p99
time-to-250 at 80% load). ``gc.freeze`` after start-up moves them to a permanent
generation that no collection visits (a full one then took 8 to 40 ms); what the
sessions allocate is still collected as before
(https://docs.python.org/3/library/gc.html#gc.freeze).
"""

from __future__ import annotations

import gc


def freeze_startup() -> int:
    """Collect start-up's garbage, then freeze what is left; the number of objects frozen.

    Called once a process has made everything it keeps (engine, handlers, listeners) and
    before it takes work."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()

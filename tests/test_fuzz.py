"""Malformed mail: property-based fuzzing of parse/classify/trim, the crashers found, and the
processor's answer to each (``processed``, ``ignored`` or ``failed`` with a reason).

Each generated message must finish within ``BUDGET`` (hypothesis' deadline): a regular
expression that backtracks on one odd header hangs a processor thread, which is worse than
an exception. The default run tries a few hundred messages of each strategy; the soak
(``-m slow``, or ``bench/fuzz.py`` with atheris) many thousands.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings

from feedback_mta.config import DatabaseConfig
from feedback_mta.service.process import process_one
from feedback_mta.store import db
from feedback_mta.store.models import InboundMessage, MessageState, utcnow
from tests.conftest import ROOT
from tests.fuzzing import BOOK, CRASHERS, ParseError, examine, messages, mutated, seeds
from tests.support import soak

for _sample in seeds()[:3]:  # imports and first-use caches, outside any deadline
    examine(_sample)

#: Generous on purpose (a loaded CI machine): what it catches is minutes and hours.
BUDGET = timedelta(seconds=5)
_FAST = settings(max_examples=250, deadline=BUDGET, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_SOAK = settings(max_examples=soak(20000, floor=100), deadline=BUDGET,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _survives(raw: bytes) -> None:
    with contextlib.suppress(ParseError):  # the processor keeps those ``failed``, with it
        examine(raw)


@_FAST
@given(messages())
def test_generated_messages(raw):
    _survives(raw)


@_FAST
@given(mutated())
def test_mutated_real_samples(raw):
    _survives(raw)


@pytest.mark.slow
@_SOAK
@given(messages())
def test_generated_messages_soak(raw):
    _survives(raw)


@pytest.mark.slow
@_SOAK
@given(mutated())
def test_mutated_real_samples_soak(raw):
    _survives(raw)


#: Crashers the fuzzers found, kept as regression fixtures: (file, outcome, what it did).
CRASHERS_TABLE = [
    ("from-one-long-run.eml", "unknown",
     "parse._BARE backtracked quadratically over a From of one 100 kB run: hours per message"),
    ("to-one-long-run.eml", "unknown", "the same in To, read for the envelope of a file"),
    ("arf-recipient-one-long-run.eml", "complaint",
     "report.address_in backtracked the same way over Original-Rcpt-To"),
    ("multipart-5000-deep.eml", "ParseError",
     "the stdlib parser spent 4 s nesting generators before a RecursionError"),
    ("rfc822-3000-deep.eml", "ParseError", "RecursionError in the stdlib parser"),
    ("charset-with-nul.eml", "reply",
     "charset=\"utf-8\\0\": bytes.decode raised ValueError, not the LookupError we caught"),
    ("arf-8bit-recipient-header.eml", "complaint",
     "an 8-bit byte in Original-Rcpt-To made compat32 return a Header object, not a str"),
    ("dsn-8bit-status-header.eml", "bounce", "the same in a DSN's Status field"),
]


def test_every_crasher_is_in_the_table():
    assert sorted(p.name for p in CRASHERS.glob("*.eml")) == sorted(r[0] for r in CRASHERS_TABLE)


@pytest.mark.parametrize(("name", "outcome", "why"), CRASHERS_TABLE)
def test_crashers_finish_in_budget(name, outcome, why):
    raw = (CRASHERS / name).read_bytes()
    started = time.perf_counter()
    try:
        result = examine(raw)
    except ParseError:
        result = "ParseError"
    assert time.perf_counter() - started < BUDGET.total_seconds(), why
    assert result == outcome


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.sqlite3"
    engine = db.create_engine(DatabaseConfig(url=f"sqlite:///{path}", sqlite_synchronous="normal"))
    db.upgrade(engine)
    yield engine
    engine.dispose()


_T = InboundMessage.__table__


def _process(engine, raw: bytes) -> tuple[str, str | None]:
    with engine.begin() as conn:
        message_id = conn.execute(sa.insert(_T).values(
            received_at=utcnow(), protocol="smtp", mail_from="x@y.test",
            rcpt_tos=json.dumps(["fbl@fb.test"]),
            size=len(raw), content_hash=f"{time.perf_counter_ns()}", raw=raw,
            state=MessageState.RECEIVED.value)).inserted_primary_key[0]
    outcome = process_one(engine, BOOK, message_id)
    with engine.connect() as conn:
        row = conn.execute(sa.select(_T.c.state, _T.c.reason, _T.c.error)
                           .where(_T.c.id == message_id)).one()
    assert outcome is not None and outcome.state.value == row.state
    return row.state, row.reason or row.error


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(messages())
def test_the_processor_ends_every_message_with_a_reason(store, raw):
    state, reason = _process(store, raw)
    assert state in ("processed", "ignored", "failed")
    assert reason


@pytest.mark.parametrize(("name", "outcome", "why"), CRASHERS_TABLE)
def test_the_processor_ends_every_crasher_with_a_reason(store, name, outcome, why):
    state, reason = _process(store, (CRASHERS / name).read_bytes())
    if outcome == "ParseError":
        assert state == "failed" and reason.startswith("ParseError: ")
    else:
        assert state in ("processed", "ignored") and reason


def test_atheris_short_run():
    """The coverage-guided fuzzer's short form: a few thousand inputs from the samples."""
    pytest.importorskip("atheris", reason="atheris has wheels for Linux x86_64, CPython <= 3.11")
    done = subprocess.run([sys.executable, "bench/fuzz.py", "--runs", "3000"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "fuzz: done" in done.stdout, done.stdout[-2000:]

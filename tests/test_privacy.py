"""Privacy: no bodies in logs, addresses masked on request, raw messages purged on time."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from feedback_mta import logs
from feedback_mta.jobs import retention
from feedback_mta.store.models import InboundMessage, utcnow
from tests.conftest import write_config
from tests.support import message, seed, send, wait_all_done

_T = InboundMessage.__table__


@pytest.mark.parametrize(("text", "masked"), [
    ("jane.doe@example.com", "j***@example.com"),
    ("Jane <jane.doe@Example.COM>, bo@b.example.org",
     "Jane <j***@Example.COM>, b***@b.example.org"),
    ("email:reply+AbC-12_x@fb.test refused", "email:r***@fb.test refused"),
    ("no address @ here", "no address @ here"),
])
def test_mask(text, masked):
    assert logs.mask(text) == masked


class _Unknown:
    def __repr__(self) -> str:
        return "<unknown>"


@pytest.mark.parametrize("mask", [False, True])
def test_a_json_line_is_what_the_processors_write(mask):
    """``serve``'s JSON lines come from one processor (``logs._JsonLine``): the same text as
    ``logs.processors`` with the JSON renderer (the console's and the tests' own), for
    every level, an exception, masked addresses, a value JSON cannot encode."""
    import structlog

    middle = [logs._mask_addresses] if mask else []
    chain = logs.processors(*middle, renderer=structlog.processors.JSONRenderer(sort_keys=False))
    fused = [structlog.contextvars.merge_contextvars, logs._JsonLine(mask)]
    try:
        1 / 0
    except ZeroDivisionError:
        import sys

        error = sys.exc_info()
    cases = [("info", {"event": "message.processed", "id": 1, "kind": "reply", "reason": None,
                       "duration_ms": 1.5}),
             ("warn", {"event": "x", "address": "jane.doe@example.com",
                       "list": ["a@b.example", 3], "other": _Unknown(), "text": "é\u2028"}),
             ("exception", {"event": "boom", "exc_info": error, "level": "given", "ts": "t"}),
             ("debug", {"event": "quiet", "exc_info": False, "nan": float("nan")})]
    structlog.contextvars.bind_contextvars(request="r1")
    try:
        for method, fields in cases:
            lines = []
            for processors in (chain, fused):
                line = dict(fields)
                for processor in processors:
                    line = processor(None, method, line)
                assert line.startswith('{"ts": "') and line[8:12].isdigit()
                lines.append(line.split('"level"', 1)[1])  # all but the time, as written
            assert lines[0] == lines[1]
    finally:
        structlog.contextvars.clear_contextvars()


@pytest.mark.parametrize("mask", [False, True])
def test_logs_never_carry_bodies_and_mask_addresses(server_factory, tmp_path, database_url,
                                                    engine, cfg, mask):
    s = seed(engine, cfg, contacts=2)
    server = server_factory(write_config(tmp_path / "c.toml", database_url,
                                         logging={"format": "json", "mask_addresses": mask}))
    secret_body = "SPAM\r\n\nmy-private-words-4711, call me on 555-0199"
    secret_subject = "Re: lead for confidential-subject-0815"
    # A reply from someone who is not the lead's admin (refused, its sender logged), an
    # unsubscribe, and a recipient we do not own.
    send(server.port, "stranger@outside.test", [s.reply],
         message(subject=secret_subject, body=secret_body, sender="stranger@outside.test"))
    send(server.port, "lead1@people.test", [s.unsubscribe(s.contact_ids[1])],
         message(subject=secret_subject, body=secret_body, sender="lead1@people.test"))
    assert send(server.port, "x@outside.test", ["nobody-here@fb.test"], b"")[0] == 550
    wait_all_done(engine, 2)
    server.wait_for("reply.refused")
    server.wait_for("contact.opted_out")
    server.stop()
    lines = "\n".join(json.dumps(e) for e in server.events)
    assert "my-private-words-4711" not in lines and "555-0199" not in lines
    assert "confidential-subject-0815" not in lines
    for address in ("stranger@outside.test", "nobody-here@fb.test"):
        assert (address in lines) is not mask
    if mask:
        assert "s***@outside.test" in lines and "n***@fb.test" in lines
        assert "@" not in lines.replace("***@", "")


def _store_old(engine, state: str, days: int, content: bytes = b"raw") -> int:
    with engine.begin() as conn:
        return conn.execute(sa.insert(_T).values(
            protocol="smtp", size=3, attempts=1, mail_from="", rcpt_tos="[]",
            content_hash=f"h{state}{days}{content!r}", raw=content,
            state=state, processed_at=utcnow() - timedelta(days=days),
            received_at=utcnow() - timedelta(days=days))).inserted_primary_key[0]


def test_purge_empties_old_final_messages_only(engine):
    old_processed = _store_old(engine, "processed", 100)
    old_ignored = _store_old(engine, "ignored", 91)
    recent = _store_old(engine, "processed", 89)
    old_failed = _store_old(engine, "failed", 400)
    assert retention.purge(engine, 90, batch=1) == 2  # in batches: all of them
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(_T.c.id, _T.c.raw, _T.c.purged_at,
                                                        _T.c.state, _T.c.size))}
    assert rows[old_processed].raw == b"" and rows[old_processed].purged_at is not None
    assert rows[old_ignored].raw == b"" and rows[old_ignored].state == "ignored"
    assert rows[recent].raw == b"raw" and rows[recent].purged_at is None
    assert rows[old_failed].raw == b"raw"  # inbox retry needs it
    assert retention.purge(engine, 90) == 0  # done once
    assert retention.purge(engine, 0) == 0  # 0: keep forever


def test_the_scheduler_purges_on_start_and_duplicates_are_still_known(
        server_factory, tmp_path, database_url, engine, cfg):
    s = seed(engine, cfg, contacts=1)
    server = server_factory(write_config(tmp_path / "c.toml", database_url,
                                         retention={"raw_days": 1}))
    raw = message(subject="unsubscribe", message_id="once@client.test")
    assert send(server.port, "", [s.unsubscribe(s.contact_ids[0])], raw)[0] == 250
    wait_all_done(engine, 1)
    server.stop()
    with engine.begin() as conn:
        conn.execute(sa.update(_T).values(processed_at=utcnow() - timedelta(days=2)))
    server = server_factory(write_config(tmp_path / "c.toml", database_url,
                                         retention={"raw_days": 1}))
    assert server.wait_for("retention.purged")["messages"] == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(_T.c.raw)).scalar() == b""
    # The same message delivered again is still recognised as a duplicate.
    assert send(server.port, "", [s.unsubscribe(s.contact_ids[0])], raw)[0] == 250
    rows = wait_all_done(engine, 2)
    assert rows[1]["state"] == "ignored" and rows[1]["duplicate_of"] == rows[0]["id"]

"""The content fingerprint that makes "the same message twice" recognisable, and the
nonces of signed webhooks committed with what they signed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from feedback_mta.edge.intake import fingerprint, header_fields, split_headers

RAW = (b"From: a@b.test\r\nSubject: hi\r\n  folded\r\nMessage-ID: <m1@b.test>\r\n\r\n"
       b"body line\r\n")


def test_message_id_and_folding():
    message_id, _ = fingerprint(RAW, ["fbl@fb.test"])
    assert message_id == "m1@b.test"
    head, body = split_headers(RAW)
    assert body == b"body line\r\n"
    assert (b"subject", b"hi folded") in header_fields(head)


def test_relay_differences_do_not_change_the_hash():
    _, h1 = fingerprint(RAW, ["fbl@fb.test"])
    relayed = (b"Received: from mx by us\r\nReturn-Path: <x@y>\r\nARC-Seal: i=1\r\n"
               b"Authentication-Results: mx; dmarc=pass\r\n" + RAW.replace(b"\r\n", b"\n"))
    _, h2 = fingerprint(relayed, ["FBL@fb.test"])
    assert h1 == h2


def test_recipients_and_content_change_the_hash():
    _, h1 = fingerprint(RAW, ["fbl@fb.test"])
    assert fingerprint(RAW, ["other@fb.test"])[1] != h1
    assert fingerprint(RAW.replace(b"body", b"Body"), ["fbl@fb.test"])[1] != h1
    assert fingerprint(RAW.replace(b"m1@", b"m2@"), ["fbl@fb.test"])[1] != h1


def test_garbage_does_not_raise():
    for raw in (b"", b"\r\n\r\n", b"no headers at all", b"\xff\xfe:\x00\r\n\r\n\x00",
                b"Message-ID:\r\n\r\n"):
        _message_id, digest = fingerprint(raw, [])
        assert len(digest) == 64


def test_a_nonce_signs_one_event_and_its_copies_only(engine):
    """In one group commit: the first arrival of a nonce wins; a copy of the same event
    (a provider's retry) is stored too, and deduplicated later; another event under that
    nonce is a replay, refused and not stored."""
    from feedback_mta.edge.intake import Arrival, Intake, Replayed
    from feedback_mta.store.models import InboundMessage

    def arrival(key: str, nonce: str) -> Arrival:
        return Arrival(b"{}", "", (), protocol="http", provider="mailgun", key=key, nonce=nonce)

    intake = Intake(engine)
    futures = [intake.submit(arrival(k, n)) for k, n in
               (("event-a", "n1"), ("event-a", "n1"), ("event-b", "n1"), ("event-c", "n2"))]
    intake.start()
    try:
        first, copy, replay, other = futures
        assert first.result(10) < copy.result(10) < other.result(10)
        with pytest.raises(Replayed):
            replay.result(10)
        # Later, in its own commit: still a replay.
        with pytest.raises(Replayed):
            intake.submit(arrival("event-d", "n2")).result(10)
    finally:
        intake.stop()
    t = InboundMessage.__table__
    with engine.connect() as conn:
        stored = conn.execute(sa.select(t.c.content_hash).order_by(t.c.id)).scalars().all()
    assert stored == ["event-a", "event-a", "event-c"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_what_arrives_while_the_writer_waits_for_the_lock_joins_its_commit(engine):
    """A processing transaction holds SQLite's write lock; the intake's batch waits for it,
    and whatever reached the intake meanwhile goes into the same commit, in order."""
    import fcntl
    import os
    import time

    from feedback_mta.edge.intake import Arrival, Intake

    holder = os.open(f"{engine.url.database}.writer", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    intake = Intake(engine)
    intake.start()
    try:
        first = intake.submit(Arrival(b"Subject: 0\r\n\r\nx", "", ("fbl@fb.test",)))
        time.sleep(0.2)  # the writer has taken it and waits for the lock
        later = [intake.submit(Arrival(f"Subject: {n}\r\n\r\nx".encode(), "", ("fbl@fb.test",)))
                 for n in range(1, 6)]
        fcntl.flock(holder, fcntl.LOCK_UN)
        ids = [f.result(10) for f in (first, *later)]
    finally:
        intake.stop()
        os.close(holder)
    assert ids == sorted(ids)
    assert (intake.batches, intake.stored) == (1, 6)

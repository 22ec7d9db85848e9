"""The content fingerprint that makes "the same message twice" recognisable."""

from __future__ import annotations

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

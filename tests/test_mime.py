"""``reading.mime`` builds exactly the tree the standard library's parser builds, or none.

Compared attribute by attribute (envelope line, headers in order, default type, preamble,
epilogue, defects, payloads) on every sample message we keep, on messages built to be
wrong in the ways mail is wrong, and on the edge cases of RFC 2046's delimiters.
"""

from __future__ import annotations

import email
from pathlib import Path

import pytest
from fuzzing import messages, mutated
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedback_mta.reading import mime
from feedback_mta.reading.parse import POLICY

FIXTURES = Path(__file__).parent / "fixtures"


def shape(message) -> tuple:
    payload = message._payload
    return (message.get_unixfrom(), list(message._headers), message.get_default_type(),
            message.preamble, message.epilogue, [type(d).__name__ for d in message.defects],
            [shape(p) for p in payload] if isinstance(payload, list) else payload)


def both(raw: bytes):
    """(the standard library's tree, ours or None)."""
    return (email.message_from_bytes(raw, policy=POLICY),
            mime.read(raw.decode("ascii", "surrogateescape"), POLICY))


def samples() -> list[Path]:
    return sorted(p for p in FIXTURES.rglob("*.eml") if p.parent.name != "crashers")


def test_every_sample_reads_as_the_standard_library_reads_it():
    read = 0
    files = samples()
    for file in files:
        theirs, ours = both(file.read_bytes())
        if ours is not None:
            read += 1
            assert shape(ours) == shape(theirs), file.name
    # The fast reader does the work: only messages the standard library finds broken
    # beyond what we recover the same way (a lone CR, text in a status block) are left
    # to it.
    assert len(files) > 650
    assert read >= 0.98 * len(files)


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.one_of(messages(), mutated()))
def test_broken_messages_read_the_same_or_are_left_to_the_standard_library(raw):
    if raw.lower().count(b"boundary") > 200:
        return  # parse refuses these before any parser sees them
    theirs, ours = both(raw)
    if ours is not None:
        assert shape(ours) == shape(theirs)


def _mime(body: str, ctype: str = 'multipart/mixed; boundary="b"') -> bytes:
    return f"From: a@b.test\nContent-Type: {ctype}\n\n{body}".encode()


#: (name, message, read here?). Each "read here" is also compared with the standard library.
CASES = [
    ("plain", b"Subject: x\n\nbody\n", True),
    ("no body", b"Subject: x\n", True),
    ("no body, no newline", b"Subject: x", True),
    ("CRLF", b"Subject: x\r\n folded\r\n\r\nbody\r\n", True),
    ("empty value, folded", b"Subject:\n\tnext\n\nbody", True),
    ("mbox envelope line", b"From a@b.test Mon Jan  1 00:00:00 2024\nSubject: x\n\nb\n", True),
    ("no blank line before the body", b"Subject: x\nthis is body\n", True),
    ("missing name", b":: x\nSubject: y\n\nbody\n", False),
    ("first line folded", b" x\nSubject: y\n\nbody\n", False),
    ("misplaced From line", b"Subject: x\nFrom a@b Mon\n\nbody\n", False),
    ("lone CR", b"Subject: x\r\rbody\r", False),
    ("parts, preamble, epilogue",
     _mime("pre\n--b\n\none\n--b\nContent-Type: text/html\n\ntwo\n--b--\nepi\n"), True),
    ("blanks after delimiters", _mime("--b  \n\none\n--b\t\n\ntwo\n--b-- \n"), True),
    ("no preamble line, CRLF", _mime("--b\r\n\r\none\r\n--b--\r\n").replace(b"\n", b"\r\n")
     .replace(b"\r\r\n", b"\r\n"), True),
    ("close at the very end", _mime("--b\n\none\n--b--"), True),
    ("empty preamble", _mime("\n--b\n\none\n--b--\n"), True),
    ("lookalike delimiters", _mime("--b\n\n--bx\n--b-x\n --b\n--b--\n"), True),
    ("nested, epilogues",
     _mime('--b\nContent-Type: multipart/alternative; boundary="c"\n\n--c\n\nx\n--c--\n'
           "\n--b\nContent-Type: multipart/mixed; boundary=\"d\"\n\n--d\n\ny\n--d--\n--b\n"
           'Content-Type: multipart/mixed; boundary="e"\n\n--e\n\nz\n--e--\nafter\n\n'
           "--b--\n"), True),
    ("returned message",
     _mime('--b\n\nnotice\n--b\nContent-Type: message/rfc822\n\nSubject: orig\n\ntext\n'
           "--b--\n", 'multipart/report; report-type=delivery-status; boundary="b"'), True),
    ("status blocks",
     _mime("--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\n"
           "Final-Recipient: rfc822; a@b\nStatus: 5.1.1\n\n\nFinal-Recipient: rfc822; c@d\n"
           "\n--b--\n"), True),
    ("status block with text", _mime("--b\nContent-Type: message/delivery-status\n\n"
                                     "Status: 5.1.1\nnot a field\n--b--\n"), False),
    ("digest", _mime("--b\n\nSubject: one\n\n1\n--b\n\nSubject: two\n\n2\n--b--\n",
                     'multipart/digest; boundary="b"'), True),
    ("truncated", _mime("--b\n\none\n--b\n\ntwo, cut"), True),
    ("truncated inside a part",
     _mime('--b\nContent-Type: multipart/mixed; boundary="c"\n\n--c\n\nx\n--b--\n'), True),
    ("no start delimiter", _mime("just text\n"), True),
    ("close delimiter first", _mime("text\n--b--\nlost\n--b\n\nx\n"), True),
    ("no start delimiter inside a part",
     _mime('--b\nContent-Type: multipart/mixed; boundary="c"\n\ntext\n--b--\n'), True),
    ("no boundary", _mime("--b\n\nx\n--b--\n", "multipart/mixed"), True),
    ("no boundary inside a part",
     _mime("--b\nContent-Type: multipart/mixed\n\nx\n--b--\n"), True),
    ("empty boundary", _mime("--\n\nx\n----\n", 'multipart/mixed; boundary=""'), False),
    ("boundary reused inside", _mime('--b\nContent-Type: multipart/mixed; boundary="b"\n\n'
                                     "--b\n\nx\n--b--\n--b--\n"), False),
    ("encoded multipart",
     _mime("--b\n\nx\n--b--\n", 'multipart/mixed; boundary="b"\nContent-Transfer-Encoding: '
           "base64"), True),
    ("two delimiters in a row", _mime("--b\n--b\n\nx\n--b--\n"), False),
]


@pytest.mark.parametrize(("name", "raw", "here"), CASES, ids=[c[0] for c in CASES])
def test_edge_cases(name, raw, here):
    theirs, ours = both(raw)
    assert (ours is not None) is here
    if ours is not None:
        assert shape(ours) == shape(theirs)


def test_a_message_the_standard_library_recovers_still_parses():
    """``message_from_string`` (and ``parse``) fall back, so an irregular header block
    still gives its fields."""
    message = mime.message_from_string(":: x\nSubject: y\n\nbody\n", POLICY)
    assert message["subject"] == "y"


def test_the_remembered_content_type_follows_every_change_of_the_headers():
    message = mime.message_from_string("Content-Type: text/html\n\nx", POLICY)
    assert message.get_content_type() == "text/html"
    message.replace_header("Content-Type", "text/csv")
    assert message.get_content_type() == "text/csv"
    message.set_type("image/png")
    assert message.get_content_type() == "image/png"
    del message["Content-Type"]
    assert message.get_content_type() == "text/plain"
    message.set_default_type("message/rfc822")
    assert message.get_content_type() == "message/rfc822"
    message["Content-Type"] = "application/json"
    assert message.get_content_type() == "application/json"

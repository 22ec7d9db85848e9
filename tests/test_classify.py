"""classify over real-world-shaped samples, kept as a table (file, envelope, expectations).

Samples follow the RFC examples (RFC 5965 appendix B for ARF, RFC 3464 / Postfix for DSNs,
RFC 3834 for auto-replies). Issues 3 and 4 grow this table with provider samples.
"""

from __future__ import annotations

import pytest

from feedback_mta.addresses import AddressBook, Box
from feedback_mta.reading.classify import Kind, classify
from feedback_mta.reading.parse import parse
from tests.conftest import DOMAIN, FIXTURES, SECRET

BOOK = AddressBook(DOMAIN, (SECRET,))
REPLY = BOOK.address(Box.REPLY, 1)
BOUNCE = BOOK.address(Box.BOUNCE, 2)
UNSUB = BOOK.address(Box.UNSUBSCRIBE, 3)

# file, envelope sender, envelope recipient, kind, feedback type, reported recipients
SAMPLES = [
    ("arf-rfc5965-abuse.eml", "", "fbl@fb.test", Kind.COMPLAINT, "abuse",
     ("user@example.com",)),
    ("arf-opt-out-lf.eml", "", "fbl@fb.test", Kind.UNSUBSCRIBE, "opt-out",
     ("user@example.com",)),
    ("dsn-postfix-hard.eml", "", BOUNCE, Kind.BOUNCE, None, ("gone.user@example.org",)),
    ("auto-reply-rfc3834.eml", "boss@dealer.test", REPLY, Kind.AUTO_REPLY, None, ()),
    ("out-of-office-subject.eml", "boss@dealer.test", REPLY, Kind.AUTO_REPLY, None, ()),
    ("reply-in-reply-to.eml", "boss@dealer.test", "fbl@fb.test", Kind.REPLY, None, ()),
    ("reply-in-reply-to.eml", "boss@dealer.test", REPLY, Kind.REPLY, None, ()),
    ("reply-in-reply-to.eml", "boss@dealer.test", UNSUB, Kind.UNSUBSCRIBE, None, ()),
    ("reply-in-reply-to.eml", "", REPLY, Kind.AUTO_REPLY, None, ()),  # null sender
    ("precedence-bulk.eml", "news@shop.test", "fbl@fb.test", Kind.AUTO_REPLY, None, ()),
    ("plain-unknown.eml", "someone@else.test", "fbl@fb.test", Kind.UNKNOWN, None, ()),
    ("broken-mime.eml", "x@y.test", "fbl@fb.test", Kind.UNKNOWN, None, ()),
]


@pytest.mark.parametrize(("file", "mail_from", "rcpt", "kind", "ftype", "reported"), SAMPLES,
                         ids=[f"{s[0]}->{s[3].value}" for s in SAMPLES])
def test_samples(file, mail_from, rcpt, kind, ftype, reported):
    raw = (FIXTURES / "messages" / file).read_bytes()
    parsed = parse(raw, mail_from, (rcpt,))
    result = classify(parsed, BOOK.resolve_all([rcpt]))
    assert (result.kind, result.feedback_type, result.recipients) == (kind, ftype, reported)


def test_reply_box_recipient_names_the_lead():
    raw = (FIXTURES / "messages" / "reply-in-reply-to.eml").read_bytes()
    result = classify(parse(raw, "boss@dealer.test", (REPLY,)), BOOK.resolve_all([REPLY]))
    assert result.recipient.box is Box.REPLY and result.recipient.object_id == 1


def test_parse_reads_headers_text_and_ids():
    raw = (FIXTURES / "messages" / "reply-in-reply-to.eml").read_bytes()
    parsed = parse(raw, "<>", (REPLY,))
    assert parsed.mail_from == ""
    assert parsed.from_address == "boss@dealer.test"
    assert parsed.in_reply_to == ("lead.1-abc@fb.test",)
    assert parsed.text.startswith("SPAM")
    assert parsed.message_id == "r1@dealer.test"


# Headers every message of a mail system carries, which also name its bounces' family
# (``reading.mtas``): a person's reply sent through it must stay a reply.
PLATFORM_HEADERS = [
    ("GMX", "X-GMX-Antispam: 0\nX-UI-Out-Filterresults: notjunk:1"),
    ("Zoho", "X-ZohoMail: Si CHF_MF_NL SS_10"),
    ("Messaging Server", "Content-Type: multipart/mixed; boundary=\"Boundary_(ID_abc)\""),
    ("qmail relay", "Received: (qmail 1234 invoked from network); 2 Dec 2026 10:00:00 -0000"),
    ("IMail", "X-Mailer: <SMTP32 v8.22>"),
    ("Exchange 2003", "X-Mailer: Internet Mail Service (5.5.2653.19)"),
    ("OpenSMTPD relay", "Received: from mx.dealer.test (OpenSMTPD) with ESMTPSA id 5a1f"),
    ("au one net", "From: Dealer <boss@x0000.dion.ne.jp>"),
    ("Apache James", "Message-ID: <1.2.JavaMail.boss@dealer.test>\n"
                     "Received: from pc.dealer.test by mx.dealer.test (JAMES SMTP Server 2.3.1)"),
    ("an fml list", "X-MLServer: fml [fml 4.0.3 release (20011202/4.0.3)]\n"
                    "Message-ID: <202612021000.FMLAAA1234.sales@dealer.test>"),
]


@pytest.mark.parametrize(("system", "header"), PLATFORM_HEADERS,
                         ids=[p[0] for p in PLATFORM_HEADERS])
def test_a_person_s_reply_through_a_known_mail_system_stays_a_reply(system, header):
    """Its text names addresses and says "user unknown", as a dealer's reply may; still it
    is no bounce: only a mailer's sender or a bounce's subject makes a message one."""
    headers = {"From": "Dealer <boss@dealer.test>", "To": str(REPLY),
               "Subject": "Re: New lead: Pat Lee", "In-Reply-To": "<lead.1-abc@fb.test>"}
    for line in header.splitlines():
        name, _, value = line.partition(": ")
        headers[name] = value
    body = ("SPAM\n\nThis one again: pat.lee@example.com is an unknown user, and\n"
            "kim@example.org never answers. Please stop.\n")
    if "multipart" in headers.get("Content-Type", ""):
        body = ("--Boundary_(ID_abc)\nContent-Type: text/plain\n\n" + body
                + "--Boundary_(ID_abc)--\n")
    raw = "".join(f"{k}: {v}\n" for k, v in headers.items()) + "\n" + body
    parsed = parse(raw.encode(), "boss@dealer.test", (REPLY,))
    result = classify(parsed, BOOK.resolve_all([REPLY]))
    assert result.kind is Kind.REPLY, (system, result.why)


@pytest.mark.parametrize("value", [
    "MAILER-DAEMON@mx.example.jp (Mail Delivery System)",
    "attacker@evil.test (boss@dealer.test)",
    " a@b.test  (x) ",
    "a@b.test (x) (y)",
    "a@b.test (x), c@d.test",
    '"boss@dealer.test" <attacker@evil.test> (c)',
    "a@b.test (x\\y)",
    "a@b.test (Nested (paren))",
    '"Lee, Pat" <pat@example.com>',
])
def test_header_addresses_are_those_the_full_parser_finds(value):
    """The From address decides who may flag a lead: the quick forms (a bare address, an
    address in angle brackets, one with a plain comment after it) give exactly what the
    RFC 5322 parser gives, never a comment's or a display name's address."""
    from email.utils import getaddresses

    from feedback_mta.reading.parse import _addresses

    assert _addresses([value]) == tuple(
        a.lower() for _, a in getaddresses([value]) if "@" in a)


def test_an_address_written_as_a_display_name_is_never_taken_for_the_sender():
    """``boss@dealer.test <attacker@evil.test>`` is attacker@evil.test's mail, whatever an
    old parser makes of the unquoted name (CVE-2023-27043's kind of confusion)."""
    from feedback_mta.reading.parse import _addresses

    assert _addresses(["boss@dealer.test <attacker@evil.test>"]) == ("attacker@evil.test",)

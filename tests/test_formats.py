"""Report and bounce formats over real-world samples, kept as a table the way flufl.bounce
keeps its own: one row per file with what it must be read as.

``sisimai-*`` files come from Sisimai's public test corpus (set-of-emails, BSD-2-Clause),
trimmed of long bodies; ``ours-*`` files are written after each provider's published format
(Yahoo, AOL, Microsoft JMRP, Amazon SES, Gmail, Office 365, SpamCop, Apple Mail) and carry
tokens for contact 7 under the test secret, so attribution can be checked offline.
"""

from __future__ import annotations

import pytest
from flufl.bounce import all_failures

from feedback_mta.addresses import AddressBook
from feedback_mta.reading import candidates as attribution
from feedback_mta.reading.classify import Kind, classify
from feedback_mta.reading.formats import REGISTRY, dsn
from feedback_mta.reading.parse import parse
from tests.conftest import DOMAIN, FIXTURES, SECRET

BOOK = AddressBook(DOMAIN, (SECRET,))
REPORTS = FIXTURES / "reports"
TOK = "7-3texc33zrcd6gvpp"  # X-Feedback-Token of contact 7
BTOK = "7-qsznkvryx2ejhtk5"  # bounce+TOKEN of contact 7
C, B, U, A = Kind.COMPLAINT, Kind.BOUNCE, Kind.UNSUBSCRIBE, Kind.AUTO_REPLY

# file, kind, feedback type, recipients (as found), hard bounce, format, token found
SAMPLES = [
    # ARF (RFC 5965), message/rfc822 original, no or several Original-Rcpt-To
    ("sisimai-arf-03-returnpath-terra.eml", C, "abuse", (), None, "arf", None),
    ("sisimai-arf-04-bluetie-many-rcpt.eml", C, "abuse", 20, None, "arf", None),
    ("sisimai-arf-05-abusix-spamtrap.eml", C, "abuse",
     ("fake.rcpt@example.com", "fake.rcpt2@example.net"), None, "arf", None),
    ("sisimai-arf-11-minimal-no-rcpt.eml", C, "abuse", (), None, "arf", None),
    ("sisimai-arf-17-abusix-two-rcpt.eml", C, "abuse",
     ("kijitora@example.com", "sabatora@example.net"), None, "arf", None),
    # RFC 6591 auth-failure, original as text/rfc822-headers
    ("sisimai-arf-07-dmarc-auth-failure.eml", C, "auth-failure", ("fake.rcpt@example.com",),
     None, "arf", None),
    ("sisimai-arf-09-opendmarc-rfc822-headers.eml", C, "auth-failure",
     ("fake.recipient@example.org",), None, "arf", None),
    ("sisimai-arf-19-netease-auth-failure.eml", C, "auth-failure", ("kijitora@example.org",),
     None, "arf", None),
    # Microsoft JMRP: multipart/mixed, X-HmXmrOriginalRecipient
    ("sisimai-arf-13-hotmail-jmrp.eml", C, "abuse", ("recipient@hotmail.com",), None, "jmrp",
     None),
    ("ours-jmrp-hotmail-token.eml", C, "abuse", ("dana.k@outlook.com",), None, "jmrp", TOK),
    # Yahoo (redacted recipient; token in the original), in LF, CRLF and CR-only endings
    ("ours-yahoo-arf-redacted.eml", C, "abuse", (), None, "arf", TOK),
    ("ours-yahoo-arf-crlf.eml", C, "abuse", (), None, "arf", TOK),
    ("ours-yahoo-arf-cr-only.eml", C, "abuse", (), None, "arf", TOK),
    # AOL: misspelt text/rfc822-header, "redacted" recipient, bounce+TOKEN return path only
    ("ours-aol-arf-rfc822-header-misspelt.eml", C, "abuse", (), None, "arf", BTOK),
    ("ours-arf-missing-original.eml", C, "abuse", ("jane.doe@isp.example",), None, "arf", None),
    ("ours-arf-not-spam.eml", C, "not-spam", ("jane.doe@isp.example",), None, "arf", TOK),
    ("ours-arf-fraud.eml", C, "fraud", ("jane.doe@isp.example",), None, "arf", None),
    ("ours-arf-virus.eml", C, "virus", ("jane.doe@isp.example",), None, "arf", None),
    ("ours-arf-other.eml", C, "other", ("jane.doe@isp.example",), None, "arf", None),
    ("ours-arf-opt-out-removal-recipient.eml", U, "opt-out",
     ("anna@isp.example", "bert@isp.example", "carl@isp.example"), None, "arf", None),
    # folded headers, Report-Type last and in capitals
    ("ours-arf-folded-report-type-last.eml", C, "abuse", ("folded.user@isp.example",), None,
     "arf", TOK),
    # abuse report from a spam-trap service (not ARF)
    ("ours-spamcop-trap.eml", C, "abuse", (), None, "abuse", TOK),
    # Amazon SES JSON: SNS-wrapped complaint and bounce, raw application/json bounce
    ("ours-ses-sns-complaint.eml", C, "abuse", ("pat.lee@example.com",), None, "ses", TOK),
    ("ours-ses-bounce-permanent.eml", B, None, ("pat.lee@example.com",), True, "ses", TOK),
    ("ours-ses-bounce-transient-raw.eml", B, None, ("pat.lee@example.com",), False, "ses", TOK),
    # Apple Mail / iOS one-tap unsubscribe, and a plain mail to the unsubscribe box
    ("ours-apple-mail-unsubscribe.eml", U, "opt-out", ("pat.lee@example.com",), None, "apple",
     "7-zx6n3itjcg7l4vgb"),
    ("ours-ios-mail-unsubscribe-fbl.eml", U, "opt-out", ("pat.lee@example.com",), None,
     "apple", None),
    ("ours-unsubscribe-says-subscribe.eml", U, None, (), None, None, "7-zx6n3itjcg7l4vgb"),
    # RFC 3464 DSNs: hard
    ("sisimai-sendmail-01-user-unknown.eml", B, None, ("userunknown@bouncehammer.jp",), True,
     "dsn", None),
    ("ours-gmail-dsn-nosuchuser.eml", B, None, ("nobody.here@gmail.com",), True, "dsn", TOK),
    ("ours-office365-ndr-recipient-not-found.eml", B, None, ("someone@contoso.example",), True,
     "dsn", BTOK),
    ("ours-dsn-no-such-domain.eml", B, None, ("pat.lee@nxdomain.example",), True, "dsn", TOK),
    ("ours-dsn-moved.eml", B, None, ("pat.lee@example.com",), True, "dsn", TOK),
    ("ours-dsn-mixed-two.eml", B, None, ("gone@example.com", "full@example.com"), True, "dsn",
     TOK),
    # RFC 3464 DSNs: soft
    # "no such user" with a generic 5.0.0 and no SMTP command named may be a filter after
    # DATA speaking (Sisimai's "filtered"): counted soft, hard after the soft limit.
    ("ours-dsn-generic-5xx-user-unknown.eml", B, None, ("pat.lee@example.com",), False, "dsn",
     TOK),
    ("sisimai-postfix-70-dmarc-policy.eml", B, None, ("kijitora@google.example.com",), False,
     "dsn", None),
    ("ours-dsn-mailbox-full.eml", B, None, ("pat.lee@example.com",), False, "dsn", TOK),
    ("ours-dsn-delayed.eml", B, None, ("pat.lee@example.com",), False, "dsn", TOK),
    ("ours-dsn-blocked-policy.eml", B, None, ("pat.lee@example.com",), False, "dsn", TOK),
    # non-standard bounces (flufl.bounce finds the addresses)
    ("sisimai-exim-02-two-failed.eml", B, None, ("kijitora@example.jp", "sabatora@example.jp"),
     True, "legacy_bounce", None),
    ("sisimai-qmail-01-unknown-user.eml", B, None, ("kijitora@example.ne.jp",), True,
     "legacy_bounce", None),
    # not bounces: a "delivered" DSN and an out-of-office sent to the bounce address
    ("ours-dsn-delivered.eml", A, None, ("pat.lee@example.com",), None, "dsn", TOK),
    ("ours-out-of-office-to-bounce.eml", A, None, (), None, None, BTOK),
]


def read(file: str):
    parsed = parse((REPORTS / file).read_bytes(), guess_envelope=True)
    return classify(parsed, BOOK.resolve_all(parsed.rcpt_tos))


@pytest.mark.parametrize(("file", "kind", "ftype", "recipients", "hard", "fmt", "token"),
                         SAMPLES, ids=[s[0] for s in SAMPLES])
def test_sample(file, kind, ftype, recipients, hard, fmt, token):
    result = read(file)
    found = result.recipients if not isinstance(recipients, int) else len(result.recipients)
    assert (result.kind, result.feedback_type, found, result.hard_bounce) == (
        kind, ftype, recipients, hard)
    assert (result.report.format if result.report else None) == fmt
    assert attribution.first_token(result) == token


def test_every_fixture_is_in_the_table():
    assert sorted(p.name for p in REPORTS.glob("*.eml")) == sorted(s[0] for s in SAMPLES)


def test_every_format_has_a_sample():
    assert {name for name, _ in REGISTRY} <= {s[5] for s in SAMPLES}


def test_tokens_in_samples_verify_to_contact_7():
    for file, *_rest, token in SAMPLES:
        if token is None:
            continue
        result = read(file)
        ids = {attribution.verify(c, BOOK) for c in attribution.candidates(result)}
        assert 7 in ids, file


def test_mixed_dsn_keeps_each_recipients_own_verdict():
    report = read("ours-dsn-mixed-two.eml").report
    assert [(b.address, b.hard, b.status) for b in report.bounces] == [
        ("gone@example.com", True, "5.1.1"), ("full@example.com", False, "4.2.2")]


@pytest.mark.parametrize(("status", "diagnostic", "hard", "reason"), [
    ("5.1.1", "550 5.1.1 user unknown", True, "userunknown"),
    ("5.1.2", "Host or domain name not found", True, "hostunknown"),
    ("5.1.6", "551 recipient has moved", True, "hasmoved"),
    ("5.0.0", "550 No such user here", False, "filtered"),  # no command: maybe a filter
    ("5.0.0", "550 No such user here (in reply to RCPT TO command)", True, "userunknown"),
    ("5.0.0", "550 5.1.0 Address rejected.", True, "userunknown"),  # the words' code says more
    ("5.1.0", "550 #5.1.0 Address rejected.", True, "userunknown"),  # the status says more
    ("5.2.2", "552 mailbox full", False, "mailboxfull"),
    ("5.7.1", "554 blocked using zen.spamhaus.org", False, "blocked"),
    ("5.1.1", "550 5.1.1 rejected: listed at zen.spamhaus.org", False, "blocked"),  # ours
    ("5.0.0", "SMTP error from remote mail server after MAIL FROM:<a@b.test>: 550 no such "
              "user", False, "onhold"),                # refused at MAIL FROM: not the address
    ("5.0.0", "SMTP error from remote mail server after end of data: 550 user unknown",
     False, "filtered"),                                      # accepted at RCPT: a filter
    ("5.4.4", "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)", True,
     "hostunknown"),
    ("5.4.4", "Name service error for name=example.org type=MX: Malformed or unexpected name "
              "server reply", False, "networkerror"),
    ("5.0.0", "550 5.7.1 Message content rejected, UBE, id=00000-22-225", False,
     "spamdetected"),
    ("5.2.1", "550 5.2.1 The email account that you tried to reach is disabled", False,
     "suspend"),
    ("5.0.0", "554 Transaction failed", False, "onhold"),
    ("5.0.0", "554 Transaction failed (in reply to end of DATA command)", False,
     "systemerror"),
    ("4.2.2", "452 over quota", False, "mailboxfull"),
    ("4.1.1", "user unknown (will retry) in reply to RCPT TO", False, "userunknown"),  # temporary
    ("4.4.7", "", False, "expired"),
    ("5.0.0", "550 requested action not taken", False, "onhold"),
    ("5.3.4", "", False, "mesgtoobig"),
    (None, "", False, "undefined"),
])
def test_hardness_follows_the_reason(status, diagnostic, hard, reason):
    assert dsn.hardness(status, diagnostic) == (hard, reason)


def test_every_reason_is_one_of_sisimai_s_and_hard_only_where_the_address_is_gone():
    from feedback_mta import bounces
    from feedback_mta.reading import reasons

    named = set(reasons.WORDS) | set(reasons.STATUS.values()) | {n for n, _ in reasons.PROBES}
    assert named <= set(bounces.REASONS)
    assert set(bounces.REASONS) >= bounces.HARD
    assert reasons.is_hard("userunknown", "5.1.1")
    assert not reasons.is_hard("userunknown", "4.1.1")
    assert not reasons.is_hard("mailboxfull", "5.2.2")
    assert reasons.is_hard("mailboxfull", "5.2.2", frozenset({"mailboxfull"}))


def test_flufl_bounce_agrees_on_failed_addresses():
    """We read RFC 3464 ourselves (we need per-recipient status) and use flufl.bounce for
    the rest; on every bounce sample it finds, its addresses must be ours."""
    checked = 0
    for file, kind, _ftype, recipients, *_ in SAMPLES:
        if kind is not B:
            continue
        temporary, permanent = all_failures(parse((REPORTS / file).read_bytes()).message)
        theirs = {a.decode().lower() if isinstance(a, bytes) else str(a).lower()
                  for a in temporary | permanent}
        if theirs:
            checked += 1
            assert theirs <= set(recipients), file
    assert checked >= 8


@pytest.mark.parametrize("junk", [
    b"", b"\x00\x01\x02", b"Content-Type: multipart/report; report-type=feedback-report\n\n",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n"
    b"Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822;\n\n--x--\n",
    b"From: no-reply@sns.amazonaws.com\n\n{\"notificationType\": \"Bounce\", \"bounce\": 3}",
    b"From: no-reply@sns.amazonaws.com\n\n{\"Message\": \"{not json\", \"notificationType\": 1}",
    b"Subject: Undelivered Mail\n\n------ This is a copy of the message\n\x00\xff",
])
def test_broken_reports_never_raise(junk):
    result = classify(parse(junk, "", ("fbl@fb.test",)), BOOK.resolve_all(["fbl@fb.test"]))
    assert result.kind in set(Kind)


def test_trusted_reporter_by_from_domain_and_dmarc():
    def report(sender: str, auth: str = "") -> object:
        return parse(f"{auth}From: {sender}\nSubject: r\n\nx\n".encode(), "", ())

    plain = {"trusted_reporters": ("feedback.yahoo.com",)}
    assert attribution.trusted_reporter(report("fbl@feedback.yahoo.com"), **plain)
    assert attribution.trusted_reporter(report("fbl@arf.feedback.yahoo.com"), **plain)
    assert not attribution.trusted_reporter(report("fbl@evilfeedback.yahoo.com.test"), **plain)
    assert not attribution.trusted_reporter(report("fbl@feedback.yahoo.com"), ())
    strict = {"trusted_reporters": ("feedback.yahoo.com",), "trusted_authserv_ids": ("mx.us",)}
    passed = "Authentication-Results: mx.us; dmarc=pass header.from=feedback.yahoo.com\n"
    failed = "Authentication-Results: mx.us; dmarc=fail header.from=feedback.yahoo.com\n"
    foreign = "Authentication-Results: mx.them; dmarc=pass header.from=feedback.yahoo.com\n"
    assert attribution.trusted_reporter(report("fbl@feedback.yahoo.com", passed), **strict)
    assert not attribution.trusted_reporter(report("fbl@feedback.yahoo.com", failed), **strict)
    assert not attribution.trusted_reporter(report("fbl@feedback.yahoo.com", foreign), **strict)


def test_from_address_is_the_real_one_whatever_the_display_name_says():
    for header in ('"boss@dealer.test" <mallory@evil.test>', "(boss@dealer.test) mallory@evil.test",
                   "boss@dealer.test <mallory@evil.test>", "Mallory <MALLORY@evil.test>"):
        assert parse(f"From: {header}\n\nx\n".encode()).from_address == "mallory@evil.test"


@pytest.mark.parametrize("box", ["abuse", "postmaster", "POSTMASTER"])
def test_a_report_to_abuse_or_postmaster_is_admin_mail_not_a_complaint(box):
    """The same SpamCop report that acts through fbl@ is, sent to abuse@ or postmaster@, mail
    for the operator: kept and forwarded, never acted on (feedback loops verify a domain
    through those boxes; what they say must not opt anyone out)."""
    raw = (REPORTS / "ours-spamcop-trap.eml").read_bytes()
    parsed = parse(raw, "", (f"{box}@fb.test",))
    result = classify(parsed, BOOK.resolve_all(parsed.rcpt_tos))
    assert (result.kind, result.report) == (Kind.ADMIN, None)
    assert read("ours-spamcop-trap.eml").kind is Kind.COMPLAINT  # through fbl@ it acts


def test_ses_json_folded_by_the_sns_mailer_is_read():
    """SNS's mail folds the notification every ~1,000 characters (a line break and a space
    in the middle of the JSON); the fold is taken out again."""
    from tests.sisimai_corpus import EML

    raw = (EML / "lhost-amazonses-09.eml").read_bytes()
    assert b"\n Content-Transfer-Encoding" in raw  # folded inside a JSON string
    report = classify(parse(raw, guess_envelope=True), []).report
    assert report is not None and (report.format, report.kind) == ("ses", Kind.BOUNCE)
    assert report.recipients == ("bounce@simulator.amazonses.com",)
    assert [(b.status, b.reason, b.hard) for b in report.bounces] == [
        ("5.1.1", "userunknown", True)]


def test_our_flufl_scan_finds_what_flufl_bounce_finds():
    """``formats.flufl_scan`` runs flufl.bounce's detectors with a faster SimpleMatch and
    SimpleWarning: on every sample flufl.bounce reads without raising, the same addresses,
    temporary and permanent; and the faster detectors do run (they find some)."""
    from flufl.bounce._detectors.simplematch import SimpleMatch
    from flufl.bounce._detectors.simplewarning import SimpleWarning

    from feedback_mta.reading.formats import flufl_scan

    files = sorted(REPORTS.glob("*.eml")) + sorted((FIXTURES / "sisimai" / "eml").glob("*.eml"))
    compared = by_simple_match = by_simple_warning = 0
    for file in files:
        message = parse(file.read_bytes()).message
        try:
            theirs = all_failures(message)
        except Exception:
            continue
        assert flufl_scan.all_failures(message) == theirs, file.name
        assert flufl_scan.SimpleMatch().process(message) == SimpleMatch().process(message)
        assert flufl_scan.SimpleWarning().process(message) == SimpleWarning().process(message)
        compared += 1
        by_simple_match += bool(flufl_scan.SimpleMatch().process(message)[1])
        by_simple_warning += bool(flufl_scan.SimpleWarning().process(message)[0])
    assert compared > 600 and by_simple_match > 50 and by_simple_warning > 0


def test_every_family_function_is_in_its_table():
    """A ``Protocol`` has no optional members, so a bounce family's own functions are each
    typed by a table of their own (``reading.mtas``): a family that has one is in it."""
    from feedback_mta.reading import mtas

    tables = {"hint": mtas.HINTS, "command": mtas.COMMANDS, "notice": mtas.NOTICES,
              "recipient": mtas.RECIPIENTS, "failed": mtas.FAILURES}
    for name, table in tables.items():
        having = {f.__name__ for f in mtas.REGISTRY if callable(getattr(f, name, None))}
        assert having == {f.__name__ for f in table}, name

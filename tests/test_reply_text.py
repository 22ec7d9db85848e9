"""Reply trimming and intent over real-world-shaped reply bodies, kept as a table.

Each fixture in ``tests/fixtures/replies`` is a whole message (charset and transfer encoding
as the client sends them) replying to a lead notification whose own text says "Reply SPAM to
flag this lead". The table gives the new text a person would say the dealer wrote and the
command in it. ``bench/replies.py`` measures the same table against reply-parsing libraries.
"""

from __future__ import annotations

import re

import pytest

from feedback_mta.reading.commands import VOCABULARY
from feedback_mta.reading.parse import parse
from feedback_mta.reading.reply_text import command, html_to_text, new_text
from feedback_mta.reading.reply_text import intent as read_intent
from tests.conftest import FIXTURES

REPLIES_DIR = FIXTURES / "replies"
F, R = "flag", "restore"


def intent(text: str, subject: str = "") -> str | None:
    return read_intent(text, VOCABULARY, subject)
SIG = "SPAM\n\nBob Boss\nSales Manager | Dealer One\n555-0199"

# file, the new text the dealer wrote, the intent
REPLIES = [
    ("gmail-spam", "SPAM", F),
    ("gmail-wrapped-header", "Spam!", F),
    ("gmail-not-spam", "NOT SPAM", R),
    ("gmail-html-only", "this is spam", F),
    ("apple-mail", "Junk", F),
    ("iphone", "fake lead", F),
    ("android-gmail", "Spam", F),
    ("samsung-email", "undo", R),
    ("outlook-desktop", SIG, F),
    ("outlook-desktop-html-only", "Not spam, sorry", R),
    ("outlook-web", "Spam.", F),
    ("outlook-original-message", "restore", R),
    ("thunderbird-top", "Spam", F),
    ("thunderbird-bottom", "SPAM", F),
    ("thunderbird-signature", "junk", F),
    ("yahoo", "Spam", F),
    ("french-gmail", "C'est du spam", F),
    ("french-not-spam", "Ce n'est pas du spam", R),
    ("french-outlook", "Pourriel", F),
    ("german-gmail", "Das ist Spam", F),
    ("german-kein-spam", "Kein Spam!", R),
    ("german-outlook", "Spam", F),
    ("german-iphone", "Rückgängig", R),
    ("spanish-gmail", "Es spam", F),
    ("spanish-no-es-spam", "No es spam", R),
    ("spanish-iphone", "Correo basura", F),
    ("portuguese-gmail", "É spam", F),
    ("portuguese-nao-e-spam", "Não é spam", R),
    ("portuguese-desfazer", "Desfazer", R),
    ("russian-android", "Спам", F),
    ("greeting-then-spam", "Hi,\n\nThis is spam.\n\nThanks,\nBob", F),
    ("mark-as-spam-please", "mark as spam please", F),
    ("windows-1252-smart-quotes", "\u201cSpam\u201d \u2013 thanks", F),
    ("html-only-not-spam", "NOT SPAM", R),
    ("subject-spam", "", F),  # body empty, subject changed to SPAM
    ("apple-mail-html-only", "Spam", F),
    ("protonmail-html", "not spam", R),
    ("outlook-ios-html", "Spam", F),
    ("thunderbird-german-html", "Das ist Spam.", F),
    ("zimbra", "Spam", F),
    ("emoji-spam", "\U0001F6AB SPAM \U0001F6AB", F),
    ("french-greeting-faux-lead", "Bonjour,\n\nC'est un faux lead.\n\nCordialement,\nBob", F),
    # Not commands: the notification's "Reply SPAM" must never count.
    ("chatty-mentions-spam",
     "Hi team, we got this one yesterday too. I don't think it's spam but the phone number "
     "looks odd, can you check before we call? Thanks", None),
    ("question-is-this-spam", "Is this spam?", None),
    ("not-sure-call-first", "Not sure if spam, will call first", None),
    ("long-message-spam-word",
     "Spam filters keep eating our mail, so please call me instead of replying.", None),
    ("empty-reply-quote-only", "", None),
    # Quoted without '>' and without a header line: only the notification's own marker line
    # tells where the quote is, so its first lines stay in the new text (known limit, see
    # KNOWN_MISSES); the intent is still right.
    ("outlook-no-quote-marks", "Thanks, we'll call her this afternoon.", None),
    ("unquoted-note-first", "", None),
]

#: Rows whose new text we do not get exactly right yet, and why; their intent must still be.
KNOWN_MISSES = {
    "outlook-no-quote-marks": "notification quoted with no marks and no header line",
    "unquoted-note-first": "notification quoted with no marks and no header line",
}


def _norm(text: str) -> str:
    return re.sub(r"\n{2,}", "\n\n", text.strip())


def _read(name: str):
    return parse((REPLIES_DIR / f"{name}.eml").read_bytes())


def test_every_fixture_is_in_the_table():
    files = {p.stem for p in REPLIES_DIR.glob("*.eml")}
    assert files == {row[0] for row in REPLIES}


@pytest.mark.parametrize(("name", "expected_text", "expected_intent"), REPLIES,
                         ids=[r[0] for r in REPLIES])
def test_reply_table(name, expected_text, expected_intent):
    parsed = _read(name)
    text = new_text(parsed.text, parsed.html)
    assert intent(text, parsed.subject) == expected_intent
    if name in KNOWN_MISSES:
        assert _norm(text) != _norm(expected_text), "fixed? remove it from KNOWN_MISSES"
        assert "Reply SPAM" not in text
    else:
        assert _norm(text) == _norm(expected_text)


@pytest.mark.parametrize(("line", "expected"), [
    ("SPAM", F), ("Spam!", F), ("junk", F), ("this is spam", F), ("fake lead", F),
    ("It's spam, thanks", F), ("Es spam", F), ("c'est du spam", F), ("Das ist Spam", F),
    ("Isso é spam", F), ("correo no deseado", F), ("lixo", F), ("Müll", F),
    ("NOT SPAM", R), ("not junk", R), ("restore", R), ("undo", R), ("Not spam!", R),
    ("this isn't spam", R), ("no es spam", R), ("ce n'est pas du spam", R), ("kein spam", R),
    ("nicht spam", R), ("não é spam", R), ("restaurar", R), ("annuler", R),
    ("wiederherstellen", R), ("desfazer", R),
    ("is this spam?", None), ("spam?", None), ("", None), ("thanks", None),
    ("we get a lot of spam from this site lately", None), ("not sure", None),
    ("please call her back", None), ("spam spam spam spam spam spam spam spam spam", None),
    ("not restore", None), ("reply spam to flag this lead", None),
])
def test_command_words(line, expected):
    assert command(line, VOCABULARY) == expected


def test_greeting_line_is_skipped_but_only_one():
    assert intent("Hello Bob,\nspam") == F
    assert intent("Hello,\nthanks\nspam") is None


def test_notification_marker_cuts_wherever_it_appears():
    body = "Reply SPAM to flag this lead. Reply NOT SPAM to undo.\nspam"
    assert new_text(body) == ""
    assert new_text("ok\n" + body) == "ok"


def test_custom_markers():
    body = "Thanks!\nTo mark this lead as junk, answer SPAM.\nspam"
    assert new_text(body, markers=("answer spam",)) == "Thanks!"


def test_html_to_text_marks_quote_containers_and_drops_styles():
    text = html_to_text("<style>p{color:red}</style><p>One&nbsp;two</p>"
                        "<blockquote>quoted</blockquote>")
    assert "color" not in text
    assert text.split("\n")[0].strip() == "One\u00a0two"
    assert "\x00quote\x00" in text


def test_broken_html_does_not_raise():
    assert new_text("", "<div><p>spam<blockquote><<<>>></div") == "spam"


def test_a_new_reply_command_is_one_declaration():
    """The words a command declares in ``reading.commands`` are all the reader needs: an
    ``ARCHIVE`` command (made up here) is read beside the real ones, in its own languages."""
    from feedback_mta.reading.commands import LEAD, ReplyWords, vocabulary

    archive = ReplyWords("archive", {"en": "archive", "de": "archivieren"})
    extended = vocabulary((*LEAD, archive))
    assert read_intent("Archive, please", extended) == "archive"
    assert read_intent("Archivieren!", extended) == "archive"
    assert read_intent("SPAM", extended) == F and read_intent("not spam", extended) == R
    assert read_intent("archive this spam", extended) is None  # two commands: neither
    assert read_intent("archive", VOCABULARY) is None  # not a command until declared


def test_every_command_read_has_its_handler_in_the_same_order():
    """What the reader can return (``reading.commands.LEAD``) is what the reply handler
    acts on (``handlers.commands.REGISTRY``), tried in the same order."""
    from feedback_mta.handlers.commands import REGISTRY
    from feedback_mta.reading.commands import LEAD

    assert [c.words for c in REGISTRY] == list(LEAD)
    assert set(VOCABULARY.words) == {c.name for c in REGISTRY}


_SIMPLE = [
    b"From: a@b.test\r\nSubject: x\r\n\r\nSPAM\r\n\r\n> quoted\r\n",
    b"From: a@b.test\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\nNo es basura, \xc3\xb1and\xc3\xba\r\n",
    b"From: a@b.test\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nMull \xfc\r\n",
    b"From: a@b.test\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n\r\n",
    b"From: a@b.test\r\nContent-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nSPAM=20now=\r\n!\r\n",
    b"From: a@b.test\r\nContent-Type: text/plain; name=\"a.txt\"\r\n\r\nSPAM\r\n",
    b"From: a@b.test\r\nContent-Disposition: attachment\r\n\r\nSPAM\r\n",
]


def test_a_plain_body_reads_as_mail_parser_reads_it():
    """All-ASCII single ``text/plain`` bodies skip mail-parser: on every fixture and on
    the cases at its edges (8-bit UTF-8 and Latin-1, QP, a named part, an attachment),
    the text is mail-parser's wherever the shortcut is taken."""
    import mailparser

    from feedback_mta.reading.parse import _plain_text

    files = [p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix != ".py"]
    taken = 0
    for raw in [*(p.read_bytes() for p in files), *_SIMPLE]:
        try:
            parsed = parse(raw)
        except Exception:
            continue
        ours = _plain_text(parsed.message, raw)
        if ours is None:
            continue
        taken += 1
        theirs = mailparser.MailParser(parsed.message)
        assert (ours, "") == ("\n".join(theirs.text_plain), "\n".join(theirs.text_html))
    assert taken >= 20
    assert [_plain_text(parse(raw).message, raw) is None for raw in _SIMPLE] == [
        False, True, True, False, True, True, True]

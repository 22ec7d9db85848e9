"""A contact's answer to a confirmation request, read from real-world-shaped replies (pure).

Each fixture in ``tests/fixtures/confirmations`` is a whole message (charset and transfer
encoding as the client sends them) replying to a confirmation request whose own text says
"Reply YES to keep getting our mail, or NO to be removed." The table gives the answer a
person would read in it: the quoted "Reply YES" must never count, nor the subject, and a
reply that says both is no answer.
"""

from __future__ import annotations

import json

import pytest

from feedback_mta.markers import CONFIRMATION_MARKERS
from feedback_mta.reading.commands import CONSENT, CONSENT_VOCABULARY, VOCABULARY
from feedback_mta.reading.parse import parse
from feedback_mta.reading.reply_text import answers, command, read_answers
from tests.cli import run
from tests.conftest import FIXTURES

CONFIRMATIONS = FIXTURES / "confirmations"
Y, N = "confirm", "decline"
BOTH = frozenset({Y, N})

# file, the answer read (a set: empty for none, both for an ambiguous reply)
REPLIES = [
    ("gmail-yes-please", {Y}),  # top-posted; the quote below says "Reply YES"
    ("gmail-greeting-keep-me", {Y}),  # "Hi," / "Yes, keep me on the list." / "Thanks, Ann"
    ("german-gmail-ja-gerne", {Y}),
    ("spanish-gmail-si", {Y}),
    ("iphone-yes", {Y}),  # "YES\n\nSent from my iPhone", then the quote
    ("apple-mail-html-yes", {Y}),  # HTML only
    ("outlook-desktop-html-yes", {Y}),  # HTML only, Outlook's From/Sent block under a rule
    ("thunderbird-bottom-yes", {Y}),  # written below the quote, then a signature
    ("japanese-hai", {Y}),
    ("gmail-no-thanks", {N}),
    ("outlook-web-html-unsubscribe", {N}),
    ("french-iphone-non-merci", {N}),
    ("russian-android-net", {N}),
    ("gmail-yes-and-no", BOTH),  # "Yes. Actually no, please remove me."
    ("gmail-quote-only", set()),  # an empty reply: only the request, quoted
    ("outlook-no-marks-quoted", set()),  # the request quoted without marks: its marker cuts
    ("question-who-is-this", set()),
    ("subject-only", set()),  # the subject says "reply YES"; subjects never count
]


def _read(name: str) -> frozenset[str]:
    parsed = parse((CONFIRMATIONS / f"{name}.eml").read_bytes())
    return read_answers(parsed, CONSENT_VOCABULARY, CONFIRMATION_MARKERS)


def test_every_fixture_is_in_the_table():
    assert {p.stem for p in CONFIRMATIONS.glob("*.eml")} == {row[0] for row in REPLIES}


@pytest.mark.parametrize(("name", "expected"), REPLIES, ids=[r[0] for r in REPLIES])
def test_confirmation_reply_table(name, expected):
    assert _read(name) == expected


@pytest.mark.parametrize(("text", "expected"), [
    # yes, in many words and languages
    ("Yes", {Y}), ("YES!", {Y}), ("Yes please!", {Y}), ("yes, please", {Y}), ("ok", {Y}),
    ("Okay, thanks", {Y}), ("Sure", {Y}), ("Confirm", {Y}), ("Confirmed.", {Y}),
    ("Subscribe", {Y}), ("Keep me", {Y}), ("keep me on the list", {Y}),
    ("Yes, keep me subscribed", {Y}), ("count me in", {Y}), ("opt in", {Y}),
    ("Hi Bob, yes", {Y}), ("Ja", {Y}), ("Ja, gerne", {Y}), ("Oui", {Y}), ("Oui, d'accord", {Y}),
    ("Sí", {Y}), ("si claro", {Y}), ("Sim", {Y}), ("Tak", {Y}), ("Да", {Y}), ("はい", {Y}),
    ("好的", {Y}), ("Evet", {Y}), ("Graag", {Y}), ("Certo", {Y}),
    # no
    ("No", {N}), ("no thanks", {N}), ("No, thank you.", {N}), ("Unsubscribe", {N}),
    ("Remove me", {N}), ("Please remove me from your mailing list", {N}), ("STOP", {N}),
    ("opt out", {N}), ("Not interested", {N}), ("I don't want any more emails", {N}),
    ("Nein", {N}), ("nein danke", {N}), ("Kein Interesse", {N}), ("Non", {N}),
    ("non merci", {N}), ("No gracias", {N}), ("no me interesa", {N}), ("Não, obrigado", {N}),
    ("Nee", {N}), ("Nie", {N}), ("Нет", {N}), ("いいえ", {N}), ("不用了", {N}),
    ("Who are you? Remove me.", {N}),
    # both: no answer
    ("Yes and no", BOTH), ("yes / no", BOTH), ("Yes, unsubscribe me", BOTH),
    # neither
    ("", set()), ("Thanks", set()), ("Not sure", set()), ("don't remove me", set()),
    ("ok?", set()), ("Who is this?", set()), ("No problem", set()),
    ("I met your team at the fair last week, looking forward to the offers", set()),
])
def test_answer_words(text, expected):
    assert answers(text, CONSENT_VOCABULARY) == expected


def test_an_answer_is_read_from_the_first_lines_only():
    """A sign-off fits; a stray "ok" deep in a letter does not count."""
    letter = "\n".join(["Hello,", "We moved offices.", "The new address is below.",
                        "Call us any time.", "Best,", "Ann", "ok"])
    assert answers(letter, CONSENT_VOCABULARY) == set()
    assert answers("Hello,\nYes\nThanks,\nAnn", CONSENT_VOCABULARY) == {Y}


def test_lead_commands_read_as_before():
    """The consent words' filler, phrases and bare "no" are theirs alone: "no" is no lead
    command, and "yes" is none either."""
    assert command("no", VOCABULARY) is None and command("no thanks", VOCABULARY) is None
    assert command("yes", VOCABULARY) is None
    assert command("spam me", VOCABULARY) is None
    assert command("not spam", VOCABULARY) == "restore"


def test_every_answer_read_has_its_command_in_the_same_order():
    """What the reader can return (``reading.commands.CONSENT``) is what the confirmation
    handler acts on (``handlers.commands.CONSENT``), tried in the same order."""
    from feedback_mta.handlers.commands import CONSENT as HANDLED

    assert [c.words for c in HANDLED] == list(CONSENT)
    assert set(CONSENT_VOCABULARY.words) == {c.name for c in HANDLED}


def test_parse_reports_the_answer_of_a_reply_to_a_confirmation_request():
    """Offline, without a config (so without the secret), a reply to ``confirm+...`` is read
    for a yes or no, as the handler reads it; a reply saying both gives none."""
    names = ["gmail-yes-please", "gmail-no-thanks", "gmail-yes-and-no", "gmail-quote-only"]
    result = run(None, "parse", "--json", *(str(CONFIRMATIONS / f"{n}.eml") for n in names))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["kind"], r["intent"]) for r in rows] == [
        ("reply", Y), ("reply", N), ("reply", None), ("reply", None)]

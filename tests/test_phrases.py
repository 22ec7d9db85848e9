"""``reading.phrases``: one pass over a text names exactly the phrases ``in`` would find."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from feedback_mta.reading.phrases import PhraseSet
from feedback_mta.reading.reason_words import PHRASES, WORDS

_LETTERS = st.text("abc é\n", max_size=6)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(_LETTERS, max_size=12), st.text("abc é\nx", max_size=60))
def test_the_phrases_found_are_those_in_the_text(phrases, text):
    assert PhraseSet(phrases).in_text(text) == {p for p in phrases if p and p in text}


def test_overlapping_and_nested_phrases_are_all_found():
    found = PhraseSet(["user unknown", "unknown user", "unknown", "no such"]).in_text(
        "550 user unknown user")
    assert found == {"user unknown", "unknown user", "unknown"}


def test_the_reason_tables_answer_as_their_phrases_do():
    """``Words.said`` over the one-pass phrases agrees with asking each phrase, on text
    made of each table's own phrases (and on text that holds a reason's exceptions)."""
    for name, words in WORDS.items():
        for phrase in (*words.phrases, *words.isnot, *(" ... ".join(p) for p in words.pairs)):
            text = f"550 5.1.1 {phrase} here"
            slow = not any(p in text for p in words.isnot) and (
                any(p in text for p in words.phrases)
                or any(all(piece in text for piece in pair)
                       and text.find(pair[-1]) > text.find(pair[0]) for pair in words.pairs))
            assert words.said(PHRASES.in_text(text), text) is slow, (name, phrase)

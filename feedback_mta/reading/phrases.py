"""Which of many phrases a text holds, found in one pass over the text (Aho-Corasick, by
pyahocorasick's C automaton).

The reason tables hold some 750 phrases; asking ``phrase in text`` of each, reason after
reason, took a sixth of a bulk ``parse``, and one pass finds them all in a fortieth of the
time. The automaton is built on first use (a millisecond or two), so a command that never
reads a bounce's words does not pay for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class PhraseSet:
    """A fixed set of phrases; ``in_text`` names those a text contains (as ``in`` would:
    substrings, overlapping ones included)."""

    def __init__(self, phrases: Iterable[str]) -> None:
        self._phrases = tuple(dict.fromkeys(p for p in phrases if p))
        self._automaton: Any = None

    def in_text(self, text: str) -> frozenset[str]:
        if not text or not self._phrases:
            return frozenset()
        automaton = self._automaton
        if automaton is None:
            import ahocorasick

            automaton = ahocorasick.Automaton()
            for phrase in self._phrases:
                automaton.add_word(phrase, phrase)
            automaton.make_automaton()
            self._automaton = automaton
        return frozenset(phrase for _, phrase in automaton.iter(text))

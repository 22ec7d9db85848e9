"""``parse`` over Sisimai's public corpus (sisimai/set-of-emails, 607 files), against the
expectations of Sisimai's own test suites (go-sisimai 2025, p5-sisimai 5.1), kept as a
table in ``fixtures/sisimai`` (``make_table.py`` makes it).

The floors are what ``parse`` reaches today: a change that reads fewer bounces, finds
fewer bounced addresses or gets hard and soft wrong more often fails here, with the files
it lost. The targets (98% of Sisimai's bounces, ...) and Debian Sisimai's own figures
are printed by ``bench/parse_vs_sisimai.py --corpus``.
"""

from __future__ import annotations

import pytest

from feedback_mta.cli.parse import classify_file
from tests.sisimai_corpus import EML, agreement, kind_of, table

#: (agreed, out of) today; raise them as parse learns more, never lower them. (The expected
#: addresses are Sisimai 4.25's, which reports Final-Recipient; we report the
#: Original-Recipient we sent to where a DSN gives both, so an alias expansion counts as a
#: miss here.)
FLOORS = {"kind": 580, "address": 574, "hard": 604, "reason": 581, "complaints": 18,
          "not_bounces": 8}


@pytest.fixture(scope="module")
def measured():
    expected = table()
    results = {name: classify_file(EML / name, None) for name in expected}
    return expected, results, agreement(results, expected)


def test_the_table_names_every_file_it_holds_and_reads_them_all(measured):
    expected, results, _ = measured
    assert len(expected) >= 600 and {p.name for p in EML.glob("*.eml")} == set(expected)
    assert not [n for n, r in results.items() if "error" in r]
    kinds = {kind_of(rows) for rows in expected.values()}
    assert kinds == {"bounce", "complaint", "auto_reply"}


@pytest.mark.parametrize("figure", sorted(FLOORS))
def test_parse_agrees_with_sisimai_at_least_as_often_as_it_did(measured, figure):
    _, _, found = measured
    agreed, total = getattr(found, figure)
    assert total > 0
    assert agreed >= FLOORS[figure], (
        f"{figure}: {agreed}/{total}, below the floor {FLOORS[figure]}; "
        f"missed: {found.missed.get(figure, [])[:20]}")

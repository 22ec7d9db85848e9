"""The quality verdict as a pure function, and the digest reply parser."""

from __future__ import annotations

import ipaddress

import pytest

from feedback_mta.handlers.commands.keep import COMMAND as KEEP
from feedback_mta.quality import names
from feedback_mta.quality.verdict import (
    CROSS_ACCOUNT,
    DISPOSABLE,
    INVALID_ADDRESS,
    Level,
    Policy,
    Submission,
    assess,
    email_reasons,
    name_key,
)
from feedback_mta.reading.reply_text import keep_ids

POLICY = Policy(networks=(ipaddress.ip_network("203.0.113.0/24"),
                          ipaddress.ip_network("2001:db8::/32")))

#: (submission, names across accounts, expected level, expected reasons)
CASES = [
    (Submission("Ann", "Lee", "ann@gmail.com", ("192.0.2.1",)), 1, Level.OK, ()),
    (Submission("asdfgh", "qwerty", "x@gmail.com"), 1, Level.INVALID, (names.MASH,)),
    (Submission("Ann", "Lee", "ann@gmail.com", ("203.0.113.77",)), 1, Level.SUSPECTED,
     ("suspect network 203.0.113.0/24",)),
    (Submission("Ann", "Lee", "ann@gmail.com", ("2001:db8::1",)), 1, Level.SUSPECTED,
     ("suspect network 2001:db8::/32",)),
    (Submission("Ann", "Lee", "ann@gmail.com", ("not an ip",)), 1, Level.OK, ()),
    (Submission("Ann", "Lee", "ann@gmail.com"), 3, Level.SUSPECTED, (CROSS_ACCOUNT,)),
    (Submission("Ann", "Lee", "ann@gmail.com"), 2, Level.OK, ()),
    (Submission("Ann", "Lee", "ann@mailinator.com"), 1, Level.SUSPECTED, (DISPOSABLE,)),
    (Submission("Ann", "Lee", "ann@sub.mailinator.com"), 1, Level.SUSPECTED, (DISPOSABLE,)),
    (Submission("Ann", "Lee", "ann..lee@gmail.com"), 1, Level.SUSPECTED, (INVALID_ADDRESS,)),
    (Submission("Ann", "Lee", "ann@example.invalid"), 1, Level.SUSPECTED, (INVALID_ADDRESS,)),
    # Known bad wins over suspected: the name alone is enough.
    (Submission("Jkhsdf", "Jkhsdf", "j@mailinator.com", ("203.0.113.1",)), 5, Level.INVALID,
     (names.RANDOM,)),
]


@pytest.mark.parametrize(("sub", "across", "level", "reasons"), CASES)
def test_assess(sub, across, level, reasons):
    verdict = assess(sub, POLICY, names_across_accounts=across)
    assert (verdict.level, verdict.reasons) == (level, reasons)


def test_engaged_contacts_are_never_bad():
    bad = Submission("asdfgh", "qwerty", "x@mailinator.com", ("203.0.113.1",))
    assert assess(bad, POLICY, names_across_accounts=9, engaged=True).level is Level.OK


def test_verified_reasons_do_not_count_again_but_new_ones_do():
    sub = Submission("Ann", "Lee", "ann@gmail.com", ("203.0.113.7",))
    seen = ["suspect network 203.0.113.0/24"]
    assert assess(sub, POLICY, verified=seen).level is Level.OK
    verdict = assess(sub, POLICY, verified=seen, names_across_accounts=3)
    assert verdict.reasons == (CROSS_ACCOUNT,)


def test_allowed_domains_skip_the_address_check():
    assert email_reasons("a@shop.example.test", ("test",)) == []
    assert email_reasons("a@shop.example.test") == [INVALID_ADDRESS]


def test_name_key_folds_accents_case_and_field_order():
    assert name_key("José", "Núñez") == name_key("NUNEZ", "jose")
    assert name_key("Ann", "Lee") != name_key("Ann", "Li")
    assert name_key("太郎", "山田") != name_key("花子", "山田")


@pytest.mark.parametrize(("text", "ids"), [
    ("KEEP 12", [12]),
    ("keep #15, #16\nthanks", [15, 16]),
    ("Not spam: 7 and 8", [7, 8]),
    ("NOT SPAM 3\nKEEP 3", [3]),
    ("I want to keep 5 of them", []),
    ("> KEEP 99", []),
    ("keep them all", []),
])
def test_keep_ids(text, ids):
    assert keep_ids(text, KEEP.phrases) == ids

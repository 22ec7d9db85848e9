"""Tokens and the address table: genuine, bound to purpose and id, case-proof, rotatable."""

from __future__ import annotations

import pytest

from feedback_mta import tokens
from feedback_mta.addresses import AddressBook, Box
from feedback_mta.tokens import Purpose

SECRET = "s" * 20
BOOK = AddressBook("fb.example.com", (SECRET,), ("abuse",))


def test_roundtrip_and_lower_case():
    token = tokens.make(SECRET, Purpose.REPLY, 42)
    assert token == token.lower() and token.startswith("42-")
    assert tokens.verify([SECRET], Purpose.REPLY, token) == 42
    assert tokens.verify([SECRET], Purpose.REPLY, token.upper()) == 42


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-1] + ("a" if t[-1] != "a" else "b"),       # one character off
    lambda t: "43" + t[2:],                                  # moved to another id
    lambda t: t.split("-")[1],                               # id missing
    lambda t: t + "a",                                       # too long
    lambda t: "0" + t,                                       # leading zero
    lambda t: "",
])
def test_forged_tokens_fail(mutate):
    forged = mutate(tokens.make(SECRET, Purpose.REPLY, 42))
    assert tokens.verify([SECRET], Purpose.REPLY, forged) is None


def test_purpose_is_signed():
    token = tokens.make(SECRET, Purpose.REPLY, 42)
    for other in (Purpose.BOUNCE, Purpose.UNSUBSCRIBE, Purpose.FEEDBACK):
        assert tokens.verify([SECRET], other, token) is None


def test_other_secret_fails_and_rotation_keeps_old_tokens():
    old = tokens.make("o" * 20, Purpose.BOUNCE, 7)
    assert tokens.verify([SECRET], Purpose.BOUNCE, old) is None
    assert tokens.verify([SECRET, "o" * 20], Purpose.BOUNCE, old) == 7


def test_address_book_resolves_only_our_boxes():
    reply = BOOK.address(Box.REPLY, 5)
    assert BOOK.resolve(reply).object_id == 5 and BOOK.resolve(reply).box is Box.REPLY
    assert BOOK.resolve(reply.upper()).object_id == 5
    assert BOOK.resolve(f"<{reply}>").object_id == 5
    assert BOOK.resolve("fbl@fb.example.com").box is Box.FBL
    assert BOOK.resolve("Abuse@FB.example.com.").box is Box.FBL
    unsub = BOOK.address(Box.UNSUBSCRIBE, 9)
    assert BOOK.resolve(unsub).box is Box.UNSUBSCRIBE
    assert BOOK.resolve("Postmaster@FB.example.com").box is Box.POSTMASTER
    assert BOOK.resolve("postmaster").box is Box.POSTMASTER  # RFC 5321: without a domain
    # abuse@ is an admin box, unless the operator made it a feedback-loop alias (as here).
    assert BOOK.resolve("abuse@fb.example.com").box is Box.FBL
    plain = AddressBook(BOOK.domain, BOOK.secrets)
    assert plain.resolve("abuse@fb.example.com").box is Box.ABUSE
    for address in ("fbl@other.com", "fbl@sub.fb.example.com", "reply@fb.example.com",
                    "postmaster@other.com", "abuse+1@fb.example.com", "fbl", "", "@fb.example.com",
                    unsub.replace("unsubscribe+", "bounce+"), reply.replace("reply+", "fbl+")):
        assert BOOK.resolve(address) is None, address

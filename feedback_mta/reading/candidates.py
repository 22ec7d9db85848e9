"""The tokens a feedback report offers, and whether its reporter is one we trust (pure).

Where our signed token can be in a report, best first: our ``X-Feedback-Token`` header in the
returned original; a ``bounce+TOKEN`` / ``unsubscribe+TOKEN`` address in the original's
Return-Path or other headers, in the report's ``Original-Mail-From``, or as the envelope
recipient. ``handlers.attribution`` turns the first genuine one into a contact; offline
``parse`` reports them without a database.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.message import Message
from typing import NamedTuple

from feedback_mta import tokens
from feedback_mta.addresses import AddressBook, Box
from feedback_mta.reading.classify import Classification
from feedback_mta.reading.parse import ParsedMessage

_BOX_ADDRESS = re.compile(r"\b((?:bounce|unsubscribe)\+[0-9a-z]+-[a-z2-7]+@[a-z0-9.-]+)",
                          re.IGNORECASE)


class Candidate(NamedTuple):
    #: ``token-header``, ``return-path``, ``original-header`` or ``envelope``.
    how: str
    #: The token (``7-abc...``) or our address (``bounce+7-abc...@domain``) as found.
    value: str
    is_address: bool


#: The original's fields that may carry our address, best first, by how they count.
_ORIGINAL_FIELDS = (("return-path", ("return-path",)),
                    ("original-header", ("list-unsubscribe", "errors-to", "sender", "reply-to",
                                         "x-original-return-path")))


def _original_candidates(original: Message) -> list[Candidate]:
    # One pass over the original's header list (a get_all per field walked it seven times).
    values: dict[str, list[str]] = {tokens.TOKEN_HEADER.lower(): []}
    values.update((name, []) for _, names in _ORIGINAL_FIELDS for name in names)
    fetch = original.policy.header_fetch_parse
    for name, value in original.raw_items():
        wanted = values.get(name.lower())
        if wanted is not None:
            wanted.append(str(fetch(name, value)))
    found = [Candidate("token-header", " ".join(v.split()), False)
             for v in values[tokens.TOKEN_HEADER.lower()]]
    for how, names in _ORIGINAL_FIELDS:
        for name in names:
            for value in values[name]:
                found += [Candidate(how, m, True) for m in _BOX_ADDRESS.findall(value)]
    return found


def candidates(classification: Classification) -> list[Candidate]:
    """Every token the report offers, best first. Pure: nothing is verified yet."""
    report = classification.report
    found = _original_candidates(report.original) if report and report.original else []
    if report is not None and report.return_path:
        found += [Candidate("return-path", m, True)
                  for m in _BOX_ADDRESS.findall(report.return_path)]
    found += [Candidate("envelope", r.address, True) for r in classification.ours
              if r.box in (Box.BOUNCE, Box.UNSUBSCRIBE)]
    return found


def first_token(classification: Classification) -> str | None:
    """The token ``parse`` reports: the first candidate's token part, unverified."""
    first = next(iter(candidates(classification)), None)
    if first is None or not first.is_address:
        return first.value if first else None
    return first.value.split("@")[0].partition("+")[2]


def verify(candidate: Candidate, book: AddressBook) -> int | None:
    """The contact id a candidate names, if its token is genuine."""
    if not candidate.is_address:
        return tokens.verify(book.secrets, tokens.Purpose.FEEDBACK, candidate.value)
    recipient = book.resolve(candidate.value)
    if recipient is None or recipient.box not in (Box.BOUNCE, Box.UNSUBSCRIBE):
        return None
    return recipient.object_id


def account_named(classification: Classification, book: AddressBook) -> int | None:
    """The account the returned original names with a genuine ``X-Feedback-Account``."""
    report = classification.report
    if report is None or report.original is None:
        return None
    for value in report.original.get_all(tokens.ACCOUNT_HEADER, []):
        account_id = tokens.verify(book.secrets, tokens.Purpose.ACCOUNT,
                                   " ".join(str(value).split()))
        if account_id is not None:
            return account_id
    return None


def trusted_reporter(parsed: ParsedMessage, trusted_reporters: Sequence[str],
                     trusted_authserv_ids: Sequence[str] = ()) -> bool:
    """Is the report from a configured feedback loop? By its From domain (or a subdomain);
    with trusted authserv-ids, also only when that server saw dmarc=pass for the domain."""
    if not trusted_reporters or not parsed.from_address:
        return False
    domain = parsed.from_address.rpartition("@")[2]
    if not any(domain == t or domain.endswith("." + t) for t in trusted_reporters):
        return False
    if trusted_authserv_ids:
        from feedback_mta.reading import authres  # the service's check only: parse loads less

        result = authres.dmarc(parsed.headers.get("authentication-results", ()),
                               tuple(trusted_authserv_ids), domain)
        return result == "pass"
    return True

"""Which contact a feedback report is about, in the order the issue and experience set:

1. our token header (``X-Feedback-Token``) in the returned original;
2. a ``bounce+TOKEN`` (or ``unsubscribe+TOKEN``) address in the original's Return-Path or
   other headers (List-Unsubscribe, ...), in the report's ``Original-Mail-From``, or in the
   envelope recipient the report was delivered to;
3. the reported address (``Original-Rcpt-To``, ``Removal-Recipient``, a bounced
   recipient) matched to a contact of the account the original names with its
   ``X-Feedback-Account`` token, and only when the reporter is a trusted feedback loop.

Steps 1 and 2 need a token signed with our secret (``tokens``), so a forged report cannot
name a contact it has no genuine token for. Step 3 trusts the reporter instead: providers
redact, and a known feedback loop is believed about its own users.

``candidates`` and ``trusted_reporter`` are pure (``parse`` uses them offline); ``resolve``
looks contacts up through the actions layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING

from feedback_mta import authres, tokens
from feedback_mta.addresses import AddressBook, Box
from feedback_mta.classify import Classification
from feedback_mta.parse import ParsedMessage

if TYPE_CHECKING:  # the database side, kept out of offline ``parse``'s imports
    from feedback_mta.handler import HandlerContext, Settings
    from feedback_mta.models import Contact

_BOX_ADDRESS = re.compile(r"\b((?:bounce|unsubscribe)\+[0-9a-z]+-[a-z2-7]+@[a-z0-9.-]+)",
                          re.IGNORECASE)


@dataclass(frozen=True)
class Candidate:
    #: ``token-header``, ``return-path``, ``original-header`` or ``envelope``.
    how: str
    #: The token (``7-abc...``) or our address (``bounce+7-abc...@domain``) as found.
    value: str
    is_address: bool


def _original_candidates(original: Message) -> list[Candidate]:
    found = [Candidate("token-header", " ".join(str(v).split()), False)
             for v in original.get_all(tokens.TOKEN_HEADER, [])]
    for how, names in (("return-path", ("Return-Path",)),
                       ("original-header", ("List-Unsubscribe", "Errors-To", "Sender",
                                            "Reply-To", "X-Original-Return-Path"))):
        for name in names:
            for value in original.get_all(name, []):
                found += [Candidate(how, m, True) for m in _BOX_ADDRESS.findall(str(value))]
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


def trusted_reporter(parsed: ParsedMessage, settings: Settings) -> bool:
    """Is the report from a configured feedback loop? By its From domain (or a subdomain);
    with trusted authserv-ids, also only when that server saw dmarc=pass for the domain."""
    if not settings.trusted_reporters or not parsed.from_address:
        return False
    domain = parsed.from_address.rpartition("@")[2]
    if not any(domain == t or domain.endswith("." + t) for t in settings.trusted_reporters):
        return False
    if settings.trusted_authserv_ids:
        result = authres.dmarc(parsed.headers.get("authentication-results", ()),
                               settings.trusted_authserv_ids, domain)
        return result == "pass"
    return True


@dataclass(frozen=True)
class Attributed:
    contact: Contact
    #: Which step found it (``token-header``, ``return-path``, ``envelope``, ``recipient``).
    how: str


def resolve(ctx: HandlerContext) -> Attributed | None:
    """The contact the report in ``ctx`` is about, or None (unattributed: change nothing)."""
    from feedback_mta.actions import NotFound

    for candidate in candidates(ctx.classification):
        contact_id = verify(candidate, ctx.book)
        if contact_id is None:
            continue
        try:
            return Attributed(ctx.actions.contact(contact_id), candidate.how)
        except NotFound:  # genuine token of a contact since deleted
            continue
    account_id = account_named(ctx.classification, ctx.book)
    if account_id is None or not trusted_reporter(ctx.parsed, ctx.settings):
        return None
    for address in ctx.classification.recipients:
        contact = ctx.actions.contact_by_email(account_id, address)
        if contact is not None:
            return Attributed(contact, "recipient")
    return None

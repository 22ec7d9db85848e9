"""Which contact a feedback report is about, in the order the issue and experience set:

1. our token header (``X-Feedback-Token``) in the returned original;
2. a ``bounce+TOKEN`` (or ``unsubscribe+TOKEN``) address in the original's Return-Path or
   other headers (List-Unsubscribe, ...), in the report's ``Original-Mail-From``, or in the
   envelope recipient the report was delivered to;
3. the reported address (``Original-Rcpt-To``, ``Removal-Recipient``, a bounced
   recipient) matched to a contact of the account the original names with its
   ``X-Feedback-Account`` token, and only when the reporter is a trusted feedback loop;
   for an ESP's signed webhook, within that account or the one its config names
   (``[webhooks.<provider>] account``).

Steps 1 and 2 need a token signed with our secret (``tokens``), so a forged report cannot
name a contact it has no genuine token for. Step 3 trusts the reporter instead: providers
redact, and a known feedback loop is believed about its own users.

Finding the tokens is pure (``reading.candidates``, which offline ``parse`` uses too);
``resolve`` verifies them and looks contacts up through the actions layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from feedback_mta.actions import NotFound
from feedback_mta.addresses import AddressBook
from feedback_mta.handlers.base import HandlerContext, Settings
from feedback_mta.reading.candidates import (
    account_named,
    candidates,
    trusted_reporter,
    verify,
)
from feedback_mta.reading.classify import Classification
from feedback_mta.store.models import Contact


@dataclass(frozen=True)
class Attributed:
    contact: Contact
    #: Which step found it (``token-header``, ``return-path``, ``envelope``, ``recipient``).
    how: str


def named_contacts(classification: Classification, book: AddressBook
                   ) -> tuple[tuple[str, int], ...]:
    """(how, contact id) for each genuine token the report offers, best first. Pure: the
    processor reads them before its transaction, reads the first one's contact for the
    whole batch in one query, and hands them to ``resolve`` in the context."""
    found = ((candidate.how, verify(candidate, book)) for candidate in candidates(classification))
    return tuple((how, contact_id) for how, contact_id in found if contact_id is not None)


def reporting_account(classification: Classification, book: AddressBook,
                      settings: Settings) -> int | None:
    """The account whose contacts a report's recipients are looked up in (step 3): the
    one its addresses name or, for an ESP's event, ``[webhooks.<provider>] account``.
    Whether the reporter is believed is ``resolve``'s to say."""
    account_id = account_named(classification, book)
    if classification.provider is not None:
        account_id = account_id or settings.hook_account(classification.provider)
    return account_id


def reported_addresses(classification: Classification, book: AddressBook,
                       settings: Settings) -> tuple[tuple[int, str], ...]:
    """(account id, address) for each reported recipient step 3 may look up; pure. The
    processor reads their contacts for the whole batch in one query, as it does the
    tokens' (``named_contacts``); ``resolve`` still decides, the reporter's trust
    included."""
    account_id = reporting_account(classification, book, settings)
    if account_id is None:
        return ()
    return tuple((account_id, address) for address in classification.recipients)


def resolve(ctx: HandlerContext) -> Attributed | None:
    """The contact the report in ``ctx`` is about, or None (unattributed: change nothing)."""
    named = ctx.named_contacts
    if named is None:
        named = named_contacts(ctx.classification, ctx.book)
    for how, contact_id in named:
        try:
            return Attributed(ctx.uow.contacts.get(contact_id), how)
        except NotFound:  # genuine token of a contact since deleted
            continue
    # An ESP's event had its signature verified before it was stored: an ESP is believed
    # about the recipients of its own account, as a trusted feedback loop is.
    if ctx.classification.provider is None and not trusted_reporter(
            ctx.parsed, ctx.settings.feedback.trusted_reporters,
            ctx.settings.security.trusted_authserv_ids):
        return None
    account_id = reporting_account(ctx.classification, ctx.book, ctx.settings)
    if account_id is None:
        return None
    for address in ctx.classification.recipients:
        contact = ctx.uow.contacts.by_email(account_id, address)
        if contact is not None:
            return Attributed(contact, "recipient")
    return None

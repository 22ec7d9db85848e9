"""A contact's reply to a confirmation request (``confirm+TOKEN``): yes confirms, no declines.

1. **Contact**: the ``confirm+TOKEN`` recipient names it (the token was verified at RCPT).
2. **Answer**: ``reply_text.read_answers`` reads the reply's new text (the quoted request,
   its "Reply YES" instruction, the signature and "Sent from my iPhone" cut) with the
   words of ``handlers.commands.CONSENT`` (``YES``, ``NO THANKS``, ``UNSUBSCRIBE``, and
   the same in other languages). No answer, or both, changes nothing.
3. **Sender**: the person themselves, by the rules a dealer's SPAM reply follows: the
   header From is the contact's address, the envelope sender too where there is one, and
   where ``[security] trusted_authserv_ids`` is set, that server's
   ``Authentication-Results`` is there and does not say DMARC ``fail``. A forged "yes"
   would make a stranger's list look opted in; a forged "no" would silence a person.
4. **Act** through ``actions.consent`` (``contact.confirmed``, or ``contact.opted_out``
   with reason ``declined``), with the evidence: the reply's Message-ID and the inbound
   message it is kept as.

Auto-replies never get here (``classify`` makes them ``auto_reply``, and that handler
names them ``confirm: auto-reply``). Every message that changes nothing is ``ignored``
with a reason starting ``confirm:``; no answer goes back (it would be backscatter to a
forged sender, and the person already said what they meant).
"""

from __future__ import annotations

from feedback_mta.actions import Conflict, NotFound
from feedback_mta.actions.consent import Evidence
from feedback_mta.handlers import commands
from feedback_mta.handlers.base import HandlerContext, Outcome
from feedback_mta.markers import CONFIRMATION_MARKERS
from feedback_mta.reading.reply_text import read_answers
from feedback_mta.store.models import Contact, MessageState
from feedback_mta.store.states import ConfirmedVia

#: The reasons of a reply that changes nothing start so.
PREFIX = "confirm: "
#: Why an auto-reply to a confirmation request counts for nothing (``handlers.auto_reply``).
AUTO_REPLY = f"{PREFIX}auto-reply"
NOT_FROM_CONTACT = "not from the contact's address"
ENVELOPE_NOT_CONTACT = "envelope sender is not the contact's address"


def _ignored(why: str) -> Outcome:
    return Outcome(MessageState.IGNORED, PREFIX + why)


def _contact(ctx: HandlerContext) -> Contact | None:
    recipient = ctx.classification.recipient
    if recipient is None or recipient.object_id is None:
        return None
    try:
        return ctx.uow.contacts.get(recipient.object_id)
    except NotFound:
        return None


def refusal(ctx: HandlerContext, contact: Contact) -> str | None:
    """Why this reply may not answer for ``contact``, or None: the person's own address
    (From, and the envelope sender), not failing DMARC."""
    parsed = ctx.parsed
    sender = parsed.from_address
    if not sender or sender != contact.email.strip().lower():
        return NOT_FROM_CONTACT
    unauthenticated = ctx.dmarc_refusal(sender)
    if unauthenticated is not None:
        return unauthenticated.lower()
    envelope = (parsed.mail_from or "").lower()
    if envelope and envelope != sender:
        return ENVELOPE_NOT_CONTACT
    return None


def handle(ctx: HandlerContext) -> Outcome:
    contact = _contact(ctx)
    if contact is None:
        return _ignored("no contact")
    said = read_answers(ctx.parsed, commands.CONSENT_VOCABULARY, CONFIRMATION_MARKERS)
    if not said:
        return _ignored("no yes or no in the reply")
    if len(said) > 1:
        return _ignored("both yes and no in the reply")
    why = refusal(ctx, contact)
    if why is not None:
        return _ignored(why)
    command = commands.CONSENT_BY_NAME[next(iter(said))]
    evidence = Evidence(ConfirmedVia.REPLY, {"message_id": ctx.parsed.message_id,
                                             "inbound_message_id": ctx.message_id})
    try:
        changed = command.act(ctx.uow, contact, evidence)
    except Conflict:  # a complaint, a bounce, a known-bad verdict: the person's yes is not enough
        kept = "bounced" if contact.undeliverable_at is not None else contact.opt_out_reason
        return _ignored(f"contact not pending ({kept})")
    if changed:
        return Outcome(MessageState.PROCESSED, command.done)
    return _ignored(command.unchanged)

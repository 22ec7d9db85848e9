"""A human reply to a lead notification: find the lead, read the command, check the sender, act.

1. **Lead**: the ``reply+TOKEN`` recipient names it (the token was verified at RCPT). A reply
   that reached another of our addresses finds it through ``In-Reply-To`` / ``References``
   and the stored notification Message-IDs.
2. **Command**: ``reply_text.new_text`` keeps only what the sender wrote, ``reply_text.intent``
   reads a command of ``handlers.commands`` from it (``SPAM``, ``NOT SPAM``, ...). Anything
   else is a reply without a command.
3. **Sender**: header From and, where there is one, the envelope sender must both be users of
   the lead's account holding ``contact-admin``; where ``[security] trusted_authserv_ids`` is
   set, that server's ``Authentication-Results`` must be there and must not say DMARC
   ``fail`` for the From domain. Refusals change nothing and leave a ``reply.refused`` event.
4. **Act** through ``actions`` (``lead.flagged_spam`` / ``lead.restored``), and queue a short
   acknowledgement when a relay is configured. A user of the account who lacks the role gets
   a helpful answer; strangers and DMARC failures get none (that would be backscatter).

A reply to a review digest (``review+TOKEN``, the token names the account) goes to
``handle_review``: each ``KEEP <id>`` / ``NOT SPAM <id>`` line verifies that contact of the
account, under the same sender rules. A reply that cites a spam digest (its Message-ID in
In-Reply-To or References, or its instructions quoted) names leads instead: each ``NOT
SPAM <id>`` line restores that automatically flagged lead of the account.

A contact's reply to a confirmation request (``confirm+TOKEN``, the token names the
contact) goes to ``handlers.confirmation``: yes confirms, no declines.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session

from feedback_mta.actions import NotFound
from feedback_mta.actions.accounts import preload_users
from feedback_mta.actions.leads import preload_leads
from feedback_mta.actions.mail import compose
from feedback_mta.addresses import SPAM_DIGEST_ID, Box
from feedback_mta.handlers import commands, confirmation
from feedback_mta.handlers.base import HandlerContext, Outcome
from feedback_mta.kinds import Kind
from feedback_mta.reading.classify import Classification
from feedback_mta.reading.parse import ParsedMessage
from feedback_mta.reading.reply_text import (
    DIGEST_MARKERS,
    SPAM_DIGEST_MARKER,
    keep_ids,
    new_text,
    read,
)
from feedback_mta.store.models import Contact, Lead, MessageState, Role

NOT_CONTACT_ADMIN = "not a contact admin"


def named_lead(classification: Classification) -> int | None:
    """The lead a reply's ``reply+TOKEN`` recipient names (its token verified); pure."""
    recipient = classification.recipient
    if (classification.kind is Kind.REPLY and recipient is not None
            and recipient.box is Box.REPLY):
        return recipient.object_id
    return None


def preload(session: Session, replies: Iterable[tuple[int, ParsedMessage]]) -> None:
    """Read a batch's replies' leads (``named_lead``: locked, as the batch's contacts are)
    and the users their senders would be, two statements a batch instead of two a reply:
    ``find_lead`` and ``refusal`` then find them in the session."""
    replies = list(replies)
    leads = {lead.id: lead for lead in preload_leads(session, (i for i, _ in replies))}
    preload_users(session, (
        (leads[lead_id].account_id, sender) for lead_id, parsed in replies if lead_id in leads
        for sender in (parsed.from_address, parsed.mail_from) if sender))


def find_lead(ctx: HandlerContext) -> Lead | None:
    if (lead_id := named_lead(ctx.classification)) is not None:
        try:
            return ctx.uow.leads.get(lead_id)
        except NotFound:
            return None
    parsed = ctx.parsed
    return ctx.uow.leads.by_notification([*parsed.in_reply_to, *reversed(parsed.references)])


def refusal(ctx: HandlerContext, account_id: int) -> str | None:
    """Why this sender may not change this account's leads and contacts, or None."""
    parsed = ctx.parsed
    sender = parsed.from_address
    if not sender:
        return "no From address"
    unauthenticated = ctx.dmarc_refusal(sender)
    if unauthenticated is not None:
        return unauthenticated
    user = ctx.uow.accounts.user(account_id, sender)
    if user is None:
        return "not a user of the account"
    if Role.CONTACT_ADMIN not in user.role_set:
        return NOT_CONTACT_ADMIN
    envelope = (parsed.mail_from or "").lower()
    if envelope and envelope != sender:
        other = ctx.uow.accounts.user(account_id, envelope)
        if other is None or Role.CONTACT_ADMIN not in other.role_set:
            return "envelope sender is not a contact admin"
    return None


def handle(ctx: HandlerContext) -> Outcome:
    recipient = ctx.classification.recipient
    if recipient is not None and recipient.box is Box.REVIEW:
        return handle_review(ctx)
    if recipient is not None and recipient.box is Box.CONFIRM:
        return confirmation.handle(ctx)
    parsed = ctx.parsed
    lead = find_lead(ctx)
    if lead is None:
        return Outcome(MessageState.IGNORED, "no lead")
    wanted = read(parsed, commands.VOCABULARY, ctx.settings.replies.markers)
    if wanted is None:
        return Outcome(MessageState.IGNORED, "no command")
    why = refusal(ctx, lead.account_id)
    if why is not None:
        ctx.uow.leads.refuse(why, lead, intent=wanted, sender=parsed.from_address,
                             envelope_sender=parsed.mail_from)
        if why == NOT_CONTACT_ADMIN:
            _acknowledge(ctx, lead, "ack.refused", commands.ACK_REFUSED)
        return Outcome(MessageState.IGNORED, f"refused: {why}")
    command = commands.BY_NAME[wanted]
    if command.act(ctx.uow, lead):
        _acknowledge(ctx, lead, f"ack.{command.done.replace(' ', '_')}", command.ack_done)
        return Outcome(MessageState.PROCESSED, command.done)
    _acknowledge(ctx, lead, f"ack.{command.unchanged.replace(' ', '_')}", command.ack_unchanged)
    return Outcome(MessageState.IGNORED, command.unchanged)


def handle_review(ctx: HandlerContext) -> Outcome:
    """``KEEP <id>`` lines in a reply to a review digest: verify those contacts."""
    parsed = ctx.parsed
    assert ctx.classification.recipient is not None
    account_id = ctx.classification.recipient.object_id
    assert account_id is not None
    text = new_text(parsed.text, parsed.html, (*ctx.settings.replies.markers, *DIGEST_MARKERS))
    about = "lead" if _cites_spam_digest(ctx) else "contact"
    for command in (c for c in commands.REVIEW if c.about == about):
        ids = keep_ids(text, command.phrases)
        if ids:
            break
    else:
        return Outcome(MessageState.IGNORED, "no command")
    why = refusal(ctx, account_id)
    if why is not None:
        ctx.uow.quality.refuse_review(why, account_id, sender=parsed.from_address, contacts=ids)
        return Outcome(MessageState.IGNORED, f"refused: {why}")
    done, unknown = [], []
    for named in ids:
        found: Lead | Contact | None = (ctx.uow.session.get(Lead, named) if about == "lead"
                                        else ctx.uow.session.get(Contact, named))
        if found is None or found.account_id != account_id:
            unknown.append(named)  # never another account's
            continue
        if command.act(ctx.uow, found) or about == "contact":
            done.append(named)
        else:
            unknown.append(named)  # a lead that is not flagged
    if ctx.settings.acknowledge and parsed.mail_from and parsed.from_address:
        text = command.ack.format(done=", ".join(f"#{i}" for i in done) or "none")
        if unknown:
            text += command.ack_unknown.format(unknown=", ".join(f"#{i}" for i in unknown))
        raw = compose(
            to=parsed.from_address, reply_address=ctx.book.address(Box.REVIEW, account_id),
            from_name=ctx.settings.outbound.from_name, domain=ctx.book.domain,
            subject=parsed.subject or "Review", in_reply_to=parsed.message_id,
            references=parsed.references, text=text)
        ctx.uow.mail.queue(f"ack.{command.done}", parsed.from_address, raw)
    if not done:
        return Outcome(MessageState.IGNORED, f"no {about} of the account")
    return Outcome(MessageState.PROCESSED, f"{command.done} {len(done)}")


def _cites_spam_digest(ctx: HandlerContext) -> bool:
    """Is this a reply to a spam digest (its Message-ID cited, or its words quoted)?"""
    parsed = ctx.parsed
    if any(m.startswith(SPAM_DIGEST_ID) for m in (*parsed.in_reply_to, *parsed.references)):
        return True
    return SPAM_DIGEST_MARKER in (parsed.text or "").lower()


def _acknowledge(ctx: HandlerContext, lead: Lead, purpose: str, text: str) -> None:
    parsed = ctx.parsed
    # Never answer the null sender or an unknown one (classify already kept auto-replies out).
    if not ctx.settings.acknowledge or not parsed.mail_from or not parsed.from_address:
        return
    assert lead.id is not None
    raw = compose(
        to=parsed.from_address, reply_address=ctx.book.address(Box.REPLY, lead.id),
        from_name=ctx.settings.outbound.from_name, domain=ctx.book.domain,
        subject=parsed.subject or f"Lead #{lead.id}", in_reply_to=parsed.message_id,
        references=parsed.references,
        text=text.format(lead=lead.id, sender=parsed.from_address))
    ctx.uow.mail.queue(purpose, parsed.from_address, raw, lead)

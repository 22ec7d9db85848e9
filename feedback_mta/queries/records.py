"""One lead and one contact as every output shows them, read with Core statements.

The fields of a lead (``lead_dict``) and of a contact (``contact_fields``) are defined here
once, for a model object and a row alike; ``lead`` and ``contact`` read one of each over
the light tables of ``store.tables``. The command line's ``lead show`` and ``contact show``
(its fast path and typer's alike) and the API call these, so a read of one record loads
neither SQLModel nor pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from feedback_mta import events
from feedback_mta.addresses import AddressBook, Box, notification_message_id
from feedback_mta.queries import NotFound
from feedback_mta.store import tables
from feedback_mta.store.states import LeadStatus

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from feedback_mta.actions.leads import NewLead
    from feedback_mta.store.models import Contact, Lead

_L, _C, _T, _E = tables.lead, tables.contact, tables.tag, tables.event


def lead_dict(lead: Lead | NewLead | sa.Row[Any], book: AddressBook) -> dict[str, Any]:
    """A lead's fields, of a ``Lead``, of a row of ``tables.lead`` or of a lead just
    registered."""
    assert lead.id is not None
    return {
        "id": lead.id, "account_id": lead.account_id, "contact_id": lead.contact_id,
        "status": lead.status, "source_ip": lead.source_ip, "comments": lead.comments,
        "reply_to": book.address(Box.REPLY, lead.id),
        "message_id": lead.notification_message_id or notification_message_id(book, lead.id),
        "flagged_at": lead.flagged_at, "flagged_by": lead.flagged_by,
        "flagged_via": lead.flagged_via, "exported_at": lead.exported_at,
        "spam_score": lead.spam_score, "spam_reasons": list(lead.spam_reasons or ()),
        "created_at": lead.created_at,
    }


def lead(conn: Connection, book: AddressBook, lead_id: int) -> dict[str, Any]:
    """One lead (``lead show``, ``GET /v1/leads/ID``)."""
    row = conn.execute(sa.select(_L).where(_L.c.id == lead_id)).first()
    if row is None:
        raise NotFound(f"no lead {lead_id}")
    return lead_dict(row, book)


def contact_fields(contact: Contact | sa.Row[Any], tag_names: list[str]) -> dict[str, Any]:
    """A contact's fields, of a ``Contact`` or of a row of ``CONTACT`` below."""
    return {"id": contact.id, "account_id": contact.account_id, "email": contact.email,
            "first_name": contact.first_name, "last_name": contact.last_name,
            "status": contact.status, "opt_out_reason": contact.opt_out_reason,
            "opted_out_at": contact.opted_out_at, "mailable": contact.mailable,
            "not_mailable_reason": contact.not_mailable_reason, "tags": tag_names,
            "quality": contact.quality,
            "quality_reasons": list(contact.quality_reasons or ()),
            "review_deadline": contact.review_deadline,
            "verified": contact.verified_at is not None, "verified_at": contact.verified_at,
            "engaged": contact.engaged_at is not None,
            "engagement": contact.engagement.split(), "source_ip": contact.source_ip,
            "consent": {"method": contact.consent_method, "source": contact.consent_source,
                        "at": contact.consent_at, "confirmed_at": contact.confirmed_at,
                        "confirmed_via": contact.confirmed_via,
                        "confirm_by": contact.confirm_by}}


#: A contact with ``mailable`` and ``not_mailable_reason``, as the model has them.
CONTACT = tables.CONTACT

#: The bounces and complaints ``contact show`` counts, as the bounce handler counts them.
_COUNTED = (events.CONTACT_HARD_BOUNCED, events.CONTACT_SOFT_BOUNCED, events.CONTACT_COMPLAINED)


def contact(conn: Connection, contact_id: int) -> dict[str, Any]:
    """One contact (``contact show``, ``GET /v1/contacts/ID``): status, opt-out reason, tags,
    review deadline, bounce counts, leads."""
    row = conn.execute(CONTACT.where(_C.c.id == contact_id)).first()
    if row is None:
        raise NotFound(f"no contact {contact_id}")
    names = list(conn.execute(sa.select(_T.c.name).where(_T.c.contact_id == contact_id)
                              .order_by(_T.c.name)).scalars())
    # The contact's activities as its inbox shows them: spam leads are left out.
    leads = conn.execute(sa.select(_L.c.id).where(
        _L.c.contact_id == contact_id, _L.c.status == LeadStatus.ACTIVE.value)
        .order_by(_L.c.id.desc())).scalars()
    # Bounces as the bounce handler counts them, for "why is this not mailable?".
    counts = {action: n for action, n in conn.execute(
        sa.select(_E.c.action, sa.func.count()).where(
            _E.c.subject_type == "contact", _E.c.subject_id == contact_id,
            _E.c.action.in_(_COUNTED)).group_by(_E.c.action))}
    return {**contact_fields(row, names),
            "undeliverable_at": row.undeliverable_at,
            "undeliverable_reason": row.undeliverable_reason,
            "hard_bounces": counts.get(events.CONTACT_HARD_BOUNCED, 0),
            "soft_bounces": counts.get(events.CONTACT_SOFT_BOUNCED, 0),
            "complaints": counts.get(events.CONTACT_COMPLAINED, 0),
            "leads": list(leads),
            "created_at": row.created_at, "updated_at": row.updated_at}


#: The events that made a contact's consent what it is: how it came, the requests sent,
#: the person's confirmation, and every opt-out and opt-in (a "no", a deadline passed, an
#: admin's, a complaint's).
CONSENT_EVENTS = (events.CONTACT_CONSENT_RECORDED, events.CONTACT_CONFIRMATION_SENT,
                  events.CONTACT_CONFIRMED, events.CONTACT_OPTED_OUT,
                  events.CONTACT_OPTED_IN)


def consent(conn: Connection, contact_id: int) -> dict[str, Any]:
    """The proof of a contact's consent (``contact consent``, ``GET
    /v1/contacts/ID/consent``): its record, with the evidence of the confirmation, and
    the events that made it, in order (``ix_event_subject``)."""
    row = conn.execute(sa.select(_C).where(_C.c.id == contact_id)).first()
    if row is None:
        raise NotFound(f"no contact {contact_id}")
    made = conn.execute(sa.select(_E).where(
        _E.c.subject_type == "contact", _E.c.subject_id == contact_id,
        _E.c.action.in_(CONSENT_EVENTS)).order_by(_E.c.id))
    return {"contact_id": row.id, "account_id": row.account_id, "email": row.email,
            "status": row.status, "method": row.consent_method, "source": row.consent_source,
            "at": row.consent_at, "ip": row.consent_ip, "user_agent": row.consent_user_agent,
            "confirmed_at": row.confirmed_at, "confirmed_via": row.confirmed_via,
            "evidence": row.confirmation_evidence, "confirm_by": row.confirm_by,
            "confirmation_sent_at": row.confirmation_sent_at,
            "events": [{"id": e.id, "type": e.action, "at": e.at, "actor": e.actor,
                        "via": e.via, "reason": e.reason, "data": e.data or {}}
                       for e in made]}

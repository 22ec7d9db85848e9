"""The tables a command-line read looks at, as plain SQLAlchemy Core ``Table`` objects.

``models`` declares every table with SQLModel, which loads pydantic and builds a class per
table: about half of a read's start-up. A read of one lead, one contact or the inbox needs
neither, so these tables are declared here again with Core alone, on their own
``MetaData`` (the schema itself comes from the migrations, so no keys or indexes here).
``tests/test_tables.py`` holds them to the models, column by column: a column added to a
model fails it until it is added here too.

What both need lives here and ``models`` imports it: the JSON column type and what
"mailable" means in SQL.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, DateTime, Float, Integer, LargeBinary, Text
from sqlalchemy.types import TypeDecorator

from feedback_mta.store.states import UNCONFIRMED, ContactStatus

#: Why a contact that bounced (hard, or soft too often) is not mailable.
BOUNCED = "bounced"


class JsonText(TypeDecorator[Any]):
    """JSON in a TEXT column: lists and dicts in, the same back (the one place that calls
    ``json.loads`` on stored JSON). A ``str`` is taken as JSON text already, as raw inserts
    write it; NULL stays None. The column stays TEXT: no migration, any database."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return None if value is None or value == "" else json.loads(value)


def not_mailable_reason(status: Any, opt_out_reason: Any, undeliverable_at: Any
                        ) -> sa.ColumnElement[str | None]:
    """What stands in the way of mail to a contact, in SQL: the opt-out's reason, else
    ``unconfirmed`` (pending), else ``bounced``; NULL when it is mailable
    (``models.Contact`` says the same of an object). Of three columns, of a table or of
    the model."""
    return sa.case(
        (status == ContactStatus.OPTED_OUT.value,
         sa.func.coalesce(opt_out_reason, ContactStatus.OPTED_OUT.value)),
        (status == ContactStatus.PENDING.value, UNCONFIRMED),
        (status != ContactStatus.ACTIVE.value, status),
        (undeliverable_at.is_not(None), BOUNCED),
        else_=sa.null())


metadata = sa.MetaData()


def _ts(name: str, nullable: bool = True) -> Column[Any]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


def _text(name: str, nullable: bool = True) -> Column[Any]:
    return Column(name, Text, nullable=nullable)


lead = sa.Table(
    "lead", metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, nullable=False),
    Column("contact_id", Integer, nullable=False),
    _text("source_ip"), _text("source_net"), _text("comments", False), _text("status", False),
    _ts("flagged_at"), _text("flagged_by"), _text("flagged_via"),
    Column("spam_score", Float), Column("spam_reasons", JsonText),
    _ts("exported_at"), _ts("digested_at"), _text("notification_message_id"),
    _ts("created_at", False),
)

contact = sa.Table(
    "contact", metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, nullable=False),
    _text("email", False), _text("first_name", False), _text("last_name", False),
    _text("status", False), _text("opt_out_reason"), _ts("opted_out_at"),
    _ts("undeliverable_at"), _text("undeliverable_reason"), _text("source_ip"),
    _text("quality"), Column("quality_reasons", JsonText), _ts("review_deadline"),
    _ts("reminded_at"), _ts("verified_at"), _text("verified_by"),
    Column("verified_reasons", JsonText), _ts("engaged_at"), _text("engagement", False),
    _text("consent_method", False), _text("consent_source", False), _ts("consent_at"),
    _text("consent_ip"), _text("consent_user_agent"), _ts("confirmed_at"),
    _text("confirmed_via"), Column("confirmation_evidence", JsonText), _ts("confirm_by"),
    _ts("confirmation_sent_at"), _ts("confirmation_reminded_at"),
    _ts("created_at", False), _ts("updated_at", False),
)

tag = sa.Table(
    "tag", metadata,
    Column("id", Integer, primary_key=True),
    Column("contact_id", Integer, nullable=False),
    _text("name", False), _ts("created_at", False), _text("created_by", False),
)

event = sa.Table(
    "event", metadata,
    Column("id", Integer, primary_key=True),
    _ts("at", False), Column("account_id", Integer), _text("actor", False),
    _text("action", False), _text("subject_type", False), Column("subject_id", Integer),
    Column("inbound_message_id", Integer), _text("reason"),
    Column("data", JsonText, nullable=False), _text("via"),
)

inbound_message = sa.Table(
    "inbound_message", metadata,
    Column("id", Integer, primary_key=True),
    _ts("received_at", False), _text("protocol", False), _text("peer"), _text("helo"),
    _text("mail_from", False), Column("rcpt_tos", JsonText, nullable=False),
    Column("size", Integer, nullable=False), _text("message_id"),
    _text("content_hash", False), _text("dedupe_key"),
    Column("raw", LargeBinary, nullable=False), _text("state", False), _text("reason"),
    _text("error"), _text("kind"), Column("attempts", Integer, nullable=False),
    _ts("processed_at"), Column("duplicate_of", Integer), _ts("purged_at"),
    _text("provider"),
)

#: Whether mail may be sent to a contact, and if not why: columns to select beside the
#: contact's own (``models.Contact.mailable`` and ``not_mailable_reason`` of a row).
CONTACT_NOT_MAILABLE = not_mailable_reason(contact.c.status, contact.c.opt_out_reason,
                                           contact.c.undeliverable_at)

#: A contact with ``mailable`` and ``not_mailable_reason``, as the model has them.
CONTACT = sa.select(contact, CONTACT_NOT_MAILABLE.label("not_mailable_reason"),
                    CONTACT_NOT_MAILABLE.is_(None).label("mailable"))

"""What the behaviour signals of a new lead read (``quality.spam.behaviour``): leads from
its address and network within the hour, senders of nearly the same comments within the
day. The lead's own comment bands are stored here too, in the lead's transaction. (How
often the account sees its script comes with the model's counts.)"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlmodel import Session

from feedback_mta.quality import campaigns, spam
from feedback_mta.store import db
from feedback_mta.store.models import CommentBand, Lead, table_of, utcnow


class NewLeadLike(Protocol):
    """What ``facts`` reads of a lead: a ``Lead``, or a registration's ``leads.NewLead``."""

    @property
    def id(self) -> int | None: ...
    @property
    def account_id(self) -> int: ...
    @property
    def source_ip(self) -> str | None: ...
    @property
    def source_net(self) -> str | None: ...
    @property
    def comments(self) -> str: ...

_L, _B = table_of(Lead), table_of(CommentBand)

#: The most comment-band rows of the day one lead's campaign count reads: its
#: ``spam.MANY_SENDERS`` distinct senders are looked for among these (any of the day's
#: rows; a lead writes one a band).
CAMPAIGN_ROWS = 1000


def _up_to(rows: sa.Select, cap: int) -> sa.Select:
    """How many rows ``rows`` finds, but at most ``cap``: an index scan that stops there,
    however many there are (a flood from one address made every new lead count them all,
    its registrations slower with each lead)."""
    return sa.select(sa.func.count()).select_from(rows.limit(cap).subquery())


# Built once: they run for every new lead (the counts on the driver's cursor,
# ``db.Prepared``).
_RECENT = (_L.c.id != sa.bindparam("lead"), _L.c.created_at >= sa.bindparam("since"))
_FROM_ADDRESS = db.Prepared(_up_to(sa.select(_L.c.id).where(
    _L.c.source_ip == sa.bindparam("ip"), *_RECENT), spam.MANY_LEADS_FROM_ADDRESS))
_FROM_NETWORK = db.Prepared(_up_to(sa.select(_L.c.id).where(
    _L.c.source_net == sa.bindparam("net"), *_RECENT), spam.MANY_LEADS_FROM_NETWORK))
_BANDS = sa.select(_B.c.sender).where(
    _B.c.band.in_(sa.bindparam("bands", expanding=True)), _B.c.sender != sa.bindparam("sender"),
    _B.c.created_at >= sa.bindparam("since")).limit(CAMPAIGN_ROWS).subquery()
_SENDERS = _up_to(sa.select(_BANDS.c.sender).distinct(), spam.MANY_SENDERS)
_ADD_BANDS = sa.insert(_B)


def network_of(ip: str | None) -> str | None:
    """The /24 of an IPv4 address, the /64 of an IPv6 one (a network's many hosts)."""
    if not ip:
        return None
    address = ipaddress.ip_address(ip)
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class Behaviour:
    """Reads of what other leads did lately, and the comment bands they are read by. It
    records no event: the bands are facts about a lead, not a change anyone asked for."""

    __slots__ = ("session",)

    def __init__(self, session: Session) -> None:
        self.session = session

    def facts(self, lead: NewLeadLike, email: str,
              bands: Sequence[int] | None = None) -> dict[str, int]:
        """The ``LeadFacts`` fields of behaviour for this (flushed) lead: leads from its
        address and from its network within the hour, senders of nearly the same comments
        within the day, each counted only as far as a signal needs (``_up_to``); stores
        its comment bands (``bands``: computed already, outside the transaction)."""
        now = utcnow()
        conn = self.session.connection()
        facts: dict[str, int] = {}
        if lead.source_net:
            recent = {"lead": lead.id, "since": now - timedelta(seconds=spam.VELOCITY_WINDOW)}
            facts["ip_leads"] = _FROM_ADDRESS.scalar(conn, {**recent, "ip": lead.source_ip})
            facts["net_leads"] = _FROM_NETWORK.scalar(conn, {**recent, "net": lead.source_net})
        keys = list(bands) if bands is not None else campaigns.bands(lead.comments)
        if keys:
            sender = email.lower()
            facts["campaign_senders"] = conn.execute(_SENDERS, {
                "bands": keys, "sender": sender,
                "since": now - timedelta(seconds=spam.CAMPAIGN_WINDOW)}).scalar_one()
            conn.execute(_ADD_BANDS, [
                {"band": key, "lead_id": lead.id, "account_id": lead.account_id,
                 "sender": sender, "created_at": now} for key in keys])
        return facts

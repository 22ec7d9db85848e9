"""What the behaviour signals of a new lead read (``quality.spam.behaviour``): leads from
its address and network within the hour, senders of nearly the same comments within the
day, and how often its script is seen in the account. The lead's own comment bands are
stored here too, in the lead's transaction."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import sqlalchemy as sa

from feedback_mta.actions.audit import Recorder
from feedback_mta.quality import campaigns, spam
from feedback_mta.store.models import CommentBand, Lead, SpamFeature, table_of, utcnow

_L, _B, _F = table_of(Lead), table_of(CommentBand), table_of(SpamFeature)


def network_of(ip: str | None) -> str | None:
    """The /24 of an IPv4 address, the /64 of an IPv6 one (a network's many hosts)."""
    if not ip:
        return None
    address = ipaddress.ip_address(ip)
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class BehaviourActions(Recorder):
    def behaviour(self, lead: Lead, email: str, comments_script: str) -> dict[str, object]:
        """The ``LeadFacts`` fields of behaviour for this (flushed) lead; stores its
        comment bands."""
        now = utcnow()
        conn = self.session.connection()
        since = now - timedelta(seconds=spam.VELOCITY_WINDOW)
        facts: dict[str, object] = {}
        if lead.source_ip:
            facts["ip_leads"] = conn.execute(sa.select(sa.func.count()).where(
                _L.c.source_ip == lead.source_ip, _L.c.created_at >= since,
                _L.c.id != lead.id)).scalar_one()
            facts["net_leads"] = conn.execute(sa.select(sa.func.count()).where(
                _L.c.source_net == lead.source_net, _L.c.created_at >= since,
                _L.c.id != lead.id)).scalar_one()
        keys = campaigns.bands(lead.comments)
        sender = email.lower()
        if keys:
            facts["campaign_senders"] = conn.execute(
                sa.select(sa.func.count(sa.distinct(_B.c.sender))).where(
                    _B.c.band.in_(keys), _B.c.sender != sender,
                    _B.c.created_at >= now - timedelta(seconds=spam.CAMPAIGN_WINDOW))
            ).scalar_one()
            conn.execute(sa.insert(_B), [
                {"band": key, "lead_id": lead.id, "account_id": lead.account_id,
                 "sender": sender, "created_at": now} for key in keys])
        if comments_script:
            seen = dict(conn.execute(sa.select(_F.c.feature, _F.c.seen).where(
                _F.c.account_id == lead.account_id,
                _F.c.feature.in_((spam.LABELS, f"s:{comments_script}")))).all())
            total = seen.get(spam.LABELS, 0)
            if total >= spam.MIN_SCRIPT_LEADS:
                facts["script_share"] = seen.get(f"s:{comments_script}", 0) / total
        return facts

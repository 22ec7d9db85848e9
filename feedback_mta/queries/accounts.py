"""Accounts, their users, and the suspect networks."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from feedback_mta.queries import NotFound
from feedback_mta.store.models import (
    Account,
    Contact,
    Lead,
    SuspectNetwork,
    User,
    table_of,
)


def require_account(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"no account {account_id}")
    return account


def listing(session: Session, account_id: int | None = None) -> list[dict[str, Any]]:
    """Every account (or one) with its number of users, contacts and leads."""
    counts: dict[str, dict[int, int]] = {}
    for name, model in (("users", User), ("contacts", Contact), ("leads", Lead)):
        column = table_of(model).c.account_id
        query = sa.select(column, sa.func.count()).group_by(column)
        if account_id is not None:
            query = query.where(column == account_id)
        counts[name] = {a: n for a, n in session.execute(query)}
    accounts = select(Account).order_by(col(Account.id))
    if account_id is not None:
        accounts = accounts.where(Account.id == account_id)
    return [{"id": a.id, "name": a.name, "created_at": a.created_at,
             **{name: per.get(a.id or 0, 0) for name, per in counts.items()}}
            for a in session.exec(accounts)]


def show(session: Session, account_id: int, window: float = 7 * 86400.0) -> dict[str, Any]:
    require_account(session, account_id)
    return {**listing(session, account_id)[0], **sending(session, account_id, window),
            "user_list": users(session, account_id)}


def sending(session: Session, account_id: int, window: float) -> dict[str, Any]:
    """The guard's advice as ``account show`` and ``GET /v1/accounts/{id}`` give it."""
    # The guard's own read (it judges the same figures under a lock); imported here so
    # that the other reads do not load the actions layer.
    from feedback_mta.actions.accounts import guard_figures

    account = require_account(session, account_id)
    return {"sending": account.sending, "sending_reasons": list(account.sending_reasons or ()),
            "sending_changed_at": account.sending_changed_at,
            "figures": guard_figures(session, account, window)}


def users(session: Session, account_id: int) -> list[dict[str, Any]]:
    require_account(session, account_id)
    return [{"id": u.id, "account_id": u.account_id, "email": u.email,
             "roles": sorted(u.role_set), "created_at": u.created_at}
            for u in session.exec(select(User).where(User.account_id == account_id)
                                  .order_by(col(User.id)))]


def networks(session: Session, configured: tuple[str, ...]) -> list[dict[str, Any]]:
    """Suspect networks: from the config, then those added with ``network add``."""
    rows = [{"cidr": c, "source": "config", "note": "", "created_at": None,
             "created_by": None} for c in configured]
    return rows + [{"cidr": r.cidr, "source": "database", "note": r.note,
                    "created_at": r.created_at, "created_by": r.created_by}
                   for r in session.exec(select(SuspectNetwork).order_by(col(SuspectNetwork.id)))]

"""Accounts (tenants), their users and roles, and the messages they report sending."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from sqlmodel import select

from feedback_mta import events
from feedback_mta.actions.audit import Invalid, NotFound, Recorder
from feedback_mta.store.models import Account, Role, SentCount, User

_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[a-z0-9.-]+\.[a-z0-9-]+$")


def normalize_email(address: str) -> str:
    """Lower-case and check the shape of an address (full validation comes with quality checks)."""
    address = address.strip().lower()
    if not _EMAIL.match(address) or len(address) > 254:
        raise Invalid(f"not an email address: {address!r}")
    return address


def normalize_ip(value: object) -> str | None:
    """A form's source IP in its canonical text, None when empty; ``Invalid`` otherwise."""
    text = str(value or "").strip()
    if not text:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise Invalid(f"not an IP address: {text!r}") from None


class AccountActions(Recorder):
    def account(self, account_id: int) -> Account:
        account = self.session.get(Account, account_id)
        if account is None:
            raise NotFound(f"no account {account_id}")
        return account

    def user(self, account_id: int, email: str) -> User | None:
        """The account's user with this address, or None."""
        return self.session.exec(select(User).where(
            User.account_id == account_id, User.email == email.strip().lower())).first()

    def add_account(self, name: str) -> Account:
        name = name.strip()
        if not name:
            raise Invalid("an account needs a name")
        account = Account(name=name)
        self.session.add(account)
        self.session.flush()
        self.record(events.ACCOUNT_CREATED, "account", account.id, account.id, name=name)
        return account

    def add_user(self, account_id: int, email: str, roles: Iterable[str] = ()) -> User:
        """Add a user, or grant more roles to an existing one."""
        self.account(account_id)
        email = normalize_email(email)
        wanted = {Role(r).value for r in roles}
        user = self.user(account_id, email)
        if user is None:
            user = User(account_id=account_id, email=email, roles=" ".join(sorted(wanted)))
            self.session.add(user)
            self.session.flush()
            self.record(events.USER_CREATED, "user", user.id, account_id, roles=sorted(wanted))
        elif not wanted <= user.role_set:
            user.roles = " ".join(sorted(user.role_set | wanted))
            self.session.add(user)
            self.record(events.USER_ROLES_GRANTED, "user", user.id, account_id,
                        roles=sorted(wanted))
        return user

    def existing_user(self, account_id: int, email: str) -> User:
        """The account's user with this address; NotFound names what is missing."""
        self.account(account_id)
        user = self.user(account_id, email)
        if user is None:
            raise NotFound(f"no user {email.strip().lower()} in account {account_id}")
        return user

    def revoke_roles(self, user: User, roles: Iterable[str]) -> bool:
        """Take roles from a user; False (and no event) when it held none of them."""
        gone = {Role(r).value for r in roles} & user.role_set
        if not gone:
            return False
        user.roles = " ".join(sorted(user.role_set - gone))
        self.session.add(user)
        self.record(events.USER_ROLES_REVOKED, "user", user.id, user.account_id,
                    roles=sorted(gone))
        return True

    def remove_user(self, user: User) -> None:
        """Remove a user: its replies no longer act (the audit events stay)."""
        self.session.delete(user)
        self.session.flush()
        self.record(events.USER_REMOVED, "user", user.id, user.account_id, email=user.email)

    def add_sent(self, account_id: int, day: str, count: int) -> SentCount:
        """Add to the messages the account sent on ``day`` (ISO date)."""
        self.account(account_id)
        if count < 0:
            raise Invalid("a sent count cannot be negative")
        row = self.session.exec(select(SentCount).where(
            SentCount.account_id == account_id, SentCount.day == day)).first()
        if row is None:
            row = SentCount(account_id=account_id, day=day, count=0)
        row.count += count
        self.session.add(row)
        self.session.flush()
        self.record(events.ACCOUNT_SENT_RECORDED, "account", account_id, account_id, day=day,
                    count=count, total=row.count)
        return row

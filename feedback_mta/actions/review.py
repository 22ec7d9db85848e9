"""Signing in to the review page: a link mailed to a contact admin, good once, for minutes.

No passwords: whoever reads the admin's mail may review, as whoever reads it may already
reply ``NOT SPAM``. A link is ``<id>.<secret>``; only the SHA-256 of the secret is kept,
so a copy of the database signs nobody in, and using it is one conditional UPDATE, so it
signs in once even when two requests race. The mail goes through the outbox like every
mail we send, naming its link in a header (``LINK_HEADER``): the outbox drops a sign-in
mail whose link expired (or was used) before it could be delivered (``link_expired``), so
a link sent late, after a relay came back, never arrives dead. ``make_sign_in_link`` makes
a link without mail, for ``feedback-mta review link EMAIL``.

A used link is the session it started: using it moves its ``expires_at`` to the session's
end, every page asks ``session_email`` whether it still holds, and signing out moves
``expires_at`` to now, so the cookie of a session ended is refused from then on, however
long it was signed for.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.utils import make_msgid

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session, select

from feedback_mta import logs
from feedback_mta.actions.accounts import normalize_email
from feedback_mta.actions.mail import Mail, digest
from feedback_mta.store.models import ReviewLink, Role, User, table_of, utcnow

log = logs.get(__name__)

_R = table_of(ReviewLink)
#: Unused, unexpired links an address may have at once: asking more sends nothing more.
MAX_PENDING = 3
#: The outbound mail's ``purpose`` of a sign-in link, and the header naming the link.
SIGN_IN = "review.sign_in"
LINK_HEADER = "X-Review-Link"


@dataclass(frozen=True)
class SignInLink:
    """A sign-in link made for an address (its secret is in ``url`` only)."""

    id: int
    email: str
    url: str
    expires_at: datetime


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def sign_in_mail(*, to: str, url: str, minutes: int, from_name: str, sender: str,
                 domain: str, link_id: int) -> bytes:
    """The mail with the sign-in link, naming the link in ``LINK_HEADER``. Pure."""
    return digest(
        to=to, reply_address=sender, from_name=from_name,
        subject="Your sign-in link to the lead review page",
        message_id=make_msgid("review-link", domain=domain),
        headers={LINK_HEADER: str(link_id)},
        text=(f"Someone (we hope you) asked to sign in to the review page as {to}.\n\n"
              f"Open this link within {minutes} minutes to sign in; it works once:\n\n"
              f"    {url}\n\n"
              "If you did not ask, ignore this mail: nothing happens without the link.\n"))


def link_of(raw: bytes) -> int | None:
    """The id of the sign-in link a mail of ours carries (``LINK_HEADER``), or None. Pure."""
    value = (BytesHeaderParser().parsebytes(raw).get(LINK_HEADER) or "").strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 10 else None


def link_expired(conn: Connection, raw: bytes, now: datetime | None = None) -> bool:
    """Whether the sign-in link this mail carries can no longer sign in (expired, used,
    gone, or no link named): then the mail is not worth sending. A read."""
    link_id = link_of(raw)
    if link_id is None:
        return True
    return conn.execute(sa.select(_R.c.id).where(
        _R.c.id == link_id, _R.c.used_at.is_(None),
        _R.c.expires_at > (now or utcnow()))).first() is None


def reviewer_accounts(session: Session, email: str) -> list[int]:
    """The accounts in which this address holds ``contact-admin`` (now). A read: the page
    asks it on every request, so a role taken away takes effect at once."""
    users = session.exec(select(User).where(User.email == normalize_email(email)))
    return sorted(u.account_id for u in users if Role.CONTACT_ADMIN in u.role_set)


def session_email(session: Session, link_id: int, now: datetime | None = None) -> str | None:
    """The address a sign-in (the link it was made with) is for, while it holds: used, not
    signed out, not expired. A read: every page of the review page asks it."""
    row = session.connection().execute(sa.select(_R.c.email).where(
        _R.c.id == link_id, _R.c.used_at.is_not(None),
        _R.c.expires_at > (now or utcnow()))).first()
    return None if row is None else str(row.email)


class Review:
    """Sign-in links to the review page: stored as a hash, mailed through ``mail``. A
    link is no audit event (it changes no account, contact or lead): a log line is."""

    __slots__ = ("mail", "session")

    def __init__(self, session: Session, mail: Mail) -> None:
        self.session, self.mail = session, mail

    def reviewer_accounts(self, email: str) -> list[int]:
        return reviewer_accounts(self.session, email)

    def make_sign_in_link(self, email: str, base_url: str, lifetime: float
                          ) -> SignInLink | None:
        """A new sign-in link for this address if it may review (None, and nothing stored,
        otherwise), good once for ``lifetime`` seconds."""
        address = normalize_email(email)
        if not self.reviewer_accounts(address):
            log.info("review.link_refused", reason="not a contact admin")
            return None
        link = self._new_link(address, base_url, lifetime)
        log.info("review.link_made", link_id=link.id)
        return link

    def _new_link(self, address: str, base_url: str, lifetime: float) -> SignInLink:
        now = utcnow()
        secret = secrets.token_urlsafe(24)
        expires = now + timedelta(seconds=lifetime)
        link_id = self.session.connection().execute(sa.insert(_R).values(
            email=address, secret_hash=_hash(secret), created_at=now,
            expires_at=expires).returning(_R.c.id)).scalar_one()
        return SignInLink(int(link_id), address,
                          f"{base_url.rstrip('/')}/review/link/{link_id}.{secret}", expires)

    def send_sign_in_link(self, email: str, base_url: str, lifetime: float, *,
                          from_name: str, sender: str, domain: str,
                          deliverable: bool = True) -> bool:
        """Queue a sign-in link to this address if it may review; False (and nothing
        stored or sent) otherwise. The caller answers the same either way. Without a way
        to send it (``deliverable`` False: no ``[outbound] relay``) no link is made, and a
        warning tells the operator."""
        address = normalize_email(email)
        if not self.reviewer_accounts(address):
            log.info("review.link_refused", reason="not a contact admin")
            return False
        now = utcnow()
        pending = self.session.connection().execute(sa.select(sa.func.count()).where(
            _R.c.email == address, _R.c.used_at.is_(None), _R.c.expires_at > now)).scalar_one()
        if pending >= MAX_PENDING:  # somebody keeps asking: no more mail to that inbox
            log.info("review.link_refused", reason="too many unused links")
            return False
        if not deliverable:
            log.warning("review.link_unsent", reason="no [outbound] relay configured",
                        hint="set [outbound] relay, or print a link with "
                             "`feedback-mta review link EMAIL`")
            return False
        link = self._new_link(address, base_url, lifetime)
        self.mail.queue(SIGN_IN, address, sign_in_mail(
            to=address, url=link.url, minutes=max(1, round(lifetime / 60)),
            from_name=from_name, sender=sender, domain=domain, link_id=link.id))
        log.info("review.link_sent", link_id=link.id)
        return True

    def use_sign_in_link(self, token: str, session_lifetime: float,
                         now: datetime | None = None) -> tuple[str, int] | None:
        """(address, session id) of a genuine, unexpired, unused link (now used up: its
        ``expires_at`` is the session's end from here on), or None."""
        link_id, _, secret = token.partition(".")
        if not (link_id.isascii() and link_id.isdigit() and secret and len(link_id) <= 10
                and int(link_id) <= 2**31 - 1):  # ids as the database holds them
            return None
        now = now or utcnow()
        row = self.session.connection().execute(
            sa.select(_R.c.email, _R.c.secret_hash).where(_R.c.id == int(link_id))).first()
        if row is None or not hmac.compare_digest(row.secret_hash, _hash(secret)):
            return None
        used = self.session.connection().execute(sa.update(_R).where(
            _R.c.id == int(link_id), _R.c.used_at.is_(None), _R.c.expires_at > now)
            .values(used_at=now, expires_at=now + timedelta(seconds=session_lifetime))).rowcount
        if not used:
            return None
        log.info("review.signed_in", link_id=int(link_id))
        return str(row.email), int(link_id)

    def sign_out(self, link_id: int, now: datetime | None = None) -> bool:
        """End the sign-in made with this link: its cookie is refused from now on. False when
        it had ended already."""
        now = now or utcnow()
        ended = self.session.connection().execute(sa.update(_R).where(
            _R.c.id == link_id, _R.c.used_at.is_not(None), _R.c.expires_at > now)
            .values(expires_at=now)).rowcount
        if ended:
            log.info("review.signed_out", link_id=link_id)
        return bool(ended)

"""Is a new contact a bot's? The verdict, as a pure function of what we know about it.

Three levels, as the platform that met form bots put it to its customers:

- **invalid** (known bad): the name is clearly not a name (``names.check``). Opted out at
  once, tagged ``SYSTEM - Invalid Contact``.
- **suspected**: submitted from a suspect network, or the same address submitted to several
  accounts under different names, or a disposable or syntactically invalid address. Tagged
  ``SYSTEM - Suspected Invalid Contact`` with a review deadline; opted out when it passes
  unless an admin verified the contact first.
- **ok**: nothing against it; and always ok once the contact purchased, double-opted-in,
  opened or clicked (engagement is proof of a person).

Reasons are stable strings, so a contact verified for some reasons is not tagged again for
the same ones (``verified``) but is for a new one. ``review`` gathers the facts from the
database and applies the verdict through ``actions``.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from feedback_mta.config import QualityConfig
from feedback_mta.quality import names

if TYPE_CHECKING:
    from feedback_mta.config import Config

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

INVALID_TAG = "SYSTEM - Invalid Contact"
SUSPECTED_TAG = "SYSTEM - Suspected Invalid Contact"
SYSTEM_TAGS = (INVALID_TAG, SUSPECTED_TAG)

#: Opt-out reasons this module's verdicts lead to.
INVALID_REASON = "invalid_contact"
EXPIRED_REASON = "suspected_invalid"

CROSS_ACCOUNT = "same address in several accounts under different names"
DISPOSABLE = "disposable address"
INVALID_ADDRESS = "invalid address"


class Level(StrEnum):
    OK = "ok"
    SUSPECTED = "suspected"
    INVALID = "invalid"


class Engagement(StrEnum):
    PURCHASE = "purchase"
    DOUBLE_OPT_IN = "double_opt_in"
    OPEN = "open"
    CLICK = "click"


@dataclass(frozen=True)
class Submission:
    """What a form gave us: the names, the address, the source IPs (a contact's leads)."""

    first: str = ""
    last: str = ""
    email: str = ""
    ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    """The config's part of a verdict: suspect networks (config and ``network add``), the
    cross-account threshold, whether addresses are checked."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # The defaults are the config's (``[quality]``), not a second copy of them.
    cross_account_threshold: int = QualityConfig.cross_account_threshold
    check_email: bool = QualityConfig.check_email
    allowed_domains: tuple[str, ...] = QualityConfig.allowed_domains

    @classmethod
    def from_config(cls, config: Config, extra_networks: Iterable[str] = ()) -> Policy:
        q = config.quality
        nets = {ipaddress.ip_network(n, strict=False)
                for n in (*q.suspect_networks, *extra_networks)}
        return cls(networks=tuple(sorted(nets, key=lambda n: (n.version, n))),
                   cross_account_threshold=q.cross_account_threshold,
                   check_email=q.check_email, allowed_domains=tuple(q.allowed_domains))


@dataclass(frozen=True)
class Verdict:
    level: Level
    reasons: tuple[str, ...] = field(default=())


OK = Verdict(Level.OK)


def network_reasons(ips: Iterable[str], networks: Iterable[Network]) -> list[str]:
    """``suspect network 203.0.113.0/24`` for each suspect network a source IP is in."""
    reasons = []
    for text in ips:
        try:
            ip = ipaddress.ip_address(text.strip())
        except ValueError:
            continue
        for net in networks:
            if ip.version == net.version and ip in net:
                reason = f"suspect network {net}"
                if reason not in reasons:
                    reasons.append(reason)
    return reasons


@functools.cache
def _disposable() -> frozenset[str]:
    from disposable_email_domains import blocklist

    return frozenset(blocklist)


def email_reasons(email: str, allowed_domains: tuple[str, ...] = ()) -> list[str]:
    """``invalid address`` (RFC 5321/5322 syntax, special-use domains; email-validator, no
    DNS) or ``disposable address`` (disposable-email-domains, subdomains too)."""
    from email_validator import EmailNotValidError, validate_email

    domain = email.rpartition("@")[2].lower().rstrip(".")
    if any(domain == d or domain.endswith("." + d) for d in allowed_domains):
        return []
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return [INVALID_ADDRESS]
    parts = domain.split(".")
    blocked = _disposable()
    if any(".".join(parts[i:]) in blocked for i in range(len(parts) - 1)):
        return [DISPOSABLE]
    return []


def assess(sub: Submission, policy: Policy, *, names_across_accounts: int = 1,
           engaged: bool = False, verified: Iterable[str] = ()) -> Verdict:
    """The verdict on one contact.

    ``names_across_accounts``: how many different names its address was submitted under in
    different accounts (this one included). ``verified``: the reasons an admin already
    looked at and kept it for; they no longer count.
    """
    if engaged:
        return OK
    seen = frozenset(verified)
    bad = [r for r in names.check(sub.first, sub.last) if r not in seen]
    if bad:
        return Verdict(Level.INVALID, tuple(bad))
    suspect = network_reasons(sub.ips, policy.networks)
    if names_across_accounts >= policy.cross_account_threshold:
        suspect.append(CROSS_ACCOUNT)
    if policy.check_email and sub.email:
        suspect += email_reasons(sub.email, policy.allowed_domains)
    suspect = [r for r in suspect if r not in seen]
    if suspect:
        return Verdict(Level.SUSPECTED, tuple(suspect))
    return OK


def name_key(first: str, last: str) -> str:
    """Two submissions are "the same name" when they fold to the same letters
    (``José Núñez`` = ``jose nunez``; order of the fields ignored)."""
    return " ".join(sorted(w for w in (names.fold(first), names.fold(last)) if w)) or (
        f"{first.strip().casefold()} {last.strip().casefold()}")

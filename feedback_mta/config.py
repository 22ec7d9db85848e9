"""Configuration: one TOML file, a few environment overrides, validated once at start.

Why strict: a typo in a mail server's config (``prot = 25``) silently falling back to a
default is how messages get lost. Unknown keys and wrong types are errors that name the
key, so ``feedback-mta check-config`` and ``serve`` fail loudly and precisely instead.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from feedback_mta import bounces
from feedback_mta.markers import NOTIFICATION_MARKERS

ENV_CONFIG = "FEEDBACK_MTA_CONFIG"
ENV_DATABASE_URL = "FEEDBACK_MTA_DATABASE_URL"
DEFAULT_CONFIG_PATHS = ("config/feedback-mta.toml", "/etc/feedback-mta/feedback-mta.toml")

#: The secret shipped in the example config; serving with it logs a warning.
EXAMPLE_SECRET = "change-me-this-is-the-example-secret-key"


class ConfigError(Exception):
    """A configuration problem; the message names the file and key."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``"30s"``, ``"5m"``, ``"36h"``, ``"7d"`` (bare numbers are seconds)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30, '30s', '5m', '7d'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"expected a duration such as 30, '30s', '5m', '7d', got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)


def parse_size(value: Any) -> int:
    """Bytes from ``10485760``, ``"10MB"``, ``"512k"`` (K/M/G are powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 10485760 or '10MB'")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"expected a size such as 10485760 or '10MB', got {value!r}")
    unit = (match.group(2) or "b")[0].lower()
    return int(match.group(1)) * {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]


def split_host_port(value: str) -> tuple[str, int] | None:
    """``("::1", 25)`` from a validated ``"[::1]:25"``; None for an empty setting."""
    if not value:
        return None
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


# --- validation --------------------------------------------------------------------------------

def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


def _int(lo: int, hi: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError(f"expected a whole number from {lo} to {hi}, got {v!r}")
        return v
    return check


def _share_of(accepts: Callable[[float], bool], expected: str) -> Callable[[Any], float]:
    """A number between 0 and 1 that ``accepts`` takes (which ends it may reach); the error
    says it ``expected``."""
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not accepts(v):
            raise ValueError(f"expected {expected}, got {v!r}")
        return float(v)
    return check


_threshold = _share_of(lambda v: 0 < v <= 1, "a score above 0 and at most 1, such as 0.9")
_fraction = _share_of(lambda v: 0 < v < 1, "a fraction such as 0.001 (0.1%)")
_share = _share_of(lambda v: 0 < v <= 1, "a share above 0 and at most 1, such as 0.5")
_budget = _share_of(lambda v: 0 <= v < 1, "a share from 0 to below 1, such as 0.005 (0.5%)")


def _str(nonempty: bool = True) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if not isinstance(v, str) or (nonempty and not v.strip()):
            raise ValueError(f"expected a {'non-empty ' if nonempty else ''}string, got {v!r}")
        return v
    return check


def _choice(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {v!r}")
        return str(v)
    return check


def _strings(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise ValueError(f"expected a list of strings, got {v!r}")
    return tuple(v)


def _positive_duration(v: Any) -> float:
    seconds = parse_duration(v)
    if seconds <= 0:
        raise ValueError("must be more than zero")
    return seconds


def _domain(v: Any) -> str:
    name = _str()(v).strip().lower().rstrip(".")
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+", name):
        raise ValueError(f"expected a domain name such as feedback.example.com, got {name!r}")
    return name


def _address(v: Any) -> str:
    value = _str(nonempty=False)(v).strip()
    if value and not re.fullmatch(r"[^@\s<>]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+", value):
        raise ValueError(f"expected an address such as ops@example.com, or empty, got {value!r}")
    return value


def _db_url(v: Any) -> str:
    url = _str()(v)
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", url):
        raise ValueError(
            "expected a sqlite:///PATH or postgresql+psycopg://USER@HOST/DB URL, "
            f"got {url.split('://')[0]!r}://..."
        )
    return url


def _secret(v: Any) -> str:
    secret = _str()(v)
    if len(secret) < 16:
        raise ValueError("must be at least 16 characters (use a long random string)")
    return secret


def _domain_suffixes(v: Any) -> tuple[str, ...]:
    """Domains or bare suffixes (``example.com``, ``test``): a domain and its subdomains."""
    out = []
    for item in _strings(v):
        item = item.strip().lower().strip(".")
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*",
                            item):
            raise ValueError(f"expected a domain such as example.com, got {item!r}")
        out.append(item)
    return tuple(out)


def _local_parts(v: Any) -> tuple[str, ...]:
    parts = _strings(v)
    for part in parts:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", part.lower()) or "+" in part:
            raise ValueError(f"not a plain local part: {part!r}")
    return tuple(p.lower() for p in parts)


def _host_port(example: str, *, port_zero: bool = False) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        value = _str(nonempty=False)(v).strip()
        if value and not re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}", value):
            raise ValueError(f"expected host:port such as {example}, or empty, got {value!r}")
        if value and not (0 if port_zero else 1) <= int(value.rpartition(":")[2]) < 65536:
            raise ValueError(f"port out of range in {value!r}")
        return value
    return check


_relay = _host_port("127.0.0.1:25")


def _networks(v: Any) -> tuple[str, ...]:
    out = []
    for item in _strings(v):
        try:
            out.append(str(ipaddress.ip_network(item.strip(), strict=False)))
        except ValueError:
            raise ValueError(f"not a network such as 203.0.113.0/24: {item!r}") from None
    return tuple(out)


def _markers(v: Any) -> tuple[str, ...]:
    return tuple(m.strip().lower() for m in _strings(v))


def key(default: Any, check: Callable[[Any], Any], help: str, *, required: bool = False) -> Any:
    """One config key, declared once: its default, its check (which also converts: sizes,
    durations, networks) and its help. The TOML validation, the required keys and the
    example-config test are all derived from these."""
    return field(default=default, metadata={"check": check, "help": help,
                                            "required": required})


def _url(v: Any) -> str:
    value = _str(nonempty=False)(v).strip().rstrip("/")
    if value and not re.fullmatch(r"https?://[A-Za-z0-9.\[\]:-]+(/[^\s?#]*)?", value):
        raise ValueError(f"expected a URL such as https://fb.example.com, or empty, got {value!r}")
    return value


def _account_id(v: Any) -> int:
    return _int(0, 2**31 - 1)(v)


def _table(cls: type, value: Any) -> Any:
    """A section (or a table inside one) checked key by key into its settings class;
    ValueError names the key."""
    if not isinstance(value, Mapping):
        raise ValueError("must be a table")
    checks = {f.name: f.metadata["check"] for f in fields(cls)}
    values = {}
    for name, raw in value.items():
        if name not in checks:
            raise ValueError(f"{name}: unknown key (known: {', '.join(checks)})")
        try:
            values[name] = checks[name](raw)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return cls(**values)


def _subsection(cls: type) -> Callable[[Any], Any]:
    """A table inside a section (``[webhooks.ses]``), checked like a section."""
    def check(v: Any) -> Any:
        return _table(cls, v)
    check.section = cls  # type: ignore[attr-defined]
    return check


_HOOK_ACCOUNT = ("The account whose contacts this provider's events are matched to by address "
                 "when they carry no token of ours; 0: by token only.")


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = key(
        "sqlite:///data/feedback-mta.sqlite3", _db_url,
        "SQLite file (relative to the working directory) or PostgreSQL URL; "
        "FEEDBACK_MTA_DATABASE_URL overrides it.", required=True)
    auto_upgrade: bool = key(
        True, _bool,
        "Run pending migrations when `serve` starts (convenient on SQLite; production "
        "installs run `db upgrade` from a one-shot unit and may turn this off).")
    sqlite_synchronous: str = key(
        "full", _choice("full", "normal", "extra"),
        "SQLite `synchronous`: `full` survives power loss, `normal` only process crashes.")
    busy_timeout: float = key(
        10.0, _positive_duration,
        "Seconds a writer waits for a lock (SQLite busy timeout / PostgreSQL lock_timeout).")
    connect_timeout: float = key(
        5.0, _positive_duration,
        "Seconds to wait for a connection to the server (PostgreSQL).")


@dataclass(frozen=True)
class SmtpConfig:
    host: str = key(
        "127.0.0.1", _str(),
        "Address to listen on. Port 25 needs CAP_NET_BIND_SERVICE; behind Postfix use LMTP on "
        "a local port.", required=True)
    port: int = key(
        2525, _int(0, 65535),
        "Port to listen on (0: any free port, logged in server.started).", required=True)
    domain: str = key(
        "feedback.example.com", _domain,
        "The domain of the addresses we own: reply+TOKEN@, fbl@, bounce+TOKEN@, "
        "unsubscribe+TOKEN@, postmaster@, abuse@.", required=True)
    lmtp: bool = key(
        False, _bool,
        "Speak LMTP (RFC 2033, one reply per recipient) for Postfix's lmtp transport.",
        required=True)
    max_message_size: int = key(
        10 * 1024 * 1024, lambda v: _int(1024, 2**31)(parse_size(v)),
        "Largest message accepted, advertised as SIZE; larger ones get 552 5.3.4.", required=True)
    hostname: str = key(
        "", _str(nonempty=False),
        "Name in the greeting; the domain when empty.")
    max_recipients: int = key(
        50, _int(1, 10000),
        "Recipients per message; more get 452 4.5.3.")
    idle_timeout: float = key(
        300.0, _positive_duration,
        "Seconds a client may stay silent between commands (RFC 5321 4.5.3.2.7: 5 minutes).")
    data_timeout: float = key(
        600.0, _positive_duration,
        "Seconds the whole DATA phase may take (RFC 5321 4.5.3.2.6 suggests 10 minutes).")
    max_sessions: int = key(
        200, _int(1, 100000),
        "Concurrent sessions; the next one gets `421 4.3.2` and is closed.")
    store_timeout: float = key(
        30.0, _positive_duration,
        "Seconds a DATA reply may wait for the intake to commit before we say `451`.")
    drain_timeout: float = key(
        30.0, parse_duration,
        "Seconds SIGTERM waits for sessions in the middle of DATA to finish.")
    fbl_aliases: tuple[str, ...] = key(
        (), _local_parts,
        "More local parts for feedback-loop reports, besides `fbl` (naming `abuse` here makes "
        "abuse@ a feedback-loop box instead of mail for the operator).")
    max_sessions_per_ip: int = key(
        20, _int(1, 100000),
        "Concurrent sessions from one client address; the next one gets `421 4.7.0`.")
    connections_per_minute_per_ip: int = key(
        0, _int(0, 1000000),
        "New sessions per minute from one client address (0: no limit).")
    messages_per_minute_per_ip: int = key(
        0, _int(0, 1000000),
        "Messages (MAIL FROM) per minute from one client address (0: no limit); past it `450 "
        "4.7.1`, so a well-behaved sender retries later and nothing is lost.")
    limit_exempt: tuple[str, ...] = key(
        ("127.0.0.0/8", "::1/128"), _networks,
        "Networks the per-IP limits do not apply to (Postfix in front over LMTP, say).")
    proxy_protocol: bool = key(
        False, _bool,
        "Expect a PROXY protocol v1/v2 header (HAProxy, a cloud load balancer) on every "
        "connection; the client address it names goes to the logs, the store and the limits.")
    proxy_timeout: float = key(
        10.0, _positive_duration,
        "Seconds to wait for that header before closing the connection.")
    tls_cert: str = key(
        "", _str(nonempty=False),
        "PEM certificate chain and key for STARTTLS (RFC 3207); both empty: no STARTTLS.")
    tls_key: str = key(
        "", _str(nonempty=False),
        "The private key of tls_cert (PEM).")
    postmaster: str = key(
        "", _address,
        "Where mail to postmaster@ and abuse@ of the domain is forwarded (with [outbound] "
        "relay); empty: kept in the inbox only.")


@dataclass(frozen=True)
class SecurityConfig:
    secret_key: str = key(
        "", _secret,
        "Signs the tokens in our addresses and headers: a long random string.", required=True)
    previous_secret_keys: tuple[str, ...] = key(
        (), lambda v: tuple(_secret(x) for x in _strings(v)),
        "Old secrets still accepted when verifying tokens, so a rotation breaks nothing in "
        "flight.")
    trusted_authserv_ids: tuple[str, ...] = key(
        (), _strings,
        "authserv-ids (RFC 8601) of upstream MTAs whose Authentication-Results we trust.")


@dataclass(frozen=True)
class ProcessingConfig:
    workers: int = key(
        1, _int(1, 64),
        "Threads that parse, classify and act on stored messages (keep 1 on SQLite).")
    own_process: bool = key(
        True, _bool,
        "Run those threads in a process of their own beside the server's, so the SMTP "
        "sessions and the processing each have a core (false: in the server's process, "
        "for a machine with one core or little memory).")
    nice: int = key(
        5, _int(0, 19),
        "How much lower the processing process's CPU priority is than the server's (as "
        "nice(1)): when the cores are busy, the answers to SMTP and HTTP clients go first "
        "and the processing catches up after (0: the same priority).")
    sweep_interval: float = key(
        30.0, _positive_duration,
        "How often the scheduler looks for stored messages nobody is processing (left by a "
        "crash, another node, or a retry).")


@dataclass(frozen=True)
class RepliesConfig:
    markers: tuple[str, ...] = key(
        NOTIFICATION_MARKERS, _markers,
        'Lower-case phrases of the lead notification\'s own instructions ("Reply SPAM to flag '
        'this lead"): where one appears in a reply, the quoted notification starts.')
    acknowledge: bool = key(
        True, _bool,
        "Answer understood replies (done / not allowed) through `[outbound] relay`.")


@dataclass(frozen=True)
class OutboundConfig:
    relay: str = key(
        "", _relay,
        "`host:port` of the MTA that sends our acknowledgements; empty: we send nothing.")
    from_name: str = key(
        "Lead feedback", _str(),
        "Display name on our acknowledgements.")
    timeout: float = key(
        30.0, _positive_duration,
        "Seconds one delivery attempt may take.")
    max_attempts: int = key(
        5, _int(1, 100),
        "Attempts before an outbound mail is left `failed`.")
    retry_interval: float = key(
        60.0, _positive_duration,
        "Seconds between attempts (and how often the scheduler looks for due ones).")

    @property
    def relay_address(self) -> tuple[str, int] | None:
        return split_host_port(self.relay)


def _reasons(v: Any) -> tuple[str, ...]:
    names = tuple(x.strip().lower() for x in _strings(v))
    unknown = [n for n in names if n not in bounces.REASONS]
    if unknown:
        raise ValueError(f"not a bounce reason: {', '.join(unknown)} (one of "
                         f"{', '.join(bounces.REASONS)})")
    return names


@dataclass(frozen=True)
class FeedbackConfig:
    trusted_reporters: tuple[str, ...] = key(
        (), lambda v: tuple(_domain(x) for x in _strings(v)),
        "Domains whose feedback-loop reports we trust (`feedback.yahoo.com`, ...). A trusted "
        "reporter's report may act on a contact matched by its reported address alone, when "
        "the returned original names the account but carries no contact token. Matched "
        "against the report's From domain (and, with [security] trusted_authserv_ids, only "
        "when that server says dmarc=pass for it).")
    soft_bounce_limit: int = key(
        3, _int(1, 1000),
        "Soft bounces within `soft_bounce_window` that make a contact unmailable, as a hard "
        "one.")
    soft_bounce_window: float = key(
        30 * 86400.0, _positive_duration,
        "The window in which soft_bounce_limit soft bounces count as a hard one.")
    hard_reasons: tuple[str, ...] = key(
        tuple(sorted(bounces.HARD)), _reasons,
        "Bounce reasons (Sisimai's words, docs/feedback.md) of which one bounce makes a "
        "contact unmailable at once; the others are soft and counted. A temporary failure "
        "(4.x.x) is never hard.")


@dataclass(frozen=True)
class QualityConfig:
    suspect_networks: tuple[str, ...] = key(
        (), _networks,
        "Networks (CIDR) whose form submissions are suspected, besides `feedback-mta "
        "network`.")
    cross_account_threshold: int = key(
        3, _int(2, 1000),
        "The same address submitted under this many different names (in as many accounts) is "
        "suspected everywhere.")
    check_email: bool = key(
        True, _bool,
        "Suspect disposable and syntactically invalid addresses (email-validator, "
        "disposable-email-domains; offline, no DNS).")
    allowed_domains: tuple[str, ...] = key(
        (), _domain_suffixes,
        "Domains that are never called disposable (your own test domains, say).")


@dataclass(frozen=True)
class ReviewConfig:
    period: float = key(
        7 * 86400.0, _positive_duration,
        "How long admins have to verify a suspected contact before it is opted out.")
    remind_before: float = key(
        86400.0, parse_duration,
        "When, before the deadline, the digest goes to the account's contact admins.")
    check_interval: float = key(
        10.0, _positive_duration,
        "How often the scheduler looks for deadlines (also those added by other processes).")
    link_lifetime: float = key(
        900.0, _positive_duration,
        "How long a sign-in link to the review page (`/review/`) is valid; each is good "
        "for one sign-in.")
    session_lifetime: float = key(
        8 * 3600.0, _positive_duration,
        "How long a review page sign-in lasts.")


#: How a contact may have come to us (``store.states.ConsentMethod``, which a test holds
#: to the same names: the config is read before the database stack is loaded).
CONSENT_METHODS = ("form", "double_opt_in", "api", "import", "social", "purchased", "unknown")


def _consent_methods(v: Any) -> tuple[str, ...]:
    methods = _strings(v) if v != [] else ()
    for method in methods:
        if method not in CONSENT_METHODS:
            raise ValueError(f"expected consent methods among {', '.join(CONSENT_METHODS)}, "
                             f"got {method!r}")
    return methods


@dataclass(frozen=True)
class ConsentConfig:
    confirm_methods: tuple[str, ...] = key(
        ("import", "social", "purchased"), _consent_methods,
        "New contacts that came this way (`--consent-method`, `\"consent\": {\"method\"}`) "
        "are `pending`, not mailable, until the person confirms by link or reply: a social "
        "connection, an imported or a bought list is no opt-in. Of form, double_opt_in, api, "
        "import, social, purchased, unknown; [] confirms nobody.")
    send_confirmation: bool = key(
        True, _bool,
        "Mail each pending contact a confirmation request through `[outbound] relay` "
        "(`Reply-To: confirm+TOKEN@`, a link to `<public_url>/c/TOKEN`); false: the "
        "platform sends its own (`GET /v1/contacts/{id}/confirmation`).")
    confirm_within: float = key(
        7 * 86400.0, _positive_duration,
        "A contact still pending this long after it came is opted out with reason "
        "`unconfirmed`.")
    remind_before: float = key(
        0.0, parse_duration,
        "Send one reminder this long before the deadline to a contact still pending; 0: "
        "none.")


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = key(
        "", _host_port("127.0.0.1:9125", port_zero=True),
        "`host:port` of the HTTP endpoint serving `/metrics` (Prometheus) and `/healthz`; "
        "empty: none. Port 0 picks a free port (logged in `metrics.started`).")

    @property
    def address(self) -> tuple[str, int] | None:
        return split_host_port(self.listen)


@dataclass(frozen=True)
class HttpConfig:
    listen: str = key(
        "", _host_port("127.0.0.1:8025", port_zero=True),
        "`host:port` of the HTTP API (`/v1/...`, `/openapi.json`, `/healthz`) beside SMTP in "
        "`serve`; empty: none. Port 0 picks a free port (logged in `http.started`). Put TLS "
        "in front (a reverse proxy): keys travel in the `Authorization` header.")
    max_comment_bytes: int = key(
        16 * 1024, lambda v: _int(256, 1024 * 1024)(parse_size(v)),
        "Longest lead comments (UTF-8 bytes) `POST /v1/leads` and `lead add` take; longer "
        "ones are refused (`422` naming `comments`; exit 1), never cut. Scoring reads them "
        "before the lead's transaction, in time linear in their length.")
    public_url: str = key(
        "", _url,
        "The HTTPS address the world reaches this HTTP server at (`https://fb.example.com`), "
        "behind its proxy. Set, `contact headers` offers one-click unsubscribe (RFC 8058) at "
        "`PUBLIC_URL/u/TOKEN` beside the mailto.")
    header_timeout: float = key(
        10.0, _positive_duration,
        "Seconds from a connection's start, or from the end of its last response, to a "
        "complete request head; past it the socket is closed (with `408` if part of a head "
        "came, silently if nothing did).")
    idle_timeout: float = key(
        5.0, _positive_duration,
        "Seconds a keep-alive connection may stay silent after a response before it is "
        "closed (at most header_timeout).")
    max_connections: int = key(
        500, _int(1, 100000),
        "HTTP connections open at once (per process); the next one gets `503` and is "
        "closed at once, the open ones are untouched.")
    max_connections_per_ip: int = key(
        20, _int(1, 100000),
        "HTTP connections open at once from one client address (an IPv6 /64 counts as one); "
        "the next one gets `429` and is closed. Loopback counts too: a reverse proxy in "
        "front is one address, list it in limit_exempt.")
    limit_exempt: tuple[str, ...] = key(
        (), _networks,
        "Networks max_connections_per_ip does not apply to (a reverse proxy or load "
        "balancer in front); max_connections still does.")

    @property
    def address(self) -> tuple[str, int] | None:
        return split_host_port(self.listen)


@dataclass(frozen=True)
class SesHookConfig:
    topic_arns: tuple[str, ...] = key(
        (), _strings,
        "The SNS topics whose messages are taken (`arn:aws:sns:REGION:ACCOUNT:NAME`); "
        "empty: /hooks/ses is off (SNS signs every AWS account's topics alike).")
    cert_host: str = key(
        "", _str(nonempty=False),
        "Empty: SNS signing certificates and subscription URLs are fetched only over "
        "HTTPS from AWS's hosts (`sns.REGION.amazonaws.com`, `sns.REGION.amazonaws.com.cn`). "
        "Set: exactly this host instead, any port (a local stand-in for tests).")
    ca_file: str = key(
        "", _str(nonempty=False),
        "PEM bundle to trust when fetching certificates; empty: the system's.")
    account: int = key(0, _account_id, _HOOK_ACCOUNT)


@dataclass(frozen=True)
class SendgridHookConfig:
    public_key: str = key(
        "", _str(nonempty=False),
        "The Event Webhook's verification key (base64 ECDSA public key from SendGrid's "
        "Mail Settings); empty: /hooks/sendgrid is off.")
    max_age: float = key(
        300.0, _positive_duration,
        "Signatures whose timestamp is further than this from now are refused (a replay).")
    account: int = key(0, _account_id, _HOOK_ACCOUNT)


@dataclass(frozen=True)
class MailgunHookConfig:
    signing_key: str = key(
        "", _str(nonempty=False),
        "The HTTP webhook signing key (Mailgun's Sending > Webhooks page); empty: "
        "/hooks/mailgun is off.")
    max_age: float = key(
        300.0, _positive_duration,
        "Signatures older than this are refused (a replay), as are tokens already seen.")
    account: int = key(0, _account_id, _HOOK_ACCOUNT)


@dataclass(frozen=True)
class PostmarkHookConfig:
    username: str = key(
        "", _str(nonempty=False),
        "HTTP basic-auth user name put in the webhook URL at Postmark; empty (with "
        "password): /hooks/postmark is off.")
    password: str = key(
        "", _str(nonempty=False),
        "HTTP basic-auth password put in the webhook URL at Postmark (a long random string).")
    account: int = key(0, _account_id, _HOOK_ACCOUNT)


_DEFAULT_SesHookConfig = SesHookConfig()
_DEFAULT_SendgridHookConfig = SendgridHookConfig()
_DEFAULT_MailgunHookConfig = MailgunHookConfig()
_DEFAULT_PostmarkHookConfig = PostmarkHookConfig()


@dataclass(frozen=True)
class WebhooksConfig:
    timeout: float = key(
        10.0, _positive_duration,
        "How long one delivery attempt may take in all (resolving, connecting, sending, "
        "the answer) before it counts as failed; a receiver that answers one byte at a time "
        "is cut off at it.")
    retry_for: float = key(
        86400.0, _positive_duration,
        "How long an event is retried (exponential backoff) before it is `failed` and the "
        "next event of that subscription goes.")
    max_backoff: float = key(
        3600.0, _positive_duration,
        "The longest wait between two attempts at one event.")
    allow_private_networks: bool = key(
        False, _bool,
        "Let webhook URLs name loopback, private, link-local and other non-public addresses "
        "(checked at `webhook add` and at each delivery, after DNS); for tests and local "
        "receivers only.")
    ses: SesHookConfig = key(  # noqa: RUF009 (a frozen dataclass)
        _DEFAULT_SesHookConfig, _subsection(SesHookConfig),
        "Amazon SES notifications through SNS, at /hooks/ses.")
    sendgrid: SendgridHookConfig = key(  # noqa: RUF009 (a frozen dataclass)
        _DEFAULT_SendgridHookConfig, _subsection(SendgridHookConfig),
        "SendGrid's Event Webhook, at /hooks/sendgrid.")
    mailgun: MailgunHookConfig = key(  # noqa: RUF009 (a frozen dataclass)
        _DEFAULT_MailgunHookConfig, _subsection(MailgunHookConfig),
        "Mailgun's webhooks, at /hooks/mailgun.")
    postmark: PostmarkHookConfig = key(  # noqa: RUF009 (a frozen dataclass)
        _DEFAULT_PostmarkHookConfig, _subsection(PostmarkHookConfig),
        "Postmark's bounce, spam-complaint and subscription-change webhooks, at "
        "/hooks/postmark.")


@dataclass(frozen=True)
class LoggingConfig:
    level: str = key(
        "info", _choice("debug", "info", "warning", "error"),
        "debug, info, warning or error (serve; the command line logs warnings unless -v).")
    format: str = key(
        "auto", _choice("auto", "json", "console"),
        "`auto` (JSON lines, or a console renderer on a TTY), `json` or `console`.")
    mask_addresses: bool = key(
        False, _bool,
        "Write `j***@example.com` instead of addresses in log lines (privacy laws, shared log "
        "stores); the database keeps them, so `contact show` still finds everything.")


@dataclass(frozen=True)
class RetentionConfig:
    raw_days: int = key(
        90, _int(0, 36500),
        "Days after which the raw bytes of `processed` and `ignored` messages are purged "
        "(headers, kind, outcome and audit stay); 0: keep them forever. `failed` messages are "
        "kept until retried, since a retry needs them.")


def _time_of_day(v: Any) -> str:
    text = str(v).strip() if isinstance(v, str) else None
    if text is None:
        raise ValueError(f"expected a time of day such as \"07:00\", got {v!r}")
    if text and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", text):
        raise ValueError(f"expected a time of day as HH:MM (UTC), such as \"07:00\", got {v!r}")
    return text


@dataclass(frozen=True)
class LeadsConfig:
    auto_flag_threshold: float = key(
        0.9, _threshold,
        "Spam score (0-1) from which a new lead is flagged spam by itself (`flagged_via` "
        "`auto`), held back from export and not to be forwarded, until the restores move it "
        "(`false_flag_budget`); 1: only the leads of known bad contacts.")
    false_flag_budget: float = key(
        0.005, _budget,
        "Share of real leads that may be flagged wrongly: the threshold rises while people "
        "restore more of the system's flags than `false_flag_budget * restored_share` of "
        "the real leads, and falls (at most 1 in log-odds below `auto_flag_threshold`) while "
        "they restore fewer; 0: the threshold stays at `auto_flag_threshold`.")
    restored_share: float = key(
        0.5, _share,
        "Share of the wrongly flagged leads people restore (from the digest, the review page "
        "or the API): what a restore is taken to stand for.")
    digest_time: str = key(
        "07:00", _time_of_day,
        "Time of day (UTC, `HH:MM`) of the daily digest to each account's contact admins of "
        "the leads flagged automatically since the last one (reply `NOT SPAM <id>` to "
        "restore); empty: none (`feedback-mta leads digest` sends it on demand).")

    @property
    def digest_at(self) -> tuple[int, int] | None:
        """(hour, minute) of the daily digest, or None."""
        if not self.digest_time:
            return None
        hour, minute = self.digest_time.split(":")
        return int(hour), int(minute)


@dataclass(frozen=True)
class GuardConfig:
    window: float = key(
        7 * 86400.0, _positive_duration,
        "The rolling window over which an account's complaint and hard-bounce rates are "
        "computed.")
    min_sent: int = key(
        1000, _int(1, 10**12),
        "Messages an account must have sent (`account sent`) within the window before its "
        "rates are judged: three complaints in fifty mails say little.")
    complaint_warn: float = key(
        0.001, _fraction,
        "Complaints per message sent at which an account is warned (SES reviews at 0.1%).")
    complaint_pause: float = key(
        0.003, _fraction,
        "Complaints per message sent at which an account is paused (Gmail's line is 0.3%).")
    bounce_warn: float = key(
        0.02, _fraction,
        "Hard bounces per message sent at which an account is warned.")
    bounce_pause: float = key(
        0.05, _fraction,
        "Hard bounces per message sent at which an account is paused (SES reviews at 5%).")
    check_interval: float = key(
        300.0, _positive_duration,
        "How often the scheduler evaluates every account.")


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    processing: ProcessingConfig = field(default_factory=ProcessingConfig)
    replies: RepliesConfig = field(default_factory=RepliesConfig)
    outbound: OutboundConfig = field(default_factory=OutboundConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    consent: ConsentConfig = field(default_factory=ConsentConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    leads: LeadsConfig = field(default_factory=LeadsConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    #: Where the config was read from (None: defaults only).
    path: Path | None = None

    @property
    def banner_hostname(self) -> str:
        return self.smtp.hostname or self.smtp.domain

    @property
    def unsendable(self) -> list[str]:
        """What is on that sends mail, when no ``[outbound] relay`` could send it (empty
        with a relay): ``check-config`` warns of it, and ``serve`` logs it at start."""
        if self.outbound.relay_address is not None:
            return []
        return [what for what, on in (
            ("the review page's sign-in links ([http] listen)", self.http.address is not None),
            ("acknowledgements of dealers' replies ([replies] acknowledge)",
             self.replies.acknowledge),
            ("confirmation requests to pending contacts ([consent] send_confirmation)",
             self.consent.send_confirmation and bool(self.consent.confirm_methods))) if on]


#: [section] -> (settings class, {key: check}); derived from the dataclasses above.
_SCHEMA: dict[str, tuple[type, dict[str, Callable[[Any], Any]]]] = {}
#: Keys without which we refuse to start, as the design promises.
_REQUIRED: list[tuple[str, str]] = []


def keys() -> Iterator[tuple[str, str, Any, str]]:
    """(section, key, default, help) of every config key, in declaration order."""
    for section, (cls, _) in _SCHEMA.items():
        for f in fields(cls):
            inner = getattr(f.metadata["check"], "section", None)
            if inner is None:
                yield section, f.name, f.default, f.metadata["help"]
                continue
            for g in fields(inner):
                yield f"{section}.{f.name}", g.name, g.default, g.metadata["help"]


def _derive() -> None:
    for f in fields(Config):
        if f.name == "path":
            continue
        cls = f.type if isinstance(f.type, type) else globals()[str(f.type)]
        _SCHEMA[f.name] = (cls, {k.name: k.metadata["check"] for k in fields(cls)})
        _REQUIRED.extend((f.name, k.name) for k in fields(cls) if k.metadata["required"])


_derive()


#: ``[webhooks.ses] cert_host_pattern``, as earlier example configs set it: AWS's hosts,
#: which is what an empty ``cert_host`` now means, by AWS's rule exactly.
_OLD_CERT_HOST_PATTERN = "sns.*.amazonaws.com"


def _retired_keys(data: dict[str, Any], source: str) -> None:
    """Keys of earlier versions: dropped where their value means what the default means
    now (a config copied from an old example still starts), refused with the way
    forward where it does not."""
    ses = data.get("webhooks", {}).get("ses")
    if isinstance(ses, Mapping) and "cert_host_pattern" in ses:
        ses = dict(ses)
        pattern = ses.pop("cert_host_pattern")
        data["webhooks"] = {**data["webhooks"], "ses": ses}
        if pattern != _OLD_CERT_HOST_PATTERN:
            raise ConfigError(f"{source}: [webhooks.ses] cert_host_pattern: retired; AWS's "
                              "certificate hosts are the default, and cert_host names one "
                              "exact host instead")


def from_mapping(data: Mapping[str, Any], *, source: str = "config",
                 env: Mapping[str, str] | None = None, path: Path | None = None) -> Config:
    """Validate a parsed TOML document (plus environment overrides) into a frozen Config."""
    env = os.environ if env is None else env
    data = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    if env.get(ENV_DATABASE_URL):
        data.setdefault("database", {})["url"] = env[ENV_DATABASE_URL]
    _retired_keys(data, source)
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if name not in _SCHEMA:
            raise ConfigError(f"{source}: unknown section [{name}] "
                              f"(known: {', '.join(f'[{s}]' for s in _SCHEMA)})")
        try:
            sections[name] = _table(_SCHEMA[name][0], value)
        except ValueError as exc:
            raise ConfigError(f"{source}: [{name}] {exc}") from None
    for section, key in _REQUIRED:
        if key not in data.get(section, {}):
            raise ConfigError(f"{source}: [{section}] {key}: missing (it is required)")
    smtp = sections.get("smtp")
    if smtp is not None and bool(smtp.tls_cert) != bool(smtp.tls_key):
        raise ConfigError(f"{source}: [smtp] tls_cert, tls_key: set both (STARTTLS) or neither")
    http = sections.get("http")
    if http is not None and http.idle_timeout > http.header_timeout:
        raise ConfigError(f"{source}: [http] idle_timeout: cannot be longer than "
                          "header_timeout (which also bounds a keep-alive connection's wait)")
    guard = sections.get("guard")
    if guard is not None and not (guard.complaint_warn < guard.complaint_pause
                                  and guard.bounce_warn < guard.bounce_pause):
        raise ConfigError(f"{source}: [guard]: each warn line must be below its pause line")
    return Config(**sections, path=path)


def load(path: str | os.PathLike[str] | None = None,
         env: Mapping[str, str] | None = None) -> Config:
    """Read the config named by ``path``, else ``$FEEDBACK_MTA_CONFIG``, else a default place."""
    env = os.environ if env is None else env
    candidate = path or env.get(ENV_CONFIG)
    if candidate is None:
        for default in DEFAULT_CONFIG_PATHS:
            if Path(default).is_file():
                candidate = default
                break
        else:
            raise ConfigError(
                f"no config file: pass --config FILE or set {ENV_CONFIG} "
                f"(looked in {', '.join(DEFAULT_CONFIG_PATHS)})")
    file = Path(candidate)
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    # Relative SQLite paths stay relative to the working directory, as in SQLAlchemy.
    return from_mapping(data, source=str(file), env=env, path=file)

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_CONFIG = "FEEDBACK_MTA_CONFIG"
ENV_DATABASE_URL = "FEEDBACK_MTA_DATABASE_URL"
DEFAULT_CONFIG_PATHS = ("config/feedback-mta.toml", "/etc/feedback-mta/feedback-mta.toml")

#: Lines of our lead notification that say how to use it; wherever one appears in a reply,
#: what follows is the quoted notification (``[replies] markers``'s default; lower-case
#: substrings, matched after accents are folded).
NOTIFICATION_MARKERS = (
    "reply spam to flag",
    "reply not spam to undo",
    "reply not spam to restore",
)

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


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///data/feedback-mta.sqlite3"
    #: Run pending migrations when ``serve`` starts (convenient on SQLite; production
    #: installs run ``db upgrade`` from a one-shot unit and may turn this off).
    auto_upgrade: bool = True
    #: SQLite ``synchronous``: ``full`` survives power loss, ``normal`` only process crashes.
    sqlite_synchronous: str = "full"
    #: Seconds a writer waits for a lock (SQLite busy timeout / PostgreSQL lock_timeout).
    busy_timeout: float = 10.0
    #: Seconds to wait for a connection to the server (PostgreSQL).
    connect_timeout: float = 5.0


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 2525
    domain: str = "feedback.example.com"
    lmtp: bool = False
    max_message_size: int = 10 * 1024 * 1024
    #: Name in the greeting; the domain when empty.
    hostname: str = ""
    max_recipients: int = 50
    #: Seconds a client may stay silent between commands (RFC 5321 4.5.3.2.7: 5 minutes).
    idle_timeout: float = 300.0
    #: Seconds the whole DATA phase may take (RFC 5321 4.5.3.2.6 suggests 10 minutes).
    data_timeout: float = 600.0
    #: Concurrent sessions; the next one gets ``421 4.3.2`` and is closed.
    max_sessions: int = 200
    #: Seconds a DATA reply may wait for the intake to commit before we say ``451``.
    store_timeout: float = 30.0
    #: Seconds SIGTERM waits for sessions in the middle of DATA to finish.
    drain_timeout: float = 30.0
    #: More local parts for feedback-loop reports, besides ``fbl``.
    fbl_aliases: tuple[str, ...] = ()
    #: Concurrent sessions from one client address; the next one gets ``421 4.7.0``.
    max_sessions_per_ip: int = 20
    #: New sessions per minute from one client address (0: no limit).
    connections_per_minute_per_ip: int = 0
    #: Messages (MAIL FROM) per minute from one client address (0: no limit); past it
    #: ``450 4.7.1``, so a well-behaved sender retries later and nothing is lost.
    messages_per_minute_per_ip: int = 0
    #: Networks the per-IP limits do not apply to (Postfix in front over LMTP, say).
    limit_exempt: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    #: Expect a PROXY protocol v1/v2 header (HAProxy, a cloud load balancer) on every
    #: connection; the client address it names goes to the logs, the store and the limits.
    proxy_protocol: bool = False
    #: Seconds to wait for that header before closing the connection.
    proxy_timeout: float = 10.0
    #: PEM certificate chain and key for STARTTLS (RFC 3207); both empty: no STARTTLS.
    tls_cert: str = ""
    tls_key: str = ""


@dataclass(frozen=True)
class SecurityConfig:
    secret_key: str = ""
    #: Old secrets still accepted when verifying tokens, so a rotation breaks nothing in flight.
    previous_secret_keys: tuple[str, ...] = ()
    #: authserv-ids (RFC 8601) of upstream MTAs whose Authentication-Results we trust.
    trusted_authserv_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProcessingConfig:
    #: Threads that parse, classify and act on stored messages (keep 1 on SQLite).
    workers: int = 1
    #: How often the scheduler looks for stored messages nobody is processing
    #: (left by a crash, another node, or a retry).
    sweep_interval: float = 30.0


@dataclass(frozen=True)
class RepliesConfig:
    #: Lower-case phrases of the lead notification's own instructions ("Reply SPAM to flag
    #: this lead"): where one appears in a reply, the quoted notification starts.
    markers: tuple[str, ...] = NOTIFICATION_MARKERS
    #: Answer understood replies (done / not allowed) through ``[outbound] relay``.
    acknowledge: bool = True


@dataclass(frozen=True)
class OutboundConfig:
    #: ``host:port`` of the MTA that sends our acknowledgements; empty: we send nothing.
    relay: str = ""
    #: Display name on our acknowledgements.
    from_name: str = "Lead feedback"
    #: Seconds one delivery attempt may take.
    timeout: float = 30.0
    #: Attempts before an outbound mail is left ``failed``.
    max_attempts: int = 5
    #: Seconds between attempts (and how often the scheduler looks for due ones).
    retry_interval: float = 60.0

    @property
    def relay_address(self) -> tuple[str, int] | None:
        return split_host_port(self.relay)


@dataclass(frozen=True)
class FeedbackConfig:
    #: Domains whose feedback-loop reports we trust (``feedback.yahoo.com``, ...). A trusted
    #: reporter's report may act on a contact matched by its reported address alone, when
    #: the returned original names the account but carries no contact token. Matched against
    #: the report's From domain (and, with [security] trusted_authserv_ids, only when that
    #: server says dmarc=pass for it).
    trusted_reporters: tuple[str, ...] = ()
    #: Soft bounces within ``soft_bounce_window`` that make a contact unmailable, as a hard one.
    soft_bounce_limit: int = 3
    soft_bounce_window: float = 30 * 86400.0


@dataclass(frozen=True)
class QualityConfig:
    #: Networks (CIDR) whose form submissions are suspected, besides ``feedback-mta network``.
    suspect_networks: tuple[str, ...] = ()
    #: The same address submitted under this many different names (in as many accounts)
    #: is suspected everywhere.
    cross_account_threshold: int = 3
    #: Suspect disposable and syntactically invalid addresses (email-validator,
    #: disposable-email-domains; offline, no DNS).
    check_email: bool = True
    #: Domains that are never called disposable (your own test domains, say).
    allowed_domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReviewConfig:
    #: How long admins have to verify a suspected contact before it is opted out.
    period: float = 7 * 86400.0
    #: When, before the deadline, the digest goes to the account's contact admins.
    remind_before: float = 86400.0
    #: How often the scheduler looks for deadlines (also those added by other processes).
    check_interval: float = 10.0


@dataclass(frozen=True)
class MetricsConfig:
    #: ``host:port`` of the HTTP endpoint serving ``/metrics`` (Prometheus) and ``/healthz``;
    #: empty: none. Port 0 picks a free port (logged in ``metrics.started``).
    listen: str = ""

    @property
    def address(self) -> tuple[str, int] | None:
        return split_host_port(self.listen)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    #: ``auto`` (JSON lines, or a console renderer on a TTY), ``json`` or ``console``.
    format: str = "auto"
    #: Write ``j***@example.com`` instead of addresses in log lines (privacy laws, shared
    #: log stores); the database keeps them, so ``contact show`` still finds everything.
    mask_addresses: bool = False


@dataclass(frozen=True)
class RetentionConfig:
    #: Days after which the raw bytes of ``processed`` and ``ignored`` messages are purged
    #: (headers, kind, outcome and audit stay); 0: keep them forever. ``failed`` messages
    #: are kept until retried, since a retry needs them.
    raw_days: int = 90


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
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    #: Where the config was read from (None: defaults only).
    path: Path | None = None

    @property
    def banner_hostname(self) -> str:
        return self.smtp.hostname or self.smtp.domain


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
        return v
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
    v = _str()(v).strip().lower().rstrip(".")
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+", v):
        raise ValueError(f"expected a domain name such as feedback.example.com, got {v!r}")
    return v


def _db_url(v: Any) -> str:
    v = _str()(v)
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", v):
        raise ValueError(
            "expected a sqlite:///PATH or postgresql+psycopg://USER@HOST/DB URL, "
            f"got {v.split('://')[0]!r}://..."
        )
    return v


def _secret(v: Any) -> str:
    v = _str()(v)
    if len(v) < 16:
        raise ValueError("must be at least 16 characters (use a long random string)")
    return v


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
        v = _str(nonempty=False)(v).strip()
        if v and not re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}", v):
            raise ValueError(f"expected host:port such as {example}, or empty, got {v!r}")
        if v and not (0 if port_zero else 1) <= int(v.rpartition(":")[2]) < 65536:
            raise ValueError(f"port out of range in {v!r}")
        return v
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


_SCHEMA: dict[str, tuple[type, dict[str, Callable[[Any], Any]]]] = {
    "database": (DatabaseConfig, {
        "url": _db_url,
        "auto_upgrade": _bool,
        "sqlite_synchronous": _choice("full", "normal", "extra"),
        "busy_timeout": _positive_duration,
        "connect_timeout": _positive_duration,
    }),
    "smtp": (SmtpConfig, {
        "host": _str(),
        "port": _int(0, 65535),
        "domain": _domain,
        "lmtp": _bool,
        "max_message_size": lambda v: _int(1024, 2**31)(parse_size(v)),
        "hostname": _str(nonempty=False),
        "max_recipients": _int(1, 10000),
        "idle_timeout": _positive_duration,
        "data_timeout": _positive_duration,
        "max_sessions": _int(1, 100000),
        "store_timeout": _positive_duration,
        "drain_timeout": parse_duration,
        "fbl_aliases": _local_parts,
        "max_sessions_per_ip": _int(1, 100000),
        "connections_per_minute_per_ip": _int(0, 1000000),
        "messages_per_minute_per_ip": _int(0, 1000000),
        "limit_exempt": _networks,
        "proxy_protocol": _bool,
        "proxy_timeout": _positive_duration,
        "tls_cert": _str(nonempty=False),
        "tls_key": _str(nonempty=False),
    }),
    "security": (SecurityConfig, {
        "secret_key": _secret,
        "previous_secret_keys": lambda v: tuple(_secret(x) for x in _strings(v)),
        "trusted_authserv_ids": _strings,
    }),
    "processing": (ProcessingConfig, {
        "workers": _int(1, 64),
        "sweep_interval": _positive_duration,
    }),
    "replies": (RepliesConfig, {
        "markers": _markers,
        "acknowledge": _bool,
    }),
    "outbound": (OutboundConfig, {
        "relay": _relay,
        "from_name": _str(),
        "timeout": _positive_duration,
        "max_attempts": _int(1, 100),
        "retry_interval": _positive_duration,
    }),
    "feedback": (FeedbackConfig, {
        "trusted_reporters": lambda v: tuple(_domain(x) for x in _strings(v)),
        "soft_bounce_limit": _int(1, 1000),
        "soft_bounce_window": _positive_duration,
    }),
    "quality": (QualityConfig, {
        "suspect_networks": _networks,
        "cross_account_threshold": _int(2, 1000),
        "check_email": _bool,
        "allowed_domains": _domain_suffixes,
    }),
    "review": (ReviewConfig, {
        "period": _positive_duration,
        "remind_before": parse_duration,
        "check_interval": _positive_duration,
    }),
    "metrics": (MetricsConfig, {
        "listen": _host_port("127.0.0.1:9125", port_zero=True),
    }),
    "retention": (RetentionConfig, {
        "raw_days": _int(0, 36500),
    }),
    "logging": (LoggingConfig, {
        "level": _choice("debug", "info", "warning", "error"),
        "format": _choice("auto", "json", "console"),
        "mask_addresses": _bool,
    }),
}

#: Keys without which we refuse to start, as the design promises.
_REQUIRED = (("database", "url"), ("smtp", "host"), ("smtp", "port"), ("smtp", "domain"),
             ("smtp", "lmtp"), ("smtp", "max_message_size"), ("security", "secret_key"))


def from_mapping(data: Mapping[str, Any], *, source: str = "config",
                 env: Mapping[str, str] | None = None, path: Path | None = None) -> Config:
    """Validate a parsed TOML document (plus environment overrides) into a frozen Config."""
    env = os.environ if env is None else env
    data = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    if env.get(ENV_DATABASE_URL):
        data.setdefault("database", {})["url"] = env[ENV_DATABASE_URL]
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if name not in _SCHEMA:
            raise ConfigError(f"{source}: unknown section [{name}] "
                              f"(known: {', '.join(f'[{s}]' for s in _SCHEMA)})")
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: [{name}] must be a table")
        cls, checks = _SCHEMA[name]
        values = {}
        for key, raw in value.items():
            if key not in checks:
                raise ConfigError(f"{source}: [{name}] {key}: unknown key "
                                  f"(known: {', '.join(checks)})")
            try:
                values[key] = checks[key](raw)
            except ValueError as exc:
                raise ConfigError(f"{source}: [{name}] {key}: {exc}") from None
        sections[name] = cls(**values)
    for section, key in _REQUIRED:
        if key not in data.get(section, {}):
            raise ConfigError(f"{source}: [{section}] {key}: missing (it is required)")
    smtp = sections.get("smtp")
    if smtp is not None and bool(smtp.tls_cert) != bool(smtp.tls_key):
        raise ConfigError(f"{source}: [smtp] tls_cert, tls_key: set both (STARTTLS) or neither")
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

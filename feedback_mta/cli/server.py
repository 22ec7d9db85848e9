"""``serve``, ``db upgrade`` and ``check-config``: run the service, migrate, check a config."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from feedback_mta import config as config_mod
from feedback_mta.cli.common import (
    EXIT_CONFIG,
    EXIT_DATABASE,
    EXIT_FAILED,
    FAST_EXIT,
    VERBOSITY,
    ConfigOpt,
    Failure,
    JsonOpt,
    command,
    configure_logs,
    emit,
    first_line,
    load,
    open_engine,
)

db_app = typer.Typer(help="Create and migrate the schema.", no_args_is_help=True)


@command
def serve(config: ConfigOpt = None,
          workers: Annotated[int, typer.Option(
              min=1, max=64, metavar="N", help="Server processes sharing the port "
                                              "(SO_REUSEPORT), one core each.")] = 1,
          no_smtp: Annotated[bool, typer.Option(
              "--no-smtp", help="HTTP only ([http] listen): a node that serves the API and "
                                "sends webhooks, and takes no mail.")] = False) -> None:
    """Run the SMTP (or LMTP) server, the HTTP API ([http] listen), the webhook senders
    and the scheduler in the foreground."""
    import sqlalchemy as sa

    from feedback_mta.service import serve as serve_mod
    from feedback_mta.service import workers as workers_mod
    from feedback_mta.store import db

    FAST_EXIT.set(False)  # a server leaves the ordinary way, its threads joined
    cfg = load(config)
    verbosity = VERBOSITY.get()
    configure_logs(cfg, stream=sys.stdout, level=cfg.logging.level if not verbosity
                   else ("info" if verbosity == 1 else "debug"))
    try:
        if workers > 1:
            code = workers_mod.supervise(cfg, workers, smtp=not no_smtp)
            if code:
                raise typer.Exit(code)
            return
        serve_mod.main(cfg, smtp=not no_smtp)
    except db.SchemaError as exc:
        raise Failure(str(exc), EXIT_DATABASE) from None
    except (serve_mod.ListenError, serve_mod.ProcessingExited) as exc:
        raise Failure(str(exc), EXIT_FAILED) from None
    except sa.exc.SQLAlchemyError as exc:
        raise Failure(f"database: {first_line(exc)}", EXIT_DATABASE) from None


@db_app.command("upgrade")
@command
def db_upgrade(config: ConfigOpt = None, as_json: JsonOpt = False,
               revision: Annotated[str, typer.Option(metavar="REV", help="Target revision.")
                                   ] = "head") -> None:
    """Create the schema, or migrate it to the newest revision."""
    import sqlalchemy as sa

    from feedback_mta.store import db

    cfg = load(config)
    configure_logs(cfg)
    engine = open_engine(cfg)
    try:
        before, after = db.upgrade(engine, revision)
    except sa.exc.SQLAlchemyError as exc:
        raise Failure(f"database: {first_line(exc)}", EXIT_DATABASE) from None
    emit({"before": before, "after": after, "changed": before != after}, as_json)


def _bindable(host: str, setting: str = "[smtp] host") -> str | None:
    """Why ``host`` cannot be listened on (it does not resolve, or is not an address of
    this machine), or None. Binds port 0: the configured port may be the running server's
    own."""
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"{setting} {host!r} does not resolve: {exc.strerror or exc}"
    family, _, _, _, address = infos[0]
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind(address)
    except OSError as exc:
        return f"{setting} {host!r} cannot be bound here: {exc.strerror or exc}"
    return None


@command
def check_config(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Validate the config, reach the database and the outbound relay; change and send
    nothing. Exits 3 for a config error, 4 when the database cannot be reached or its
    schema is behind with auto_upgrade off, 1 when the relay cannot be reached."""
    import sqlalchemy as sa

    from feedback_mta.service import outbox
    from feedback_mta.store import db

    cfg = load(config)
    problem = _bindable(cfg.smtp.host)
    if problem is None and cfg.http.address is not None:
        problem = _bindable(cfg.http.address[0], "[http] listen")
    problem = problem or _hooks_problem(cfg)
    if problem:
        raise Failure(problem, EXIT_CONFIG)
    starttls = "off (set [smtp] tls_cert and tls_key to offer it)"
    if cfg.smtp.tls_cert:
        from feedback_mta.edge.tls import TlsError, TlsFiles
        try:
            TlsFiles(cfg.smtp.tls_cert, cfg.smtp.tls_key)
        except TlsError as exc:
            raise Failure(str(exc), EXIT_CONFIG) from None
        starttls = cfg.smtp.tls_cert
    head = db.head_revision()
    try:
        engine = open_engine(cfg, read_only=True)
        url = engine.url.render_as_string()
    except db.SchemaError:  # no SQLite file yet: serve (or db upgrade) creates it
        engine, url = None, cfg.database.url
    revision, unknown = None, 0
    if engine is not None:
        try:
            revision = db.current_revision(engine)
            if revision == head:
                unknown = _consent_unknown(engine)
        except sa.exc.SQLAlchemyError as exc:
            raise Failure(f"database {url}: {first_line(exc)}", EXIT_DATABASE) from None
        finally:
            engine.dispose()
    if revision != head and not cfg.database.auto_upgrade:
        raise Failure(f"database schema is at {revision or 'nothing'}, this version needs "
                      f"{head}: run `feedback-mta db upgrade` (auto_upgrade is off)",
                      EXIT_DATABASE)
    relay = "not configured (no acknowledgements or digests are sent)"
    if cfg.outbound.relay:
        try:
            relay = outbox.probe(cfg.outbound)
        except outbox.RelayProblem as exc:
            raise Failure(str(exc), EXIT_FAILED) from None
    warnings = []
    if cfg.security.secret_key == config_mod.EXAMPLE_SECRET:
        warnings.append("[security] secret_key is the example's: set a long random one")
    if engine is None:
        warnings.append(f"no database yet at {url}: `serve` or `db upgrade` creates it")
    hooks = _hooks_enabled(cfg)
    if cfg.http.public_url.startswith("http://"):
        warnings.append("[http] public_url is not https: RFC 8058 one-click needs an HTTPS "
                        "URL, and mailbox providers ignore others")
    if cfg.unsendable:
        warnings.append(f"[outbound] relay is empty: {' and '.join(cfg.unsendable)} are on "
                        "but never sent (nor the digests); set a relay")
    if cfg.webhooks.allow_private_networks:
        warnings.append("[webhooks] allow_private_networks is on: webhook URLs may point at "
                        "this host and its private networks; turn it off outside a test setup")
    if unknown:
        warnings.append(f"{unknown} contact{'s' if unknown != 1 else ''} with consent method "
                        "unknown (from before consent was kept, or added without "
                        "--consent-method): mailed without a confirmation; yours to decide "
                        "(contact consent ID shows a record)")
    if (hooks or cfg.http.public_url) and cfg.http.address is None:
        warnings.append("[http] listen is empty: one-click unsubscribes and ESP webhooks "
                        "have nowhere to arrive")
    emit({"config": str(cfg.path), "database": url, "schema": revision, "schema_head": head,
          "listen": f"{cfg.smtp.host}:{cfg.smtp.port}", "domain": cfg.smtp.domain,
          "protocol": "lmtp" if cfg.smtp.lmtp else "smtp", "relay": relay,
          "starttls": starttls, "proxy_protocol": cfg.smtp.proxy_protocol,
          "metrics": cfg.metrics.listen or "off", "http": cfg.http.listen or "off",
          "one_click": cfg.http.public_url or "off", "hooks": hooks,
          "warnings": warnings}, as_json)


def _consent_unknown(engine: Any) -> int:
    """How many contacts have consent method ``unknown``: one count."""
    import sqlalchemy as sa

    from feedback_mta.store import tables
    from feedback_mta.store.states import ConsentMethod

    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(
            tables.contact.c.consent_method == ConsentMethod.UNKNOWN.value)).scalar_one())


def _hooks_enabled(cfg: config_mod.Config) -> list[str]:
    """The ESP webhooks the config sets up (``/hooks/<name>`` answers 404 for the rest)."""
    from feedback_mta.reading.hooks import PROVIDERS

    return [name for name, module in PROVIDERS.items()
            if module.enabled(getattr(cfg.webhooks, name))]


def _hooks_problem(cfg: config_mod.Config) -> str | None:
    """A SendGrid key that is no ECDSA key, an SNS CA bundle that is not there."""
    from feedback_mta.reading.hooks import sendgrid

    if cfg.webhooks.sendgrid.public_key:
        try:
            sendgrid.public_key(cfg.webhooks.sendgrid.public_key)
        except ValueError as exc:
            return f"[webhooks.sendgrid] public_key: not a verification key ({exc})"
    ca_file = cfg.webhooks.ses.ca_file
    if ca_file and not Path(ca_file).is_file():
        return f"[webhooks.ses] ca_file: no such file {ca_file!r}"
    return None

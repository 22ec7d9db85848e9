"""``feedback-mta``: the command admins and their scripts use (names from DESIGN.md).

Every command takes ``--config FILE`` (or ``$FEEDBACK_MTA_CONFIG``) and ``--json``. With
``--json`` stdout carries only JSON: one object, or one object per line for lists; logs go
to stderr. Errors are one line on stderr. Exit codes:

====  =====================================================
0     done
1     the operation failed (not found, invalid input)
2     usage error (unknown option, missing argument)
3     configuration error
4     database unreachable or its schema not up to date
====  =====================================================
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from feedback_mta import config as config_mod
from feedback_mta import logs, tokens
from feedback_mta.actions import (
    CLI,
    ActionError,
    Actions,
    Actor,
    notification_message_id,
    unit_of_work,
)
from feedback_mta.actions.quality import policy as quality_policy
from feedback_mta.addresses import AddressBook, Box
from feedback_mta.cli import output
from feedback_mta.jobs import classify as classify_job
from feedback_mta.quality import verdict as quality
from feedback_mta.quality.verdict import Engagement
from feedback_mta.service import outbox as outbound
from feedback_mta.store import db
from feedback_mta.store.models import (
    Account,
    Contact,
    ContactStatus,
    Event,
    InboundMessage,
    Lead,
    LeadStatus,
    MessageState,
    Role,
    SentCount,
    SuspectNetwork,
    Tag,
)

EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_DATABASE = 1, 2, 3, 4

app = typer.Typer(help="Turns email feedback into database changes.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Create and migrate the schema.", no_args_is_help=True)
account_app = typer.Typer(help="Accounts (tenants).", no_args_is_help=True)
user_app = typer.Typer(help="Users who may write to us.", no_args_is_help=True)
lead_app = typer.Typer(help="Leads (contact activities).", no_args_is_help=True)
contact_app = typer.Typer(help="Contacts.", no_args_is_help=True)
inbox_app = typer.Typer(help="Inbound messages.", no_args_is_help=True)
network_app = typer.Typer(help="Suspect networks (form submissions from them are suspected).",
                          no_args_is_help=True)
quality_app = typer.Typer(help="The contact quality check, offline.", no_args_is_help=True)
for _name, _sub in (("db", db_app), ("account", account_app), ("user", user_app),
                    ("lead", lead_app), ("contact", contact_app), ("inbox", inbox_app),
                    ("network", network_app), ("quality", quality_app)):
    app.add_typer(_sub, name=_name)

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", help="Config file (TOML); default $FEEDBACK_MTA_CONFIG.",
    envvar=config_mod.ENV_CONFIG, show_envvar=True)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON and nothing else on stdout.")]


class Failure(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


# --- plumbing ------------------------------------------------------------------------------

def _load(path: Path | None, *, log_stream=None) -> config_mod.Config:
    try:
        cfg = config_mod.load(path)
    except config_mod.ConfigError as exc:
        raise Failure(str(exc), EXIT_CONFIG) from None
    logs.configure(cfg.logging.level, cfg.logging.format, stream=log_stream or sys.stderr,
                   mask_addresses=cfg.logging.mask_addresses)
    return cfg


def _engine(cfg: config_mod.Config) -> Engine:
    try:
        engine = db.create_engine(cfg.database)
        if cfg.database.auto_upgrade:
            db.upgrade(engine)
        db.check_schema(engine)
    except db.SchemaError as exc:
        raise Failure(str(exc), EXIT_DATABASE) from None
    except sa.exc.SQLAlchemyError as exc:
        raise Failure(f"database: {_first_line(exc)}", EXIT_DATABASE) from None
    return engine


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _jsonable(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) if isinstance(v, datetime) else v for k, v in obj.items()}


def _emit(obj: dict[str, Any], as_json: bool) -> None:
    obj = _jsonable(obj)
    if as_json:
        print(json.dumps(obj, ensure_ascii=False))
        return
    width = max((len(k) for k in obj), default=0)
    for key, value in obj.items():
        if isinstance(value, list | dict):
            value = json.dumps(value, ensure_ascii=False)
        print(f"{key:<{width}}  {'' if value is None else value}")


def _emit_rows(rows: Iterable[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    rows = [_jsonable(r) for r in rows]
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    output.table(rows, columns)


def _run(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Failure as exc:
        print(f"feedback-mta: error: {exc}", file=sys.stderr)
        raise typer.Exit(exc.code) from None
    except ActionError as exc:
        print(f"feedback-mta: error: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_FAILED) from None
    except sa.exc.OperationalError as exc:
        print(f"feedback-mta: error: database: {_first_line(exc)}", file=sys.stderr)
        raise typer.Exit(EXIT_DATABASE) from None


# --- serve / db ----------------------------------------------------------------------------

@app.command()
def serve(config: ConfigOpt = None,
          workers: Annotated[int, typer.Option(
              min=1, max=64, help="Server processes sharing the port (SO_REUSEPORT), one "
                                  "core each.")] = 1) -> None:
    """Run the SMTP (or LMTP) server and the scheduler in the foreground."""
    from feedback_mta.service import serve as serve_mod
    from feedback_mta.service import workers as workers_mod

    def go():
        cfg = _load(config, log_stream=sys.stdout)
        try:
            if workers > 1:
                code = workers_mod.supervise(cfg, workers)
                if code:
                    raise typer.Exit(code)
                return
            asyncio.run(serve_mod.run(cfg))
        except db.SchemaError as exc:
            raise Failure(str(exc), EXIT_DATABASE) from None
        except serve_mod.ListenError as exc:
            raise Failure(str(exc), EXIT_FAILED) from None
        except sa.exc.SQLAlchemyError as exc:
            raise Failure(f"database: {_first_line(exc)}", EXIT_DATABASE) from None

    _run(go)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, as_json: JsonOpt = False,
               revision: Annotated[str, typer.Option(help="Target revision.")] = "head") -> None:
    """Create the schema, or migrate it to the newest revision."""
    def go():
        cfg = _load(config)
        engine = db.create_engine(cfg.database)
        try:
            before, after = db.upgrade(engine, revision)
        except sa.exc.SQLAlchemyError as exc:
            raise Failure(f"database: {_first_line(exc)}", EXIT_DATABASE) from None
        _emit({"before": before, "after": after, "changed": before != after}, as_json)

    _run(go)


@app.command("check-config")
def check_config(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Validate the config, reach the database and the outbound relay (sending nothing).

    Exits 3 for a config error, 4 when the database cannot be reached or its schema is
    behind with auto_upgrade off, 1 when the relay cannot be reached."""
    def go():
        cfg = _load(config)
        starttls = "off (set [smtp] tls_cert and tls_key to offer it)"
        if cfg.smtp.tls_cert:
            from feedback_mta.edge.tls import TlsError, TlsFiles
            try:
                TlsFiles(cfg.smtp.tls_cert, cfg.smtp.tls_key)
            except TlsError as exc:
                raise Failure(str(exc), EXIT_CONFIG) from None
            starttls = cfg.smtp.tls_cert
        engine = db.create_engine(cfg.database)
        try:
            revision = db.current_revision(engine)
        except sa.exc.SQLAlchemyError as exc:
            raise Failure(f"database {engine.url.render_as_string()}: {_first_line(exc)}",
                          EXIT_DATABASE) from None
        finally:
            engine.dispose()
        head = db.head_revision()
        if revision != head and not cfg.database.auto_upgrade:
            raise Failure(f"database schema is at {revision or 'nothing'}, this version needs "
                          f"{head}: run `feedback-mta db upgrade` (auto_upgrade is off)",
                          EXIT_DATABASE)
        relay = "not configured (no acknowledgements or digests are sent)"
        if cfg.outbound.relay:
            try:
                relay = outbound.probe(cfg.outbound)
            except outbound.RelayProblem as exc:
                raise Failure(str(exc), EXIT_FAILED) from None
        warnings = []
        if cfg.security.secret_key == config_mod.EXAMPLE_SECRET:
            warnings.append("[security] secret_key is the example's: set a long random one")
        _emit({"config": str(cfg.path), "database": engine.url.render_as_string(),
               "schema": revision, "schema_head": head,
               "listen": f"{cfg.smtp.host}:{cfg.smtp.port}", "domain": cfg.smtp.domain,
               "protocol": "lmtp" if cfg.smtp.lmtp else "smtp", "relay": relay,
               "starttls": starttls, "proxy_protocol": cfg.smtp.proxy_protocol,
               "metrics": cfg.metrics.listen or "off", "warnings": warnings}, as_json)

    _run(go)


# --- accounts, users -----------------------------------------------------------------------

@account_app.command("add")
def account_add(name: str, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Add an account; prints its id."""
    def go():
        with unit_of_work(_engine(_load(config)), CLI) as act:
            account = act.add_account(name)
        _emit({"id": account.id, "name": account.name}, as_json)

    _run(go)


@account_app.command("sent")
def account_sent(
    account_id: Annotated[int, typer.Argument(metavar="ID")],
    count: Annotated[int, typer.Argument(metavar="COUNT", min=0)],
    day: Annotated[str | None, typer.Option("--day", help="ISO date (UTC); default today.")
                   ] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Add COUNT to the messages the account sent on a day: the complaint rate's base."""
    def go():
        try:
            when = (datetime.fromisoformat(day).date() if day
                    else datetime.now(UTC).date()).isoformat()
        except ValueError:
            raise Failure(f"--day: expected an ISO date such as 2026-11-21, got {day!r}",
                          EXIT_USAGE) from None
        with unit_of_work(_engine(_load(config)), CLI) as act:
            row = act.add_sent(account_id, when, count)
        _emit({"account_id": account_id, "day": row.day, "sent": row.count}, as_json)

    _run(go)


@user_app.command("add")
def user_add(
    account: Annotated[int, typer.Option("--account", help="Account id.")],
    email: Annotated[str, typer.Option("--email", help="The user's address.")],
    role: Annotated[list[Role] | None, typer.Option("--role", help="Role (repeatable).")] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Add a user to an account (or grant an existing one more roles)."""
    def go():
        with unit_of_work(_engine(_load(config)), CLI) as act:
            user = act.add_user(account, email, [r.value for r in role or ()])
        _emit({"id": user.id, "account_id": user.account_id, "email": user.email,
               "roles": sorted(user.role_set)}, as_json)

    _run(go)


# --- leads ---------------------------------------------------------------------------------

def _lead_dict(lead: Lead, book: AddressBook) -> dict[str, Any]:
    return {
        "id": lead.id, "account_id": lead.account_id, "contact_id": lead.contact_id,
        "status": lead.status, "source_ip": lead.source_ip, "comments": lead.comments,
        "reply_to": book.address(Box.REPLY, lead.id),
        "message_id": lead.notification_message_id or notification_message_id(book, lead.id),
        "flagged_at": lead.flagged_at, "flagged_by": lead.flagged_by,
        "flagged_via": lead.flagged_via, "exported_at": lead.exported_at,
        "created_at": lead.created_at,
    }


@lead_app.command("add")
def lead_add(
    account: Annotated[int, typer.Option("--account", help="Account id.")],
    email: Annotated[str, typer.Option("--email", help="The contact's address.")],
    first: Annotated[str, typer.Option("--first", help="First name.")] = "",
    last: Annotated[str, typer.Option("--last", help="Last name.")] = "",
    ip: Annotated[str | None, typer.Option("--ip", help="Source IP of the form.")] = None,
    comments: Annotated[str, typer.Option("--comments", help="Form comments.")] = "",
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Add a lead (and its contact if new); prints the Reply-To and Message-ID to send with."""
    def go():
        cfg = _load(config)
        book = AddressBook.from_config(cfg)
        with unit_of_work(_engine(cfg), CLI) as act:
            lead = act.add_lead(book, account, email, first, last, ip, comments)
            contact = act.contact(lead.contact_id)
            verdict = act.screen(contact, quality_policy(act.session, cfg), cfg.review.period)
        _emit({**_lead_dict(lead, book), "contact_status": contact.status,
               "quality": verdict.level.value, "quality_reasons": list(verdict.reasons)},
              as_json)

    _run(go)


@lead_app.command("show")
def lead_show(lead_id: Annotated[int, typer.Argument(metavar="ID")], config: ConfigOpt = None,
              as_json: JsonOpt = False) -> None:
    """Show one lead."""
    def go():
        cfg = _load(config)
        with Session(_engine(cfg)) as session:
            lead = Actions(session, CLI).lead(lead_id)
            _emit(_lead_dict(lead, AddressBook.from_config(cfg)), as_json)

    _run(go)


@lead_app.command("list")
def lead_list(
    account: Annotated[int | None, typer.Option("--account", help="Account id.")] = None,
    status: Annotated[LeadStatus, typer.Option(
        "--status", help="Spam leads are hidden unless asked for.")] = LeadStatus.ACTIVE,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 100,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """List leads, newest first."""
    def go():
        cfg = _load(config)
        book = AddressBook.from_config(cfg)
        with Session(db.reader(_engine(cfg))) as session:
            query = select(Lead).where(Lead.status == status.value)
            if account is not None:
                query = query.where(Lead.account_id == account)
            leads = session.exec(query.order_by(Lead.id.desc()).limit(limit)).all()
            _emit_rows((_lead_dict(lead, book) for lead in leads),
                       ("id", "account_id", "contact_id", "status", "source_ip", "created_at"),
                       as_json)

    _run(go)


ByOpt = Annotated[str | None, typer.Option(
    "--by", help="Who is acting, for the audit trail (default: cli).")]


def _change_lead(lead_id: int, by: str | None, change: Callable[[Actions, Lead], bool],
                 config: Path | None, as_json: bool) -> None:
    def go():
        cfg = _load(config)
        actor = Actor(f"cli:{by}" if by else CLI.name, "cli")
        with unit_of_work(_engine(cfg), actor) as act:
            lead = act.lead(lead_id)
            changed = change(act, lead)
        _emit({**_lead_dict(lead, AddressBook.from_config(cfg)), "changed": changed}, as_json)

    _run(go)


@lead_app.command("flag")
def lead_flag(lead_id: Annotated[int, typer.Argument(metavar="ID")], by: ByOpt = None,
              config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Mark a lead spam (as a dealer's SPAM reply would); "changed": false if it was."""
    _change_lead(lead_id, by, Actions.flag_spam, config, as_json)


@lead_app.command("restore")
def lead_restore(lead_id: Annotated[int, typer.Argument(metavar="ID")], by: ByOpt = None,
                 config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Undo a spam flag; "changed": false if the lead was not spam."""
    _change_lead(lead_id, by, Actions.restore, config, as_json)


@lead_app.command("export")
def lead_export(
    account: Annotated[int, typer.Option("--account", help="Account id.")],
    limit: Annotated[int, typer.Option("--limit", min=1)] = 1000,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Hand the account's new leads to the CRM: prints them and marks them exported.
    Spam leads are held back; a lead restored before export goes out with the next run."""
    def go():
        cfg = _load(config)
        book = AddressBook.from_config(cfg)
        with unit_of_work(_engine(cfg), CLI) as act:
            act.account(account)
            leads = act.session.exec(
                select(Lead).where(Lead.account_id == account,
                                   Lead.status == LeadStatus.ACTIVE.value,
                                   Lead.exported_at.is_(None))
                .order_by(Lead.id).limit(limit)).all()
            for lead in leads:
                act.mark_exported(lead)
        _emit_rows((_lead_dict(lead, book) for lead in leads),
                   ("id", "account_id", "contact_id", "source_ip", "exported_at"), as_json)

    _run(go)


# --- contacts ------------------------------------------------------------------------------

def _contact_dict(session: Session, contact: Contact) -> dict[str, Any]:
    tags = Actions(session, CLI).tags(contact)
    return {"id": contact.id, "account_id": contact.account_id, "email": contact.email,
            "first_name": contact.first_name, "last_name": contact.last_name,
            "status": contact.status, "opt_out_reason": contact.opt_out_reason,
            "opted_out_at": contact.opted_out_at, "mailable": contact.mailable,
            "tags": list(tags), "quality": contact.quality,
            "quality_reasons": json.loads(contact.quality_reasons or "[]"),
            "review_deadline": contact.review_deadline,
            "verified": contact.verified_at is not None, "verified_at": contact.verified_at,
            "engaged": contact.engaged_at is not None,
            "engagement": contact.engagement.split(), "source_ip": contact.source_ip}


@contact_app.command("show")
def contact_show(contact_id: Annotated[int, typer.Argument(metavar="ID")],
                 config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show one contact: status, opt-out reason, tags, review deadline, bounces."""
    def go():
        with Session(db.reader(_engine(_load(config)))) as session:
            contact = Actions(session, CLI).contact(contact_id)
            # The contact's activities as its inbox shows them: spam leads are left out.
            leads = session.exec(select(Lead.id).where(
                Lead.contact_id == contact_id, Lead.status == LeadStatus.ACTIVE.value)
                .order_by(Lead.id.desc())).all()
            # Bounces as the bounce handler counts them, for "why is this not mailable?".
            events = session.exec(select(Event.action, sa.func.count()).where(
                Event.subject_type == "contact", Event.subject_id == contact_id,
                Event.action.in_(("contact.hard_bounced", "contact.soft_bounced",
                                  "contact.complained")))
                .group_by(Event.action)).all()
            counts = dict(events)
            _emit({**_contact_dict(session, contact),
                   "undeliverable_at": contact.undeliverable_at,
                   "undeliverable_reason": contact.undeliverable_reason,
                   "hard_bounces": counts.get("contact.hard_bounced", 0),
                   "soft_bounces": counts.get("contact.soft_bounced", 0),
                   "complaints": counts.get("contact.complained", 0),
                   "leads": list(leads),
                   "created_at": contact.created_at, "updated_at": contact.updated_at},
                  as_json)

    _run(go)


@contact_app.command("add")
def contact_add(
    account: Annotated[int, typer.Option("--account", help="Account id.")],
    email: Annotated[str, typer.Option("--email", help="The contact's address.")],
    first: Annotated[str, typer.Option("--first", help="First name.")] = "",
    last: Annotated[str, typer.Option("--last", help="Last name.")] = "",
    ip: Annotated[str | None, typer.Option("--ip", help="Source IP of the form.")] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Add a contact (checked as it arrives: known bad ones are opted out at once)."""
    def go():
        cfg = _load(config)
        with unit_of_work(_engine(cfg), CLI) as act:
            contact, created = act.add_contact(account, email, first, last, ip)
            act.screen(contact, quality_policy(act.session, cfg), cfg.review.period)
            result = {**_contact_dict(act.session, contact), "created": created}
        _emit(result, as_json)

    _run(go)


_IMPORT_FIELDS = ("email", "first", "last", "ip")


def _import_rows(path: Path) -> Iterable[tuple[int, dict[str, str]]]:
    """Rows of a CSV file (header: email,first,last,ip) or of JSON lines, numbered from 1."""
    handle = sys.stdin if str(path) == "-" else path.open(encoding="utf-8-sig", newline="")
    with handle:
        first = handle.readline()
        if first.lstrip().startswith("{"):
            for n, line in enumerate([first, *handle], 1):
                if line.strip():
                    yield n, json.loads(line)
            return
        header = [h.strip().lower() for h in next(csv.reader([first]))]
        for n, row in enumerate(csv.reader(handle), 2):
            if any(cell.strip() for cell in row):
                yield n, dict(zip(header, row, strict=False))


@contact_app.command("import")
def contact_import(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="CSV or JSON lines; - for stdin")],
    account: Annotated[int, typer.Option("--account", help="Account id.")],
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Import contacts (CSV with a header email,first,last,ip, or JSON lines with those
    keys); each is checked as it arrives. Bad rows are reported and skipped."""
    def go():
        cfg = _load(config)
        engine = _engine(cfg)
        counts: Counter = Counter()
        errors = []
        with unit_of_work(engine, CLI) as act:
            act.account(account)
            pol = quality_policy(act.session, cfg)
            for n, row in _import_rows(file):
                try:
                    with act.session.begin_nested():
                        contact, created = act.add_contact(
                            account, str(row.get("email") or ""), str(row.get("first") or ""),
                            str(row.get("last") or ""), row.get("ip") or None)
                        verdict = act.screen(contact, pol, cfg.review.period)
                except ActionError as exc:
                    errors.append({"line": n, "error": str(exc)})
                    continue
                counts["created" if created else "existing"] += 1
                counts[verdict.level.value] += 1
        result = {"account_id": account, "created": counts["created"],
                  "existing": counts["existing"], "ok": counts["ok"],
                  "suspected": counts["suspected"], "invalid": counts["invalid"],
                  "errors": errors}
        _emit(result, as_json)

    _run(go)


@contact_app.command("list")
def contact_list(
    tag: Annotated[str | None, typer.Option("--tag", help="Only contacts with this tag.")
                   ] = None,
    account: Annotated[int | None, typer.Option("--account", help="Account id.")] = None,
    status: Annotated[ContactStatus | None, typer.Option("--status")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 1000,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """List contacts, e.g. those to review: --tag "SYSTEM - Suspected Invalid Contact"."""
    def go():
        with Session(db.reader(_engine(_load(config)))) as session:
            query = select(Contact)
            if tag is not None:
                query = query.where(Contact.id.in_(select(Tag.contact_id).where(Tag.name == tag)))
            if account is not None:
                query = query.where(Contact.account_id == account)
            if status is not None:
                query = query.where(Contact.status == status.value)
            contacts = session.exec(query.order_by(Contact.id).limit(limit)).all()
            rows = [_contact_dict(session, c) for c in contacts]
        _emit_rows(rows, ("id", "account_id", "email", "first_name", "last_name", "status",
                          "review_deadline", "quality_reasons"), as_json)

    _run(go)


def _change_contact(contact_id: int, by: str | None,
                    change: Callable[[Actions, Contact], Any], config: Path | None,
                    as_json: bool) -> None:
    def go():
        actor = Actor(f"cli:{by}" if by else CLI.name, "cli")
        with unit_of_work(_engine(_load(config)), actor) as act:
            contact = act.contact(contact_id)
            changed = change(act, contact)
            result = {**_contact_dict(act.session, contact), "changed": bool(changed)}
        _emit(result, as_json)

    _run(go)


@contact_app.command("verify")
def contact_verify(contact_id: Annotated[int, typer.Argument(metavar="ID")], by: ByOpt = None,
                   config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """A real person: remove the SYSTEM tags and the deadline, undo the check's opt-out, and
    do not tag it again for the same reasons."""
    _change_contact(contact_id, by, Actions.verify, config, as_json)


@contact_app.command("optout")
def contact_optout(contact_id: Annotated[int, typer.Argument(metavar="ID")], by: ByOpt = None,
                   reason: Annotated[str, typer.Option("--reason")] = "manual",
                   config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Opt a contact out now (reason "manual" unless given)."""
    _change_contact(contact_id, by, lambda act, c: act.opt_out(c, reason), config, as_json)


@contact_app.command("engage")
def contact_engage(
    contact_id: Annotated[int, typer.Argument(metavar="ID")],
    kind: Annotated[Engagement, typer.Option("--kind", help="What the contact did.")],
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Record a purchase, double opt-in, open or click: the contact is never called bad, and
    a pending suspicion is cleared."""
    _change_contact(contact_id, None, lambda act, c: act.engage(c, kind), config, as_json)


@contact_app.command("delete")
def contact_delete(contact_id: Annotated[int, typer.Argument(metavar="ID")], by: ByOpt = None,
                   config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Delete a contact with its leads and tags (the audit events stay)."""
    def go():
        actor = Actor(f"cli:{by}" if by else CLI.name, "cli")
        with unit_of_work(_engine(_load(config)), actor) as act:
            removed = act.delete_contact(act.contact(contact_id))
        _emit({"id": contact_id, "deleted": True, **removed}, as_json)

    _run(go)


@contact_app.command("headers")
def contact_headers(contact_id: Annotated[int, typer.Argument(metavar="ID")],
                    config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Headers to put on mail sent to this contact (VERP, List-Unsubscribe, token)."""
    def go():
        cfg = _load(config)
        book = AddressBook.from_config(cfg)
        with Session(db.reader(_engine(cfg))) as session:
            contact = session.get(Contact, contact_id)
            if contact is None:
                raise Failure(f"no contact {contact_id}")
        unsubscribe = book.address(Box.UNSUBSCRIBE, contact_id)
        _emit({
            "Return-Path": f"<{book.address(Box.BOUNCE, contact_id)}>",
            "List-Unsubscribe": f"<mailto:{unsubscribe}?subject=unsubscribe>",
            tokens.TOKEN_HEADER: tokens.make(book.secrets[0], tokens.Purpose.FEEDBACK,
                                             contact_id),
            tokens.ACCOUNT_HEADER: tokens.make(book.secrets[0], tokens.Purpose.ACCOUNT,
                                               contact.account_id),
        }, as_json)

    _run(go)


@contact_app.command("deliverable")
def contact_deliverable(contact_id: Annotated[int, typer.Argument(metavar="ID")],
                        config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Make a contact mailable again after bounces (its mailbox works again)."""
    def go():
        with unit_of_work(_engine(_load(config)), CLI) as act:
            changed = act.mark_deliverable(act.contact(contact_id))
        _emit({"id": contact_id, "mailable": True, "changed": changed}, as_json)

    _run(go)


# --- contact quality -----------------------------------------------------------------------

@app.command("classify")
def classify_contacts(
    account: Annotated[int | None, typer.Option("--account", help="Only this account.")] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Check every existing contact as if it arrived now: known bad ones are opted out and
    tagged, suspected ones tagged with a review deadline. Prints a summary."""
    def go():
        cfg = _load(config)
        engine = _engine(cfg)
        if account is not None:
            with Session(engine) as session:
                Actions(session, CLI).account(account)
        show = sys.stderr.isatty()
        with Session(db.reader(engine)) as session:
            query = select(sa.func.count()).select_from(Contact)
            if account is not None:
                query = query.where(Contact.account_id == account)
            total = session.exec(query).one()
        with typer.progressbar(length=total, label="classifying", file=sys.stderr,
                               hidden=not show) as bar:
            summary = classify_job.classify_all(engine, cfg, account=account, actor=CLI,
                                          progress=bar.update)
        if as_json:
            _emit(summary, True)
            return
        print(f"checked {summary['checked']}: {summary['ok']} ok, {summary['suspected']} "
              f"suspected, {summary['invalid']} invalid ({summary['changed']} changed)")
        for reason, n in summary["reasons"].items():
            print(f"  {n:>8}  {reason}")

    _run(go)


@quality_app.command("check")
def quality_check(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Read JSON lines ({"first", "last", "email", "ip"}) on stdin; print a verdict and its
    reasons per line. Offline: no database (suspect networks from the config only, no
    cross-account counts)."""
    def go():
        pol = quality.Policy()
        if config is not None or os.environ.get(config_mod.ENV_CONFIG):
            pol = quality.Policy.from_config(_load(config))
        for n, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                if not isinstance(item, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                _emit({"line": n, "error": f"not a JSON object: {exc}"}, as_json)
                continue
            ip = item.get("ip")
            sub = quality.Submission(str(item.get("first") or ""), str(item.get("last") or ""),
                                     str(item.get("email") or ""), (str(ip),) if ip else ())
            verdict = quality.assess(sub, pol)
            out = {"line": n, "verdict": verdict.level.value, "reasons": list(verdict.reasons)}
            if as_json:
                print(json.dumps(out, ensure_ascii=False), flush=True)
            else:
                print(f"{n:>6}  {verdict.level.value:<9}  {'; '.join(verdict.reasons)}",
                      flush=True)

    _run(go)


@network_app.command("add")
def network_add(cidr: Annotated[str, typer.Argument(metavar="CIDR")],
                note: Annotated[str, typer.Option("--note")] = "",
                config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Suspect form submissions from this network (checked as contacts arrive, and by
    classify)."""
    def go():
        with unit_of_work(_engine(_load(config)), CLI) as act:
            row, created = act.add_network(cidr, note)
        _emit({"cidr": row.cidr, "note": row.note, "created": created}, as_json)

    _run(go)


@network_app.command("remove")
def network_remove(cidr: Annotated[str, typer.Argument(metavar="CIDR")],
                   config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Stop suspecting a network (contacts already tagged keep their tag and deadline)."""
    def go():
        with unit_of_work(_engine(_load(config)), CLI) as act:
            removed = act.remove_network(cidr)
        if not removed:
            raise Failure(f"no suspect network {cidr}")
        _emit({"cidr": cidr, "removed": True}, as_json)

    _run(go)


@network_app.command("list")
def network_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Suspect networks: from the config and from ``network add``."""
    def go():
        cfg = _load(config)
        with Session(db.reader(_engine(cfg))) as session:
            rows = [{"cidr": r.cidr, "source": "database", "note": r.note,
                     "created_at": r.created_at, "created_by": r.created_by}
                    for r in session.exec(select(SuspectNetwork).order_by(SuspectNetwork.id))]
        rows = [{"cidr": c, "source": "config", "note": "", "created_at": None,
                 "created_by": None} for c in cfg.quality.suspect_networks] + rows
        _emit_rows(rows, ("cidr", "source", "note", "created_at"), as_json)

    _run(go)


# --- stats ---------------------------------------------------------------------------------

@app.command("stats")
def stats(
    account: Annotated[int | None, typer.Option("--account", help="Only this account.")] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="Window for rates and counts.")
                    ] = 30,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Inbox counts and, per account, complaints and the complaint rate over a window.

    The rate is complaints per message sent (``account sent``) when sends are known,
    else per contact; providers act on rates above about 0.1% (0.3% is Gmail's limit)."""
    def go():
        engine = _engine(_load(config))
        since = datetime.now(UTC) - timedelta(days=days)
        with Session(db.reader(engine)) as session:
            inbox = dict(session.exec(select(InboundMessage.state, sa.func.count())
                                      .group_by(InboundMessage.state)).all())
            kinds = dict(session.exec(select(InboundMessage.kind, sa.func.count())
                                      .where(InboundMessage.received_at >= since)
                                      .group_by(InboundMessage.kind)).all())
            unattributed = session.exec(select(sa.func.count()).select_from(InboundMessage)
                                        .where(InboundMessage.reason == "unattributed",
                                               InboundMessage.received_at >= since)).one()
            accounts = select(Account.id, Account.name).order_by(Account.id)
            if account is not None:
                accounts = accounts.where(Account.id == account)
            rows = session.exec(accounts).all()
            ids = [r.id for r in rows]
            contacts = {r[0]: r[1:] for r in session.exec(
                select(Contact.account_id, sa.func.count(),
                       sa.func.sum(sa.case((Contact.status == ContactStatus.OPTED_OUT.value,
                                            1), else_=0)),
                       sa.func.count(Contact.undeliverable_at))
                .where(Contact.account_id.in_(ids)).group_by(Contact.account_id)).all()}
            complaints = dict(session.exec(
                select(Event.account_id, sa.func.count())
                .where(Event.action == "contact.complained", Event.at >= since,
                       Event.account_id.in_(ids)).group_by(Event.account_id)).all())
            sent = dict(session.exec(
                select(SentCount.account_id, sa.func.sum(SentCount.count))
                .where(SentCount.day >= since.date().isoformat(),
                       SentCount.account_id.in_(ids)).group_by(SentCount.account_id)).all())
        per_account = []
        for row in rows:
            total, opted_out, undeliverable = contacts.get(row.id, (0, 0, 0))
            n_sent = int(sent.get(row.id) or 0)
            n_complaints = complaints.get(row.id, 0)
            basis, base = ("sent", n_sent) if n_sent else ("contacts", total)
            per_account.append({
                "id": row.id, "name": row.name, "contacts": total,
                "opted_out": int(opted_out or 0), "undeliverable": undeliverable,
                "complaints": n_complaints, "sent": n_sent if n_sent else None,
                "complaint_rate": round(n_complaints / base, 6) if base else 0.0,
                "rate_basis": basis})
        result = {"window_days": days, "since": since,
                  "inbox": {state.value: inbox.get(state.value, 0) for state in MessageState},
                  "kinds": {k: v for k, v in sorted(kinds.items(), key=lambda kv: str(kv[0]))
                            if k is not None},
                  "unattributed": unattributed, "accounts": per_account}
        if as_json:
            _emit(result, True)
            return
        print(f"inbox: {json.dumps(result['inbox'])}  last {days} days: "
              f"{json.dumps(result['kinds'])}  unattributed: {unattributed}")
        _emit_rows(per_account, ("id", "name", "contacts", "opted_out", "undeliverable",
                                 "complaints", "sent", "complaint_rate", "rate_basis"), False)

    _run(go)


# --- inbox ---------------------------------------------------------------------------------

_T = InboundMessage.__table__
_INBOX_COLUMNS = ("id", "message_id", "state", "kind", "reason", "received_at", "mail_from",
                  "rcpt_tos", "size", "processed_at", "duplicate_of", "error")


@inbox_app.command("list")
def inbox_list(
    state: Annotated[MessageState | None, typer.Option("--state")] = None,
    kind: Annotated[str | None, typer.Option("--kind")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 100,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Inbound messages, newest first (bodies are never shown here)."""
    def go():
        engine = _engine(_load(config))
        query = sa.select(*(_T.c[c] for c in _INBOX_COLUMNS)).order_by(_T.c.id.desc())
        if state is not None:
            query = query.where(_T.c.state == state.value)
        if kind is not None:
            query = query.where(_T.c.kind == kind)
        with db.reader(engine).connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query.limit(limit))]
        for row in rows:
            row["rcpt_tos"] = json.loads(row["rcpt_tos"])
        _emit_rows(rows, ("id", "message_id", "state", "kind", "reason", "received_at"), as_json)

    _run(go)


@inbox_app.command("retry")
def inbox_retry(
    message_ids: Annotated[list[int] | None, typer.Argument(metavar="ID...")] = None,
    all_failed: Annotated[bool, typer.Option("--failed", help="Every failed message.")] = False,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Put failed messages back to ``received``; a running server processes them again."""
    def go():
        if not message_ids and not all_failed:
            raise Failure("name message ids or pass --failed", EXIT_USAGE)
        engine = _engine(_load(config))
        query = sa.update(_T).where(_T.c.state == MessageState.FAILED.value)
        if message_ids:
            query = query.where(_T.c.id.in_(message_ids))
        with engine.begin() as conn:
            count = conn.execute(query.values(state=MessageState.RECEIVED.value,
                                              processed_at=None)).rowcount
        _emit({"requeued": count}, as_json)

    _run(go)


# --- parse ---------------------------------------------------------------------------------

@app.command("parse")
def parse_files(files: Annotated[list[Path], typer.Argument(metavar="FILE...")],
                config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Classify raw messages without touching the database, one line per file. A directory
    (a maildir, a folder of .eml files) stands for every file under it.

    Fields: file, kind, feedback_type, recipients, hard_bounce, intent, token (as found;
    ``token_valid`` too when a config gives the secret), format, why, message_id. A file
    that cannot be parsed still gets its line (kind ``unknown`` and ``error``)."""
    from feedback_mta.cli import parse as bulk

    def go():
        try:
            status = bulk.run(files, config, as_json)
        except config_mod.ConfigError as exc:
            raise Failure(str(exc), EXIT_CONFIG) from None
        if status:
            raise typer.Exit(status)

    _run(go)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

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
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from feedback_mta import config as config_mod
from feedback_mta import db, logs, output, tokens
from feedback_mta.actions import (
    CLI,
    ActionError,
    Actions,
    Actor,
    notification_message_id,
    unit_of_work,
)
from feedback_mta.addresses import AddressBook, Box
from feedback_mta.models import (
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
for _name, _sub in (("db", db_app), ("account", account_app), ("user", user_app),
                    ("lead", lead_app), ("contact", contact_app), ("inbox", inbox_app)):
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
    logs.configure(cfg.logging.level, cfg.logging.format, stream=log_stream or sys.stderr)
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
def serve(config: ConfigOpt = None) -> None:
    """Run the SMTP (or LMTP) server and the scheduler in the foreground."""
    from feedback_mta import serve as serve_mod

    def go():
        cfg = _load(config, log_stream=sys.stdout)
        try:
            asyncio.run(serve_mod.run(cfg))
        except db.SchemaError as exc:
            raise Failure(str(exc), EXIT_DATABASE) from None
        except OSError as exc:
            raise Failure(f"cannot listen on {cfg.smtp.host}:{cfg.smtp.port}: {exc.strerror}",
                          EXIT_FAILED) from None
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
    """Validate the config and reach the database."""
    def go():
        cfg = _load(config)
        engine = db.create_engine(cfg.database)
        try:
            revision = db.current_revision(engine)
        except sa.exc.SQLAlchemyError as exc:
            raise Failure(f"database: {_first_line(exc)}", EXIT_DATABASE) from None
        _emit({"config": str(cfg.path), "database": engine.url.render_as_string(),
               "schema": revision, "schema_head": db.head_revision(),
               "listen": f"{cfg.smtp.host}:{cfg.smtp.port}", "domain": cfg.smtp.domain,
               "protocol": "lmtp" if cfg.smtp.lmtp else "smtp"}, as_json)

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
        _emit(_lead_dict(lead, book), as_json)

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

@contact_app.command("show")
def contact_show(contact_id: Annotated[int, typer.Argument(metavar="ID")],
                 config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show one contact: status, opt-out reason, tags."""
    def go():
        with Session(db.reader(_engine(_load(config)))) as session:
            contact = Actions(session, CLI).contact(contact_id)
            tags = session.exec(select(Tag.name).where(Tag.contact_id == contact_id)
                                .order_by(Tag.name)).all()
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
            _emit({"id": contact.id, "account_id": contact.account_id, "email": contact.email,
                   "first_name": contact.first_name, "last_name": contact.last_name,
                   "status": contact.status, "opt_out_reason": contact.opt_out_reason,
                   "opted_out_at": contact.opted_out_at,
                   "mailable": contact.mailable,
                   "undeliverable_at": contact.undeliverable_at,
                   "undeliverable_reason": contact.undeliverable_reason,
                   "hard_bounces": counts.get("contact.hard_bounced", 0),
                   "soft_bounces": counts.get("contact.soft_bounced", 0),
                   "complaints": counts.get("contact.complained", 0),
                   "tags": list(tags),
                   "leads": list(leads),
                   "created_at": contact.created_at, "updated_at": contact.updated_at},
                  as_json)

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
    from feedback_mta import bulk

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

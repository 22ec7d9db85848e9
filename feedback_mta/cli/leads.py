"""``lead``: register leads, look at them, flag and restore them, export them to the CRM."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from feedback_mta.cli import reads
from feedback_mta.cli.common import (
    EXIT_USAGE,
    AccountOpt,
    ByOpt,
    ConfigOpt,
    Failure,
    IdArg,
    JsonOpt,
    MaybeAccountOpt,
    SinceOpt,
    command,
    emit,
    emit_rows,
    load,
    reading,
    write_engine,
    writing,
)
from feedback_mta.cli.reads import since_time
from feedback_mta.store.states import ConsentMethod, LeadStatus

if TYPE_CHECKING:
    from feedback_mta.actions import UnitOfWork
    from feedback_mta.actions.consent import ConsentIn
    from feedback_mta.store.models import Lead

lead_app = typer.Typer(help="Leads (contact activities).", no_args_is_help=True)
leads_app = typer.Typer(help="All leads: the spam model learned from people's flags.",
                        no_args_is_help=True)

EmailOpt = Annotated[str, typer.Option("--email", metavar="ADDR",
                                       help="The contact's address.", show_default=False)]
FirstOpt = Annotated[str, typer.Option("--first", metavar="NAME", help="First name.")]
LastOpt = Annotated[str, typer.Option("--last", metavar="NAME", help="Last name.")]
IpOpt = Annotated[str | None, typer.Option("--ip", metavar="IP",
                                           help="Source IP of the form.")]
LimitOpt = Annotated[int, typer.Option("--limit", metavar="N", min=1)]
ConsentMethodOpt = Annotated[ConsentMethod | None, typer.Option(
    "--consent-method", help="How the person came: a new contact of an [consent] "
    "confirm_methods one waits, not mailed, for their confirmation. Default: unknown "
    "(nothing is claimed).", show_default=False)]
SourceOpt = Annotated[str | None, typer.Option(
    "--source", metavar="TEXT", help="Where from: a form's URL, a list's name.",
    show_default=False)]


def consent_in(method: ConsentMethod | None, source: str | None) -> ConsentIn | None:
    """``--consent-method`` and ``--source`` as the actions take them (None: neither given),
    checked before anything runs: a bad one is a usage error."""
    from feedback_mta.actions import Invalid
    from feedback_mta.actions.consent import ConsentIn

    if method is None and source is None:
        return None
    try:
        return ConsentIn((method or ConsentMethod.UNKNOWN).value, source or "").checked()
    except Invalid as exc:
        raise Failure(f"--{exc}", EXIT_USAGE) from None


def checked_ip(ip: str | None) -> str | None:
    """``--ip`` as the actions check it, refused before anything runs: a usage error."""
    from feedback_mta.actions import Invalid
    from feedback_mta.actions.accounts import normalize_ip

    try:
        return normalize_ip(ip)
    except Invalid:
        raise Failure(f"--ip: not an IP address: {ip!r}", EXIT_USAGE) from None


@lead_app.command("add")
@command
def lead_add(account: AccountOpt, email: EmailOpt, first: FirstOpt = "", last: LastOpt = "",
             ip: IpOpt = None,
             comments: Annotated[str, typer.Option("--comments", metavar="TEXT",
                                                   help="Form comments.")] = "",
             consent_method: ConsentMethodOpt = None, source: SourceOpt = None,
             config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Add a lead (and its contact if new); prints the Reply-To and Message-ID to send with.
    A new contact keeps how it came (--consent-method, --source)."""
    from feedback_mta.actions.registration import read_comments
    from feedback_mta.addresses import AddressBook
    from feedback_mta.queries.leads import registered

    address = checked_ip(ip)
    consent = consent_in(consent_method, source)
    with writing(config) as (cfg, uow):
        # Before the first statement, which begins the transaction: scoring grows with
        # the comments, and no lock is held while it reads them.
        said = read_comments(cfg, comments)
        done = uow.registration.add_lead(cfg, account, email, first, last, address, said,
                                         consent)
    emit(registered(done.lead, done.contact_status, done.verdict,
                    AddressBook.from_config(cfg)), as_json)


@lead_app.command("show")
@command
def lead_show(lead_id: IdArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show one lead."""
    reads.lead_show(config, lead_id, as_json)  # __main__ runs it without typer, too


@lead_app.command("list")
@command
def lead_list(account: MaybeAccountOpt = None,
              status: Annotated[LeadStatus, typer.Option(
                  "--status", help="Spam leads are hidden unless asked for.")
              ] = LeadStatus.ACTIVE,
              via: Annotated[str | None, typer.Option(
                  "--via", metavar="WAY",
                  help="Only leads flagged this way: auto (by their score), email (a "
                       "dealer's reply), cli, api, web (the review page).")
              ] = None,
              contact: Annotated[int | None, typer.Option(
                  "--contact", metavar="ID", help="Only this contact's leads.")] = None,
              since: SinceOpt = None,
              limit: LimitOpt = 100, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List leads, newest first (`--status spam --via auto`: those flagged by their score,
    to review); the same query as GET /v1/leads."""
    from feedback_mta.addresses import AddressBook
    from feedback_mta.queries import leads

    created = since_time(since)
    with reading(config) as (cfg, session):
        rows, _ = leads.page(session, AddressBook.from_config(cfg), account=account,
                             status=status, via=via, contact=contact, since=created,
                             limit=limit)
    emit_rows(rows, ("id", "account_id", "contact_id", "status", "flagged_via", "spam_score",
                     "source_ip", "created_at"), as_json)


def _change(lead_id: int, by: str | None, change: Callable[[UnitOfWork, Lead], bool],
            config: Path | None, as_json: bool) -> None:
    from feedback_mta.addresses import AddressBook
    from feedback_mta.queries.leads import lead_dict

    with writing(config, by) as (cfg, uow):
        lead = uow.leads.get(lead_id)
        changed = change(uow, lead)
    emit({**lead_dict(lead, AddressBook.from_config(cfg)), "changed": changed}, as_json)


@lead_app.command("flag")
@command
def lead_flag(lead_id: IdArg, by: ByOpt = None, config: ConfigOpt = None,
              as_json: JsonOpt = False) -> None:
    """Mark a lead spam (as a dealer's SPAM reply would); "changed": false if it was."""
    _change(lead_id, by, lambda uow, lead: uow.leads.flag_spam(lead), config, as_json)


@lead_app.command("restore")
@command
def lead_restore(lead_id: IdArg, by: ByOpt = None, config: ConfigOpt = None,
                 as_json: JsonOpt = False) -> None:
    """Undo a spam flag; "changed": false if the lead was not spam."""
    _change(lead_id, by, lambda uow, lead: uow.leads.restore(lead), config, as_json)


@lead_app.command("report")
@command
def lead_report(account: AccountOpt,
                since: Annotated[str | None, typer.Option(
                    "--since", metavar="WHEN",
                    help="ISO date or time (UTC), or an age such as 7d; default: 30 days ago, "
                         "at most 366.")] = None,
                by: Annotated[str, typer.Option(
                    "--by", metavar="day|week|source",
                    help="Per UTC day, ISO week (named by its Monday) or source network.")
                ] = "day",
                config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Leads per day, week or source; leads flagged as spam (by anyone) are counted apart,
    in SPAM_LEADS, and never in LEADS nor in the totals."""
    from feedback_mta.queries import reports

    try:
        grouping = reports.By(by)
    except ValueError:
        raise Failure(f"--by: expected day, week or source, got {by!r}", EXIT_USAGE) from None
    with reading(config) as (_, session):
        try:
            report = reports.lead_report(session, account, by=grouping,
                                         since=since_time(since))
        except reports.BadWindow as exc:
            raise Failure(f"--{exc}", EXIT_USAGE) from None
    rows = reports.report_rows(report)
    if as_json:
        emit_rows(rows, (), as_json)
        return
    # For people: the first column named after what it groups by, and a totals line.
    table = [{grouping.value: r["key"], "leads": r["leads"], "spam_leads": r["spam_leads"]}
             for r in rows]
    table.append({grouping.value: "total", "leads": report.leads,
                  "spam_leads": report.spam_leads})
    emit_rows(table, (grouping.value, "leads", "spam_leads"), as_json)


@lead_app.command("export")
@command
def lead_export(account: AccountOpt, limit: LimitOpt = 1000,
                dry_run: Annotated[bool, typer.Option(
                    "--dry-run", help="Print what would go out; mark nothing.")] = False,
                config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Hand the account's new leads to the CRM: prints them (with the contact's address and
    name) and marks them exported. Spam leads are held back; a lead restored before export
    goes out with the next run."""
    from feedback_mta.addresses import AddressBook
    from feedback_mta.queries import leads

    if dry_run:
        with reading(config) as (cfg, session):
            book = AddressBook.from_config(cfg)
            rows = [leads.export_row(lead, contact, book)
                    for lead, contact in leads.exportable(session, account, limit)]
    else:
        with writing(config) as (cfg, uow):
            book = AddressBook.from_config(cfg)
            pairs = leads.exportable(uow.session, account, limit)
            for lead, _ in pairs:
                uow.leads.mark_exported(lead)
            rows = [leads.export_row(lead, contact, book) for lead, contact in pairs]
    emit_rows(rows, ("id", "account_id", "contact_id", "email", "first_name", "last_name",
                     "source_ip", "exported_at"), as_json)


@leads_app.command("model")
@command
def leads_model(limit: LimitOpt = 20, config: ConfigOpt = None, as_json: JsonOpt = False
                ) -> None:
    """What the lead spam model learned: labels (people's flags and restores) per account,
    leads seen, the strongest features, and the calibration (per score band, the spam rate
    the scores expect against the one observed), and the threshold a new lead meets now,
    moved by the restores ([leads] false_flag_budget)."""
    from feedback_mta.actions.registration import flagging
    from feedback_mta.queries import leads

    with reading(config) as (cfg, session):
        emit(leads.model(session, limit, flagging(cfg)), as_json)


@leads_app.command("retrain")
@command
def leads_retrain(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Count the spam model again from every lead and label, as the scheduler does daily."""
    from feedback_mta.jobs import spam_model

    cfg = load(config)
    emit({"leads": spam_model.retrain(write_engine(cfg))}, as_json)


@leads_app.command("digest")
@command
def leads_digest(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Queue the spam digest now: to each account's contact admins, the leads flagged
    automatically since the last digest (a running server sends it through the relay)."""
    from feedback_mta.addresses import AddressBook
    from feedback_mta.jobs import spam_digest

    cfg = load(config)
    emit({"queued": len(spam_digest.send(write_engine(cfg), cfg,
                                         AddressBook.from_config(cfg)))}, as_json)

"""``contact``: look at contacts, add and import them, review, opt out and in, delete."""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    command,
    emit,
    emit_rows,
    load,
    reading,
    write_engine,
    writing,
)
from feedback_mta.cli.leads import (
    ConsentMethodOpt,
    EmailOpt,
    FirstOpt,
    IpOpt,
    LastOpt,
    LimitOpt,
    SourceOpt,
    checked_ip,
    consent_in,
)
from feedback_mta.quality.verdict import Engagement
from feedback_mta.store.states import ConsentMethod, ContactStatus

if TYPE_CHECKING:
    from feedback_mta.actions import UnitOfWork
    from feedback_mta.store.models import Contact

contact_app = typer.Typer(help="Contacts.", no_args_is_help=True)


class Truth(StrEnum):
    TRUE = "true"
    FALSE = "false"


@contact_app.command("show")
@command
def contact_show(contact_id: IdArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show one contact: status, opt-out reason, tags, review deadline, bounces."""
    reads.contact_show(config, contact_id, as_json)  # __main__ runs it without typer, too


@contact_app.command("consent")
@command
def contact_consent(contact_id: IdArg, config: ConfigOpt = None,
                    as_json: JsonOpt = False) -> None:
    """The proof of consent: how the contact came (method, source, time, address, browser),
    its confirmation with the evidence, and the events that made it."""
    from feedback_mta.queries import contacts

    with reading(config) as (_, session):
        proof = contacts.consent(session, contact_id)
    if as_json:
        emit(proof, True)
        return
    # For people: the record, then its events as a table.
    emit({k: v for k, v in proof.items() if k != "events"}, False)
    print()
    emit_rows(proof["events"], ("id", "type", "at", "actor", "via", "reason", "data"), False)


@contact_app.command("add")
@command
def contact_add(account: AccountOpt, email: EmailOpt, first: FirstOpt = "", last: LastOpt = "",
                ip: IpOpt = None, consent_method: ConsentMethodOpt = None,
                source: SourceOpt = None, config: ConfigOpt = None,
                as_json: JsonOpt = False) -> None:
    """Add a contact (checked as it arrives: known bad ones are opted out at once), with how
    it came (--consent-method, --source): one of [consent] confirm_methods is pending."""
    from feedback_mta.queries.contacts import contact_dict

    address = checked_ip(ip)
    consent = consent_in(consent_method, source)
    with writing(config) as (cfg, uow):
        contact, created = uow.registration.add_contact(cfg, account, email, first, last,
                                                        address, consent)
        result = {**contact_dict(uow.session, contact), "created": created}
    emit(result, as_json)


#: The key of a row that could not be read (a line that is not a JSON object).
UNREADABLE = "\0unreadable"


def import_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a CSV file (header: email,first,last,ip) or of JSON lines, numbered by line."""
    handle = sys.stdin if str(path) == "-" else path.open(encoding="utf-8-sig", newline="")
    with handle:
        first = handle.readline()
        if first.lstrip().startswith("{"):
            for n, line in enumerate([first, *handle], 1):
                if line.strip():
                    try:
                        item = json.loads(line)
                    except ValueError as exc:
                        yield n, {UNREADABLE: f"not a JSON object: {exc}"}
                        continue
                    yield n, item if isinstance(item, dict) else {UNREADABLE: "not a JSON object"}
            return
        header = [h.strip().lower() for h in next(csv.reader([first]))]
        for n, row in enumerate(csv.reader(handle), 2):
            if any(cell.strip() for cell in row):
                yield n, dict(zip(header, row, strict=False))


#: Rows per transaction: one commit (one fsync) per this many contacts.
IMPORT_BATCH = 500


@contact_app.command("import")
@command
def contact_import(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="CSV or JSON lines; - for stdin",
                                         show_default=False)],
    account: AccountOpt,
    consent_method: Annotated[ConsentMethod, typer.Option(
        "--consent-method", help="How these people came; an import is one, and by default "
        "([consent] confirm_methods) its new contacts wait for their confirmation.")
    ] = ConsentMethod.IMPORT,
    source: SourceOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Import contacts (CSV with a header email,first,last,ip, or JSON lines with those
    keys); each is checked as it arrives, and keeps how it came (--consent-method,
    --source). Bad rows are reported by line and skipped."""
    import itertools

    from feedback_mta.actions import CLI, unit_of_work

    consent = consent_in(consent_method, source)
    assert consent is not None
    cfg = load(config)
    engine = write_engine(cfg)
    counts: Counter[str] = Counter()
    errors: list[dict[str, Any]] = []
    rows = import_rows(file)
    with unit_of_work(engine, CLI) as uow:
        uow.accounts.get(account)  # an unknown account fails before any row
    show = sys.stderr.isatty() and not as_json
    with typer.progressbar(length=0, label="importing", file=sys.stderr, hidden=not show,
                           show_pos=True) as bar:
        while batch := list(itertools.islice(rows, IMPORT_BATCH)):
            unreadable = [(n, row) for n, row in batch if UNREADABLE in row]
            errors += [{"line": n, "error": row[UNREADABLE]} for n, row in unreadable]
            with unit_of_work(engine, CLI) as uow:
                done = uow.registration.import_contacts(
                    cfg, account, [(n, row) for n, row in batch if UNREADABLE not in row],
                    consent)
            counts.update(done.counts)
            errors += [{"line": n, "error": why} for n, why in done.errors]
            bar.update(len(batch))
    errors.sort(key=lambda e: e["line"])
    result = {"account_id": account, "created": counts["created"],
              "existing": counts["existing"], "ok": counts["ok"],
              "suspected": counts["suspected"], "invalid": counts["invalid"],
              "pending": counts["pending"], "errors": errors}
    if as_json:
        emit(result, True)
        return
    print(f"imported {counts['created']} new, {counts['existing']} existing: {counts['ok']} ok,"
          f" {counts['suspected']} suspected, {counts['invalid']} invalid, "
          f"{counts['pending']} awaiting confirmation; "
          f"{len(errors)} rows refused")
    for error in errors[:20]:
        print(f"  line {error['line']}: {error['error']}")
    if len(errors) > 20:
        print(f"  ... and {len(errors) - 20} more (--json lists them all)")


@contact_app.command("list")
@command
def contact_list(
    tag: Annotated[str | None, typer.Option("--tag", metavar="TAG")] = None,
    account: MaybeAccountOpt = None,
    status: Annotated[ContactStatus | None, typer.Option("--status")] = None,
    email: Annotated[str | None, typer.Option("--email", metavar="ADDR",
                                              help="This address, in every account.")] = None,
    mailable: Annotated[Truth | None, typer.Option(
        "--mailable", help="true: only those mail may be sent to; false: the others "
                           "(opted out, pending or bounced).")] = None,
    limit: LimitOpt = 100, config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """List contacts, e.g. those to review: --tag "SYSTEM - Suspected Invalid Contact"."""
    from feedback_mta.queries import contacts

    with reading(config) as (_, session):
        rows, _ = contacts.page(session, tag=tag, account=account,
                                status=status.value if status else None, email=email,
                                mailable=None if mailable is None else mailable is Truth.TRUE,
                                limit=limit)
    emit_rows(rows, ("id", "account_id", "email", "first_name", "last_name", "status",
                     "mailable", "review_deadline", "quality_reasons"), as_json)


def _change(contact_id: int, by: str | None, change: Callable[[UnitOfWork, Contact], object],
            config: Path | None, as_json: bool) -> None:
    from feedback_mta.queries.contacts import contact_dict

    with writing(config, by) as (_, uow):
        contact = uow.contacts.get(contact_id)
        changed = change(uow, contact)
        result = {**contact_dict(uow.session, contact), "changed": bool(changed)}
    emit(result, as_json)


@contact_app.command("verify")
@command
def contact_verify(contact_id: IdArg, by: ByOpt = None, config: ConfigOpt = None,
                   as_json: JsonOpt = False) -> None:
    """A real person: remove the SYSTEM tags and the deadline, undo the check's opt-out, and
    do not tag it again for the same reasons."""
    _change(contact_id, by, lambda uow, c: uow.quality.verify(c), config, as_json)


ReasonOpt = Annotated[str, typer.Option("--reason", metavar="TEXT")]
MaybeIdArg = Annotated[int | None, typer.Argument(
    metavar="[ID]", help="The contact (or --email with --account).", show_default=False)]
ByEmailOpt = Annotated[str | None, typer.Option(
    "--email", metavar="ADDR", help="The account's contact with this address, instead of ID.",
    show_default=False)]


def _target(contact_id: int | None, email: str | None, account: int | None) -> None:
    """ID, or --email with --account: one of them."""
    if (contact_id is None) == (email is None) or (email is not None and account is None):
        raise Failure("give ID, or --email ADDR with --account ID", EXIT_USAGE)


@contact_app.command("optout")
@command
def contact_optout(contact_id: MaybeIdArg = None, email: ByEmailOpt = None,
                   account: MaybeAccountOpt = None, by: ByOpt = None,
                   reason: ReasonOpt = "manual", config: ConfigOpt = None,
                   as_json: JsonOpt = False) -> None:
    """Opt a contact out now (reason "manual" unless given); by --email, the address is
    suppressed even if it is no contact yet (as POST /v1/suppressions)."""
    _target(contact_id, email, account)
    if contact_id is not None:
        _change(contact_id, by, lambda uow, c: uow.contacts.opt_out_as_asked(c, reason), config,
                as_json)
        return
    from feedback_mta.queries.contacts import contact_dict

    assert email is not None and account is not None
    with writing(config, by) as (_, uow):
        contact, changed = uow.contacts.suppress(account, email, reason)
        result = {**contact_dict(uow.session, contact), "changed": changed}
    emit(result, as_json)


@contact_app.command("optin")
@command
def contact_optin(reason: Annotated[str, typer.Option(
                      "--reason", metavar="TEXT", help="Why (kept in the audit trail).",
                      show_default=False)],
                  contact_id: MaybeIdArg = None, email: ByEmailOpt = None,
                  account: MaybeAccountOpt = None,
                  by: ByOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Opt a contact back in (the person asked, or an opt-out was a mistake); "changed":
    false if it was not opted out. Refused (exit 1, saying why) after a complaint, a
    bounce or a known-bad verdict, as DELETE /v1/suppressions refuses."""
    _target(contact_id, email, account)
    if contact_id is None:
        from feedback_mta.queries.contacts import by_email

        assert email is not None and account is not None
        with reading(config) as (_, session):
            contact_id = by_email(session, account, email).id
    assert contact_id is not None
    _change(contact_id, by, lambda uow, c: uow.contacts.lift(c, reason), config, as_json)


@contact_app.command("engage")
@command
def contact_engage(contact_id: IdArg,
                   kind: Annotated[Engagement, typer.Option("--kind", help="What the contact did.",
                                                            show_default=False)],
                   config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Record a purchase, double opt-in, open or click: the contact is never called bad, and
    a pending suspicion is cleared."""
    _change(contact_id, None, lambda uow, c: uow.quality.engage(c, kind), config, as_json)


@contact_app.command("delete")
@command
def contact_delete(contact_id: IdArg, by: ByOpt = None, config: ConfigOpt = None,
                   as_json: JsonOpt = False) -> None:
    """Delete a contact with its leads and tags (the audit events stay)."""
    with writing(config, by) as (_, uow):
        removed = uow.contacts.delete(uow.contacts.get(contact_id))
    emit({"id": contact_id, "deleted": True, **removed}, as_json)


@contact_app.command("headers")
@command
def contact_headers(contact_id: IdArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Headers to put on mail sent to this contact (VERP, List-Unsubscribe, token)."""
    from feedback_mta.addresses import AddressBook
    from feedback_mta.queries import contacts

    with reading(config) as (cfg, session):
        emit(contacts.headers(session, AddressBook.from_config(cfg), contact_id,
                             cfg.http.public_url), as_json)


@contact_app.command("deliverable")
@command
def contact_deliverable(contact_id: IdArg, config: ConfigOpt = None,
                        as_json: JsonOpt = False) -> None:
    """Make a contact mailable again after bounces (its mailbox works again)."""
    with writing(config) as (_, uow):
        contact = uow.contacts.get(contact_id)
        changed = uow.contacts.mark_deliverable(contact)
        result = {"id": contact_id, "mailable": contact.mailable,
                  "not_mailable_reason": contact.not_mailable_reason, "changed": changed}
    emit(result, as_json)



"""``inbox``, ``events`` and ``stats``: what arrived, what it did, and how it adds up."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from feedback_mta.cli import reads
from feedback_mta.cli.common import (
    EXIT_USAGE,
    ConfigOpt,
    Failure,
    JsonOpt,
    MaybeAccountOpt,
    SinceOpt,
    command,
    connection,
    emit,
    emit_rows,
    reading,
    writing,
)
from feedback_mta.cli.leads import LimitOpt
from feedback_mta.cli.reads import since_time
from feedback_mta.kinds import Kind
from feedback_mta.store.states import MessageState

inbox_app = typer.Typer(help="Inbound messages.", no_args_is_help=True)

MessageIdOpt = Annotated[str | None, typer.Option("--message-id", metavar="MID",
                                                  help="The Message-ID header.")]


@inbox_app.command("list")
@command
def inbox_list(
    state: Annotated[MessageState | None, typer.Option("--state")] = None,
    kind: Annotated[Kind | None, typer.Option("--kind")] = None,
    message_id: MessageIdOpt = None,
    sender: Annotated[str | None, typer.Option("--from", metavar="ADDR",
                                               help="Envelope sender contains this.")] = None,
    rcpt: Annotated[str | None, typer.Option("--rcpt", metavar="ADDR",
                                             help="A recipient contains this.")] = None,
    since: SinceOpt = None, limit: LimitOpt = 100,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Inbound messages, newest first (bodies are never shown here): how each came (SOURCE
    smtp, lmtp or http; PROVIDER, whose hook) and what became of it."""
    # __main__ runs it without typer, too.
    reads.inbox_list(config, state=state.value if state else None,
                     kind=kind.value if kind else None, message_id=message_id, sender=sender,
                     rcpt=rcpt, since=since, limit=limit, as_json=as_json)


@inbox_app.command("show")
@command
def inbox_show(
    message: Annotated[int | None, typer.Argument(metavar="ID", show_default=False)] = None,
    message_id: MessageIdOpt = None,
    raw: Annotated[bool, typer.Option("--raw", help="Write the stored bytes, nothing else.")
                   ] = False,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """One inbound message: envelope, headers, kind and outcome, the events it caused."""
    from feedback_mta.queries import inbox

    if (message is None) == (message_id is None):
        raise Failure("name a message: ID or --message-id MID", EXIT_USAGE)
    with connection(config) as conn:
        found = inbox.find(conn, id=message, message_id=message_id)
        if raw:
            sys.stdout.buffer.write(inbox.raw(conn, found))
            return
        detail = inbox.show(conn, found)
    if as_json:
        emit(detail, True)
        return
    headers, body, caused = detail.pop("headers"), detail.pop("body"), detail.pop("events")
    emit(detail, False)
    print(f"\n{_stored(headers, body, detail)}\n")
    emit_rows(caused, ("id", "created_at", "type", "subject_type", "subject_id", "actor",
                       "reason"), False)


def _stored(headers: str | None, body: str | None, detail: dict) -> str:
    """What ``inbox show`` prints of the stored bytes: a mail's header block, an HTTP
    request's body (an ESP's event, a one-click form: it has no headers), or why neither."""
    from feedback_mta.queries.inbox import BODY_SHOWN

    if headers:
        return headers
    size = detail["raw_size"]
    if body is not None:
        cut = (f"\n(the first {BODY_SHOWN} of {size} bytes; --raw writes them all)"
               if size > BODY_SHOWN else "")
        return f"(HTTP request body, {size} bytes)\n{body}{cut}"
    return "(raw bytes purged)" if detail.get("purged_at") else "(no bytes stored)"


def _requeue(ids: list[int] | None, every: bool, state: MessageState, config: ConfigOpt,
             as_json: bool) -> None:

    if not ids and not every:
        raise Failure(f"name message ids or pass --{state.value}", EXIT_USAGE)
    with writing(config) as (_, uow):
        done = uow.inbox.requeue(ids or [], state=state, every=every)
    emit({"requeued": len(done), "ids": done}, as_json)


IdsArg = Annotated[list[int] | None, typer.Argument(metavar="ID...", show_default=False)]


@inbox_app.command("retry")
@command
def inbox_retry(message_ids: IdsArg = None,
                all_failed: Annotated[bool, typer.Option("--failed",
                                                         help="Every failed message.")] = False,
                config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Put failed messages back to `received`; a running server processes them again."""
    _requeue(message_ids, all_failed, MessageState.FAILED, config, as_json)


@inbox_app.command("reprocess")
@command
def inbox_reprocess(message_ids: IdsArg = None,
                    all_ignored: Annotated[bool, typer.Option(
                        "--ignored", help="Every ignored message (not duplicates).")] = False,
                    config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Process ignored messages again (a reply refused before its sender was given the
    contact-admin role, say). Duplicates stay ignored."""
    _requeue(message_ids, all_ignored, MessageState.IGNORED, config, as_json)


@command
def events(
    lead: Annotated[int | None, typer.Option("--lead", metavar="ID")] = None,
    contact: Annotated[int | None, typer.Option("--contact", metavar="ID",
                                                help="The contact and its leads.")] = None,
    account: MaybeAccountOpt = None, since: SinceOpt = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", min=1)] = 1000,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """The audit trail: every change, who made it, why, from which inbound message (each
    event's `type` and `created_at` named as in the API's /v1/events)."""
    from feedback_mta.queries import events as queries

    after = since_time(since)
    with connection(config) as conn:
        rows = queries.trail(conn, lead=lead, contact=contact, account=account,
                             since=after, limit=limit)
    emit_rows(rows, ("id", "created_at", "type", "subject_type", "subject_id", "account_id",
                     "actor", "reason", "inbound_message_id"), as_json)


@command
def stats(account: MaybeAccountOpt = None,
          days: Annotated[int, typer.Option("--days", metavar="N", min=1,
                                            help="Window for rates and counts.")] = 30,
          config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Inbox counts, bounces by reason and, per account, complaints and the complaint rate
    over a window.

    The rate is complaints per message sent (`account sent`) when sends are known, else per
    contact; providers act on rates above about 0.1% (0.3% is Gmail's limit)."""
    from feedback_mta.queries.stats import stats as read_stats

    with reading(config) as (_, session):
        result = read_stats(session, account=account, days=days)
    if as_json:
        emit(result, True)
        return
    inbox = ", ".join(f"{k} {v}" for k, v in result["inbox"].items())
    kinds = ", ".join(f"{k} {v}" for k, v in result["kinds"].items()) or "none"
    reasons = ", ".join(f"{k} {v}" for k, v in result["bounce_reasons"].items()) or "none"
    print(f"inbox: {inbox}\nlast {days} days: {kinds}; unattributed reports: "
          f"{result['unattributed']}\nbounces by reason: {reasons}\n")
    rows = [{**row, "complaint_rate": f"{row['complaint_rate'] * 100:.3f}%"}
            for row in result["accounts"]]
    emit_rows(rows, ("id", "name", "contacts", "opted_out", "undeliverable", "complaints",
                     "sent", "complaint_rate", "rate_basis"), False)



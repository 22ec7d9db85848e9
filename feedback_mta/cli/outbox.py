"""``outbox list | retry | purge``: the mail we send (sign-in links, acknowledgements,
digests), where it stands, and its repair: failed mail back in the queue once the relay is
fixed, old mail that is done with dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from feedback_mta.cli.common import (
    EXIT_USAGE,
    ConfigOpt,
    Failure,
    JsonOpt,
    command,
    connection,
    emit,
    emit_rows,
    writing,
)
from feedback_mta.cli.leads import LimitOpt
from feedback_mta.store.states import OutboundState

outbox_app = typer.Typer(help="Outbound mail: list, retry, purge.", no_args_is_help=True)


@outbox_app.command("list")
@command
def outbox_list(
    state: Annotated[list[OutboundState] | None, typer.Option(
        "--state", help="Only mail in this state (repeat for more); default queued and "
                        "failed.")] = None,
    limit: LimitOpt = 100, config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Outbound mail, newest first: to whom, its subject, its state, the attempts, the next
    one (queued mail) and the last error."""
    from feedback_mta.queries import outbox

    states = [s.value for s in state] if state else list(outbox.PENDING)
    with connection(config) as conn:
        rows = outbox.listing(conn, states=states, limit=limit)
    emit_rows(rows, outbox.COLUMNS[:8] if not as_json else outbox.COLUMNS, as_json)


@outbox_app.command("retry")
@command
def outbox_retry(
    mail_ids: Annotated[list[int] | None, typer.Argument(metavar="ID...",
                                                         show_default=False)] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Every failed mail.")
                          ] = False,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Put failed mail back in the queue, due now; a running server sends it within
    `[outbound] retry_interval`."""
    if bool(mail_ids) == all_failed:
        raise Failure("name mail ids or pass --all-failed (not both)", EXIT_USAGE)
    with writing(config) as (_, uow):
        done = uow.outbox.retry(mail_ids or [], every=all_failed)
    emit({"retried": len(done), "ids": done}, as_json)


@outbox_app.command("purge")
@command
def outbox_purge(
    older_than: Annotated[str, typer.Option(
        "--older-than", metavar="AGE", help="Mail made longer ago than this (30d, 12h).",
        show_default=False)],
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Drop sent, failed and expired mail made longer ago than AGE (queued mail stays);
    say how many of each."""
    from feedback_mta.config import parse_duration

    try:
        age = parse_duration(older_than)
    except ValueError:
        raise Failure(f"--older-than: expected an age such as 30d or 12h, got "
                      f"{older_than!r}", EXIT_USAGE) from None
    before = datetime.now(UTC) - timedelta(seconds=age)
    with writing(config) as (_, uow):
        counts = uow.outbox.purge(before)
    emit({"purged": sum(counts.values()), **counts, "before": before}, as_json)

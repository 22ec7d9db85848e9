"""``key`` and ``webhook``: what the sending platform is given to reach us and to hear from
us (the API's keys, the webhook subscriptions)."""

from __future__ import annotations

from typing import Annotated

import typer

from feedback_mta.cli.common import (
    EXIT_USAGE,
    ConfigOpt,
    Failure,
    IdArg,
    JsonOpt,
    MaybeAccountOpt,
    command,
    emit,
    emit_rows,
    reading,
    writing,
)

key_app = typer.Typer(help="API keys (Authorization: Bearer KEY).", no_args_is_help=True)
webhook_app = typer.Typer(help="Webhook subscriptions: events POSTed, signed.",
                          no_args_is_help=True)

AllAccountsOpt = Annotated[bool, typer.Option(
    "--all-accounts", help="For every account (an operator's or a platform's own).")]


def _scope(account: int | None, all_accounts: bool) -> int | None:
    if (account is None) == (not all_accounts):
        raise Failure("give --account ID or --all-accounts (one of them)", EXIT_USAGE)
    return account


@key_app.command("add")
@command
def key_add(account: MaybeAccountOpt = None, all_accounts: AllAccountsOpt = False,
            name: Annotated[str, typer.Option("--name", metavar="NAME",
                                              help="What it is for.")] = "",
            config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Make an API key; it is printed once ({"id", "key"}) and only its hash is kept."""
    scope = _scope(account, all_accounts)
    with writing(config) as (_, uow):
        row, key = uow.platform.add_key(scope, name)
    emit({"id": row.id, "key": key, "account_id": row.account_id, "name": row.name}, as_json)


@key_app.command("list")
@command
def key_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The keys (never the keys themselves), revoked ones too."""
    from feedback_mta.queries import platform

    with reading(config) as (_, session):
        rows = platform.keys(session)
    emit_rows(rows, ("id", "account_id", "name", "created_at", "last_used_at", "revoked_at"),
              as_json)


@key_app.command("revoke")
@command
def key_revoke(key_id: IdArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Revoke a key: its requests get 401 from now on."""
    with writing(config) as (_, uow):
        changed = uow.platform.revoke_key(key_id)
    emit({"id": key_id, "revoked": True, "changed": changed}, as_json)


@webhook_app.command("add")
@command
def webhook_add(url: Annotated[str, typer.Argument(metavar="URL", show_default=False)],
                account: MaybeAccountOpt = None, all_accounts: AllAccountsOpt = False,
                event_types: Annotated[str, typer.Option(
                    "--events", metavar="TYPE,...",
                    help="Only these event types or patterns (lead.*); default: all.")] = "",
                config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Subscribe URL to the events from now on; prints {"id", "secret"} (whsec_...), the
    key to check each delivery's webhook-signature with."""
    scope = _scope(account, all_accounts)
    with writing(config) as (cfg, uow):
        hook = uow.platform.add_webhook(
            url, scope, event_types.split(","),
            allow_private_networks=cfg.webhooks.allow_private_networks)
    emit({"id": hook.id, "secret": hook.secret, "url": hook.url,
          "account_id": hook.account_id, "event_types": hook.event_types}, as_json)


@webhook_app.command("list")
@command
def webhook_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The subscriptions, with where each stands (cursor, failing attempts, last error)."""
    from feedback_mta.queries import platform

    with reading(config) as (_, session):
        rows = platform.webhooks(session)
    emit_rows(rows, ("id", "url", "account_id", "event_types", "cursor", "attempts",
                     "last_error"), as_json)


@webhook_app.command("remove")
@command
def webhook_remove(webhook_id: IdArg, config: ConfigOpt = None, as_json: JsonOpt = False
                   ) -> None:
    """Stop sending to a subscription (its deliveries stay listed)."""
    with writing(config) as (_, uow):
        uow.platform.remove_webhook(webhook_id)
    emit({"id": webhook_id, "removed": True}, as_json)


@webhook_app.command("deliveries")
@command
def webhook_deliveries(webhook_id: IdArg,
                       limit: Annotated[int, typer.Option("--limit", metavar="N", min=1)] = 100,
                       config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The latest delivery attempts of a subscription, newest first."""
    from feedback_mta.queries import platform

    with reading(config) as (_, session):
        rows = platform.deliveries(session, webhook_id, limit)
    emit_rows(rows, ("id", "event_id", "attempt", "at", "outcome", "status_code",
                     "duration_ms", "error"), as_json)


@webhook_app.command("test")
@command
def webhook_test(webhook_id: IdArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """POST a signed webhook.test message now and show the answer (exit 1 unless 2xx)."""
    from feedback_mta.queries import platform
    from feedback_mta.service.webhooks import client, send_test

    with reading(config) as (cfg, session):
        hook = platform.get_webhook(session, webhook_id)
        if hook.removed_at is not None:
            raise Failure(f"webhook {webhook_id} was removed", 1)
        with client(cfg.webhooks) as http:
            result = send_test(http, hook)
    emit(result, as_json)
    if not result["ok"]:
        raise typer.Exit(1)


@webhook_app.command("redeliver")
@command
def webhook_redeliver(webhook_id: IdArg,
                      after: Annotated[int, typer.Option(
                          "--after", metavar="EVENT_ID", min=0,
                          help="Send the events after this one again (the subscription's "
                               "own, as ever).", show_default=False)],
                      config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Move the subscription's cursor back: its events after EVENT_ID go out again, in order
    (a running server sends them). Refused while a sender is delivering to it: try again."""
    from feedback_mta.queries.platform import webhook_dict

    with writing(config) as (_, uow):
        changed = uow.platform.redeliver(webhook_id, after)
        result = {**webhook_dict(uow.platform.webhook(webhook_id)), "changed": changed}
    emit(result, as_json)

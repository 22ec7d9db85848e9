"""``account`` and ``user``: tenants, the people of each who may write to us, their roles."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from feedback_mta.cli import output
from feedback_mta.cli.common import (
    EXIT_USAGE,
    AccountOpt,
    ConfigOpt,
    Failure,
    IdArg,
    JsonOpt,
    command,
    emit,
    emit_rows,
    jsonable,
    load,
    reading,
    write_engine,
    writing,
)
from feedback_mta.store.states import Role

if TYPE_CHECKING:
    from feedback_mta.store.models import User

account_app = typer.Typer(help="Accounts (tenants).", no_args_is_help=True)
user_app = typer.Typer(help="Users who may write to us, and their roles.", no_args_is_help=True)
role_app = typer.Typer(help="A user's roles.", no_args_is_help=True)
user_app.add_typer(role_app, name="role")

EmailOpt = Annotated[str, typer.Option("--email", metavar="ADDR", help="The user's address.",
                                       show_default=False)]
RoleOpt = Annotated[list[Role] | None, typer.Option("--role", help="Role (repeatable).")]


@account_app.command("add")
@command
def account_add(name: Annotated[str, typer.Argument(metavar="NAME")], config: ConfigOpt = None,
                as_json: JsonOpt = False) -> None:
    """Add an account; prints its id."""
    with writing(config) as (_, uow):
        account = uow.accounts.add(name)
    emit({"id": account.id, "name": account.name}, as_json)


@account_app.command("list")
@command
def account_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every account with its numbers of users, contacts and leads."""
    from feedback_mta.queries import accounts

    with reading(config) as (_, session):
        rows = accounts.listing(session)
    emit_rows(rows, ("id", "name", "users", "contacts", "leads", "created_at"), as_json)


@account_app.command("show")
@command
def account_show(account_id: IdArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """One account: its users and their roles, and what the account guard advises
    (sending ok, warned or paused, with the figures over [guard] window)."""
    from feedback_mta.queries import accounts

    with reading(config) as (cfg, session):
        shown = accounts.show(session, account_id, cfg.guard.window)
    if as_json:
        emit(shown, True)
        return
    print("\n".join(readable(shown)))


def readable(obj: dict[str, Any], indent: str = "") -> list[str]:
    """An object as people read it: ``key  value`` lines; a nested object's keys indented
    under its own; a list of objects as indented blocks, each led by ``-`` (the guard's
    figures, the users), never a JSON blob."""
    obj = jsonable(obj)
    width = max((len(k) for k in obj), default=0)
    lines: list[str] = []
    for key, value in obj.items():
        if isinstance(value, dict) and value:
            lines += [f"{indent}{key}", *readable(value, indent + "  ")]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"{indent}{key}")
            for item in value:
                block = readable(item, indent + "    ")
                lines += [f"{indent}  - {block[0].lstrip()}", *block[1:]]
        elif isinstance(value, dict | list) and not value:  # nothing to show: no "{}"
            lines.append(f"{indent}{key}")
        else:
            lines.append(f"{indent}{key:<{width}}  {output.human(value)}".rstrip())
    return lines


@account_app.command("resume")
@command
def account_resume(account_id: IdArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Clear the guard's pause (or warning): sending ok, counted afresh from now."""
    from feedback_mta.queries import accounts

    with writing(config) as (_, uow):
        changed = uow.accounts.resume(account_id)
    with reading(config) as (cfg, session):
        emit({**accounts.sending(session, account_id, cfg.guard.window),
              "id": account_id, "changed": changed}, as_json)


@account_app.command("guard")
@command
def account_guard(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Judge every account's complaint and hard-bounce rates now, as the scheduler does
    every [guard] check_interval; prints how many changed advice."""
    from feedback_mta.jobs import guard

    cfg = load(config)
    emit({"changed": guard.check(write_engine(cfg), cfg.guard)}, as_json)


@account_app.command("sent")
@command
def account_sent(
    account_id: IdArg,
    count: Annotated[int, typer.Argument(metavar="COUNT", min=0, show_default=False)],
    day: Annotated[str | None, typer.Option("--day", metavar="DATE",
                                            help="ISO date (UTC); default today.")] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Add COUNT to the messages the account sent on a day: the complaint rate's base."""

    try:
        when = (datetime.fromisoformat(day).date() if day
                else datetime.now(UTC).date()).isoformat()
    except ValueError:
        raise Failure(f"--day: expected an ISO date such as 2026-11-21, got {day!r}",
                      EXIT_USAGE) from None
    with writing(config) as (_, uow):
        row = uow.accounts.add_sent(account_id, when, count)
    emit({"account_id": account_id, "day": row.day, "sent": row.count}, as_json)


def _user_dict(user: User) -> dict[str, object]:
    return {"id": user.id, "account_id": user.account_id, "email": user.email,
            "roles": sorted(user.role_set)}


@user_app.command("add")
@command
def user_add(account: AccountOpt, email: EmailOpt, role: RoleOpt = None,
             config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Add a user to an account (or grant an existing one more roles)."""
    with writing(config) as (_, uow):
        user = uow.accounts.add_user(account, email, [r.value for r in role or ()])
    emit(_user_dict(user), as_json)


@user_app.command("list")
@command
def user_list(account: AccountOpt, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The account's users and their roles."""
    from feedback_mta.queries import accounts

    with reading(config) as (_, session):
        rows = accounts.users(session, account)
    emit_rows(rows, ("id", "email", "roles", "created_at"), as_json)


@user_app.command("remove")
@command
def user_remove(account: AccountOpt, email: EmailOpt, config: ConfigOpt = None,
                as_json: JsonOpt = False) -> None:
    """Remove a user: replies from that address no longer act (the audit trail stays)."""
    with writing(config) as (_, uow):
        user = uow.accounts.existing_user(account, email)
        result = {**_user_dict(user), "removed": True}
        uow.accounts.remove_user(user)
    emit(result, as_json)


@role_app.command("remove")
@command
def role_remove(account: AccountOpt, email: EmailOpt,
                role: Annotated[list[Role], typer.Option("--role", help="Role (repeatable).",
                                                         show_default=False)],
                config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Take roles from a user ("changed": false if it held none of them)."""
    with writing(config) as (_, uow):
        user = uow.accounts.existing_user(account, email)
        changed = uow.accounts.revoke_roles(user, [r.value for r in role])
    emit({**_user_dict(user), "changed": changed}, as_json)

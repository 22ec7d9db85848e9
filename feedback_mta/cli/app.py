"""``feedback-mta``: the command admins and their scripts use.

One module per command group (``server``, ``accounts``, ``leads``, ``contacts``,
``quality``, ``inbox``, ``parse``, ``review``, ``outbox``); each holds only arguments,
calls to ``queries`` and ``actions``, and printing (``common``). A new command is a
function in its group's module; a new group is a module registered below.

Every command takes ``--config FILE`` (or ``$FEEDBACK_MTA_CONFIG``) and ``--json``. With
``--json`` stdout carries only JSON: one object, or one object per line for lists; logs go
to stderr, warnings and errors only unless ``-v``. Errors are one line on stderr. Exit
codes: 0 done, 1 the operation failed (not found, invalid input), 2 usage error, 3
configuration error, 4 database unreachable, missing or its schema not up to date.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feedback_mta.cli import (
    accounts,
    contacts,
    inbox,
    leads,
    outbox,
    platform,
    quality,
    review,
    server,
)
from feedback_mta.cli.base import engines
from feedback_mta.cli.common import (
    EXIT_CONFIG,
    VERBOSITY,
    ConfigOpt,
    Failure,
    JsonOpt,
    command,
)

app = typer.Typer(help="Turns email feedback into database changes.", no_args_is_help=True,
                  pretty_exceptions_enable=False, rich_markup_mode=None)


def _version(value: bool) -> None:
    if value:
        from importlib import metadata

        try:
            version = metadata.version("feedback-mta")
        except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
            version = "unknown"
        print(f"feedback-mta {version}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                         help="Log info lines too (-vv: debug).")] = 0,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Turns email feedback into database changes."""
    VERBOSITY.set(verbose)


app.command("serve")(server.serve)
app.add_typer(server.db_app, name="db")
app.command("check-config")(server.check_config)
app.add_typer(accounts.account_app, name="account")
app.add_typer(accounts.user_app, name="user")
app.add_typer(leads.lead_app, name="lead")
app.add_typer(leads.leads_app, name="leads")
app.add_typer(contacts.contact_app, name="contact")
app.command("classify")(quality.classify_contacts)
app.add_typer(quality.quality_app, name="quality")
app.add_typer(quality.network_app, name="network")
app.command("stats")(inbox.stats)
app.add_typer(inbox.inbox_app, name="inbox")
app.command("events")(inbox.events)
app.add_typer(platform.key_app, name="key")
app.add_typer(platform.webhook_app, name="webhook")
app.add_typer(review.review_app, name="review")
app.add_typer(outbox.outbox_app, name="outbox")


@app.command("parse")
@command
def parse_files(files: Annotated[list[Path], typer.Argument(metavar="FILE...",
                                                            show_default=False)],
                config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Classify raw messages without touching the database, one line per file. A directory
    (a maildir, a folder of .eml files) stands for every file under it.

    Fields: file, kind, feedback_type, recipients, hard_bounce, intent, token (as found;
    token_valid too when a config gives the secret), format, why, message_id. A file that
    cannot be parsed still gets its line (kind unknown and error)."""
    from feedback_mta import config as config_mod
    from feedback_mta.cli import parse

    try:
        status = parse.run(files, config, as_json)
    except config_mod.ConfigError as exc:
        raise Failure(str(exc), EXIT_CONFIG) from None
    if status:
        raise typer.Exit(status)


def run(argv: list[str]) -> int:
    """Run one command; its exit code. Every error, a usage error too, is one line on
    stderr. Nothing is left behind for the next command of the same process: the engines
    the command opened are disposed, its settings live in context variables."""
    import sys

    try:  # newer typer carries its own copy of click
        from typer._click import exceptions as click
    except ImportError:  # pragma: no cover - typer with click as a dependency
        from click import exceptions as click  # type: ignore[no-redef]

    try:
        with engines():
            code = app(args=argv, prog_name="feedback-mta", standalone_mode=False)
    except click.NoArgsIsHelpError as exc:  # a bare group: its help, as click does
        print(exc.ctx.get_help() if exc.ctx else exc.format_message(), file=sys.stderr)
        return 2
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        print(f"feedback-mta: error: {exc.format_message()}{hint}", file=sys.stderr)
        return 2
    except typer.Abort:
        print("feedback-mta: error: interrupted", file=sys.stderr)
        return 130
    except click.ClickException as exc:
        print(f"feedback-mta: error: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    return code if isinstance(code, int) else 0

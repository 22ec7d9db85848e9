"""``classify``, ``quality check`` and ``network``: the contact check, in bulk and offline,
and the suspect networks it uses."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

from feedback_mta import config as config_mod
from feedback_mta.cli.common import (
    ConfigOpt,
    Failure,
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

quality_app = typer.Typer(help="The contact quality check, offline.", no_args_is_help=True)
network_app = typer.Typer(help="Suspect networks (form submissions from them are suspected).",
                          no_args_is_help=True)
CidrArg = Annotated[str, typer.Argument(metavar="CIDR", show_default=False)]


@command
def classify_contacts(account: MaybeAccountOpt = None, config: ConfigOpt = None,
                      as_json: JsonOpt = False) -> None:
    """Check every existing contact as if it arrived now: known bad ones are opted out and
    tagged, suspected ones tagged with a review deadline. Prints a summary."""
    from sqlmodel import Session

    from feedback_mta.actions import CLI
    from feedback_mta.jobs.classify import classify_all
    from feedback_mta.queries import contacts

    cfg = load(config)
    engine = write_engine(cfg)
    with Session(engine) as session:
        total = contacts.count(session, account=account)
    with typer.progressbar(length=total, label="classifying", file=sys.stderr,
                           hidden=not sys.stderr.isatty()) as bar:
        summary = classify_all(engine, cfg, account=account, actor=CLI, progress=bar.update)
    if as_json:
        emit(summary, True)
        return
    print(f"checked {summary['checked']}: {summary['ok']} ok, {summary['suspected']} "
          f"suspected, {summary['invalid']} invalid ({summary['changed']} changed)")
    for reason, n in summary["reasons"].items():
        print(f"  {n:>8}  {reason}")


@quality_app.command("check")
@command
def quality_check(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Read JSON lines ({"first", "last", "email", "ip"}) on stdin; print a verdict and its
    reasons per line. Offline: no database (suspect networks from the config only, no
    cross-account counts)."""
    from feedback_mta.quality import verdict as quality

    pol = quality.Policy()
    if config is not None or os.environ.get(config_mod.ENV_CONFIG):
        pol = quality.Policy.from_config(load(config))
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            emit({"line": n, "error": f"not a JSON object: {exc}"}, as_json)
            continue
        ip = item.get("ip")
        sub = quality.Submission(str(item.get("first") or ""), str(item.get("last") or ""),
                                 str(item.get("email") or ""), (str(ip),) if ip else ())
        verdict = quality.assess(sub, pol)
        out = {"line": n, "verdict": verdict.level.value, "reasons": list(verdict.reasons)}
        if as_json:
            print(json.dumps(out, ensure_ascii=False), flush=True)
        else:
            print(f"{n:>6}  {verdict.level.value:<9}  {'; '.join(verdict.reasons)}", flush=True)


@network_app.command("add")
@command
def network_add(cidr: CidrArg,
                note: Annotated[str, typer.Option("--note", metavar="TEXT")] = "",
                config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Suspect form submissions from this network (checked as contacts arrive, and by
    classify)."""
    with writing(config) as (_, uow):
        row, created = uow.quality.add_network(cidr, note)
    emit({"cidr": row.cidr, "note": row.note, "created": created}, as_json)


@network_app.command("remove")
@command
def network_remove(cidr: CidrArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Stop suspecting a network (contacts already tagged keep their tag and deadline)."""
    with writing(config) as (_, uow):
        removed = uow.quality.remove_network(cidr)
    if not removed:
        raise Failure(f"no suspect network {cidr}")
    emit({"cidr": cidr, "removed": True}, as_json)


@network_app.command("list")
@command
def network_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Suspect networks: from the config and from `network add`."""
    from feedback_mta.queries import accounts

    with reading(config) as (cfg, session):
        rows = accounts.networks(session, cfg.quality.suspect_networks)
    emit_rows(rows, ("cidr", "source", "note", "created_at"), as_json)

"""What ``account show``, ``inbox show`` and ``events`` print: readable lines for people
(no JSON blobs), an HTTP message's stored body (not "purged"), and an event's ``type`` and
``created_at`` named as the API's ``/v1/events`` names them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from feedback_mta.actions import CLI, unit_of_work
from feedback_mta.addresses import AddressBook, Box
from feedback_mta.edge.intake import Arrival, Intake
from feedback_mta.jobs.retention import purge
from feedback_mta.queries import iso
from feedback_mta.queries.events import feed
from feedback_mta.reading.hooks import mailgun, one_click
from feedback_mta.reading.hooks.base import dedupe_key
from feedback_mta.service.process import process_one
from feedback_mta.store.models import InboundMessage
from tests.cli import run
from tests.test_cli import ok_json, ok_rows


def _account(config_file) -> int:
    account = ok_json(config_file, "account", "add", "Dealer One")["id"]
    for email, role in (("boss@dealer.test", "contact-admin"), ("clerk@dealer.test", None)):
        ok_json(config_file, "user", "add", "--account", str(account), "--email", email,
                *(("--role", role) if role else ()))
    return account


def test_account_show_prints_nested_objects_as_indented_lines(config_file):
    account = _account(config_file)
    shown = run(config_file, "account", "show", str(account))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert not [line for line in lines if "{" in line or "[" in line], shown.stdout
    assert "figures" in lines  # a heading of its own, its keys under it
    figures = lines[lines.index("figures") + 1:lines.index("user_list")]
    assert [line.split()[0] for line in figures] == [
        "since", "sent", "complaints", "hard_bounces", "complaint_rate", "bounce_rate",
        "complaints_by_consent"]
    assert all(line.startswith("  ") for line in figures)
    users = lines[lines.index("user_list") + 1:]
    assert [line.split()[:2] for line in users if line.lstrip().startswith("-")] == [
        ["-", "id"], ["-", "id"]]
    assert "    email       boss@dealer.test" in users
    assert "    roles       contact-admin" in users
    # --json is as it was: the objects themselves.
    as_json = ok_json(config_file, "account", "show", str(account))
    assert set(as_json["figures"]) >= {"sent", "complaint_rate"}
    assert [u["email"] for u in as_json["user_list"]] == ["boss@dealer.test",
                                                          "clerk@dealer.test"]


def _store(engine, arrivals: list[Arrival]) -> list[int]:
    intake = Intake(engine)
    intake.start()
    try:
        return [intake.submit(a).result(10) for a in arrivals]
    finally:
        intake.stop()


def test_inbox_show_gives_an_http_message_s_body_and_says_purged_only_when_it_is(
        config_file, cfg, engine):
    with unit_of_work(engine, CLI) as uow:
        contact = uow.contacts.add(uow.accounts.add("Dealer One").id, "ann@people.test")[0].id
    book = AddressBook.from_config(cfg)
    event = json.dumps({"event-data": {"event": "failed", "id": "ev-1"}}).encode()
    click, webhook = _store(engine, [
        Arrival(b"List-Unsubscribe=One-Click", "", (book.address(Box.UNSUBSCRIBE, contact),),
                protocol="http", provider=one_click.NAME,
                key=one_click.content_hash("x", datetime.now(UTC).date())),
        Arrival(event, "", (), protocol="http", provider=mailgun.NAME,
                key=dedupe_key(mailgun.NAME, "ev-1"))])
    for message, body in ((click, "List-Unsubscribe=One-Click"), (webhook, '"id": "ev-1"')):
        shown = run(config_file, "inbox", "show", str(message))
        assert shown.returncode == 0, shown.stderr
        assert "(raw bytes purged)" not in shown.stdout
        assert "(HTTP request body, " in shown.stdout and body in shown.stdout
        assert ok_json(config_file, "inbox", "show", str(message))["raw_size"] > 0

    process_one(engine, book, click)  # final, then purged a day after
    t = InboundMessage.__table__
    with engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c.id == click).values(
            processed_at=datetime.now(UTC) - timedelta(days=2)))
    assert purge(engine, 1) == 1
    purged = run(config_file, "inbox", "show", str(click)).stdout
    assert "(raw bytes purged)" in purged and "One-Click" not in purged


def test_events_name_type_and_created_at_as_the_api_does(config_file, engine):
    account = _account(config_file)
    trail = ok_rows(config_file, "events", "--account", str(account))
    with Session(engine) as session:
        api = feed(session, account=account)  # what GET /v1/events gives
    assert [(e["id"], e["type"], e["created_at"]) for e in trail] == [
        (e["id"], e["type"], iso(e["created_at"])) for e in api]
    assert not {"action", "at"} & set(trail[0])

    table = run(config_file, "events", "--account", str(account)).stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "CREATED_AT", "TYPE"]
    assert table[1].split()[2] == "account.created"

"""The reads answered without typer (``lead show``, ``contact show``, ``inbox list``) print
what typer's commands print, byte for byte, and how every command prints: yes/no, one time
format, SOURCE and PROVIDER, quiet into a closed pipe."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa

from feedback_mta.cli import output, reads
from feedback_mta.cli.common import EXIT_CONFIG, EXIT_DATABASE, EXIT_FAILED, EXIT_USAGE
from feedback_mta.store import tables
from tests.cli import run
from tests.conftest import ROOT, write_config
from tests.support import message, send
from tests.test_cli import ok_json


@pytest.fixture
def world(tmp_path, database_url, server_factory):
    """A database with something of each kind to read: an active and a spam lead, an
    opted-out contact, a suspected (tagged) one, a message by mail and one by HTTP."""
    path = write_config(tmp_path / "reads.toml", database_url,
                        http={"listen": "127.0.0.1:0", "public_url": "https://fb.example.com"})
    account = ok_json(path, "account", "add", "Dealer Ünö")["id"]
    lead = ok_json(path, "lead", "add", "--account", str(account), "--email", "ann@people.test",
                   "--first", "Ann", "--last", "Lee", "--comments", "call me, ☎ after 6")
    spam = ok_json(path, "lead", "add", "--account", str(account), "--email", "bo@people.test",
                   "--first", "Bo", "--last", "Li")
    assert ok_json(path, "lead", "flag", str(spam["id"]))["changed"] is True
    ok_json(path, "network", "add", "203.0.113.0/24")
    suspected = ok_json(path, "contact", "add", "--account", str(account), "--email",
                        "cy@people.test", "--first", "Cy", "--last", "Ho", "--ip", "203.0.113.9")
    server = server_factory(path)
    headers = ok_json(path, "contact", "headers", str(lead["contact_id"]))
    unsubscribe = headers["List-Unsubscribe"].split(", ")[1][len("<mailto:"):].split("?")[0]
    assert send(server.port, "ann@people.test", [unsubscribe],
                message(message_id="bye@people.test"))[0] == 250
    server.wait_for("message.processed", id=1)
    headers = ok_json(path, "contact", "headers", str(suspected["id"]))
    one_click = headers["List-Unsubscribe"].split(", ")[0][1:-1]
    port = server.wait_for("http.started")["port"]
    answer = httpx.post(one_click.replace("https://fb.example.com", f"http://127.0.0.1:{port}"),
                        content=b"List-Unsubscribe=One-Click", timeout=10,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200
    server.wait_for("message.processed", id=2)
    return path, lead, spam, suspected


def _same(config, *argv: str) -> str:
    """``argv`` run as ``feedback-mta`` runs it and through typer: the same exit code,
    stdout and stderr (the fast path must take it, too). Returns stdout."""
    assert reads.plan([*argv, "--config", str(config)]) is not None, argv
    fast, slow = run(config, *argv), run(config, *argv, typer=True)
    assert (fast.returncode, fast.stdout, fast.stderr) == \
        (slow.returncode, slow.stdout, slow.stderr), argv
    return fast.stdout


def test_each_fast_read_prints_what_its_typer_command_prints(world):
    path, lead, spam, suspected = world
    for read in (("lead", "show", str(lead["id"])), ("lead", "show", str(spam["id"])),
                 ("contact", "show", str(lead["contact_id"])),
                 ("contact", "show", str(suspected["id"])),
                 ("inbox", "list"), ("inbox", "list", "--state", "processed", "--limit", "1"),
                 ("inbox", "list", "--kind=unsubscribe", "--from", "ANN@"),
                 ("inbox", "list", "--message-id", "<bye@people.test>", "--since", "1d"),
                 ("inbox", "list", "--rcpt", "unsubscribe", "--since", "2020-01-01")):
        human, as_json = _same(path, *read), _same(path, *read, "--json")
        assert human and as_json
        assert all(json.loads(line) for line in as_json.splitlines())
    shown = json.loads(_same(path, "contact", "show", str(suspected["id"]), "--json"))
    assert shown["tags"] and shown["quality"] == "suspected"
    assert json.loads(_same(path, "lead", "show", str(lead["id"]), "--json"))["comments"] == \
        "call me, ☎ after 6"


def test_fast_reads_fail_as_typer_commands_fail(world, tmp_path):
    path, _, _, _ = world
    for read in (("lead", "show", "999"), ("contact", "show", "999")):
        for as_json in ((), ("--json",)):
            result = run(path, *read, *as_json)
            assert result.returncode == EXIT_FAILED and result.stdout == ""
            assert result.stderr == f"feedback-mta: error: no {read[0]} 999\n"
            _same(path, *read, *as_json)
    assert run(path, "inbox", "list", "--since", "soon").returncode == EXIT_USAGE
    _same(path, "inbox", "list", "--since", "soon")
    bad = write_config(tmp_path / "bad.toml", "sqlite:///x.db", smtp={"port": "twenty-five"})
    assert "[smtp] port" in run(bad, "lead", "show", "1").stderr
    assert run(bad, "lead", "show", "1").returncode == EXIT_CONFIG
    _same(bad, "lead", "show", "1")
    _same(tmp_path / "none.toml", "contact", "show", "1")
    missing = write_config(tmp_path / "missing.toml", f"sqlite:///{tmp_path / 'no.db'}")
    for read in (("lead", "show", "1"), ("contact", "show", "1"), ("inbox", "list")):
        result = run(missing, *read)
        assert result.returncode == EXIT_DATABASE and "db upgrade" in result.stderr
        _same(missing, *read)
    assert not (tmp_path / "no.db").exists()  # a read creates nothing


@pytest.mark.parametrize("argv", [
    ["lead", "show", "1", "--help"], ["lead", "show", "-h"], ["-v", "lead", "show", "1"],
    ["lead", "show"], ["lead", "show", "x"], ["lead", "show", "1", "2"], ["lead", "show", "+1"],
    ["lead", "show", "1", "--json=yes"], ["lead", "show", "1", "--config"],
    ["inbox", "list", "--state", "bogus"], ["inbox", "list", "--limit", "0"],
    ["inbox", "list", "--limit", "-1"], ["inbox", "list", "--kind", "Bounce"],
    ["inbox", "list", "7"], ["inbox", "show", "1"], ["lead", "list"], ["contact", "list"],
    ["lead show", "1"], ["lead"], [],
])
def test_what_is_not_plainly_a_read_goes_to_typer(argv):
    """--help, a usage error or another command: typer answers (as it always has)."""
    assert reads.plan(argv) is None


@pytest.mark.parametrize("argv", [
    ["lead", "show", "7"], ["lead", "show", "--json", "7", "-c", "x.toml"],
    ["contact", "show", "007", "--config=x.toml"], ["inbox", "list"],
    ["inbox", "list", "--state=failed", "--kind", "bounce", "--limit", "5", "--json"],
])
def test_a_reads_own_arguments_run_it_without_typer(argv):
    assert reads.plan(argv) is not None


def test_help_of_a_fast_read_is_typers(config_file):
    result = run(config_file, "lead", "show", "--help")
    assert result.returncode == 0 and "Usage: feedback-mta lead show" in result.stdout
    usage = run(config_file, "lead", "show", "x")
    assert usage.returncode == EXIT_USAGE and "lead show --help" in usage.stderr


def test_tables_say_yes_and_no(world):
    path, lead, _, suspected = world
    shown = run(path, "contact", "show", str(lead["contact_id"])).stdout.splitlines()
    assert [line.split()[1] for line in shown if line.split()[0] in ("mailable", "verified")] \
        == ["no", "no"]
    listed = run(path, "contact", "list").stdout
    assert "yes" in listed.split() and "no" in listed.split()
    assert "True" not in listed and "False" not in listed
    assert ok_json(path, "contact", "show", str(suspected["id"]))["verified"] is False


def test_inbox_list_says_how_each_message_came(world):
    path, _, _, _ = world
    table = run(path, "inbox", "list").stdout.splitlines()
    assert table[0].split() == ["ID", "MESSAGE_ID", "STATE", "KIND", "SOURCE", "PROVIDER",
                                "REASON", "RECEIVED_AT"]
    rows = [json.loads(line) for line in run(path, "inbox", "list", "--json").stdout.splitlines()]
    assert [(r["source"], r["provider"]) for r in rows] == [("http", "one-click"), ("smtp", None)]
    # An HTTP arrival has no Message-ID: its row goes on with the state.
    assert table[1].split()[:5] == ["2", "processed", "unsubscribe", "http", "one-click"]
    assert table[2].split()[:6] == ["1", "bye@people.test", "processed", "unsubscribe", "smtp",
                                    "opted"]  # no provider: the reason "opted out" follows


def test_every_time_prints_as_the_api_gives_it(capsys):
    """UTC ISO 8601 with Z (``queries.iso``), in a table and in JSON, however deep: SQLite
    gives times back without a zone, and ``str`` of one has neither T nor Z."""
    naive = datetime(2026, 12, 4, 9, 30, 1, 250000)
    aware = naive.replace(tzinfo=UTC)
    obj = {"at": naive, "figures": {"since": aware}, "users": [{"created_at": naive}],
           "when": [aware]}
    output.emit(obj, True)
    assert json.loads(capsys.readouterr().out) == {
        "at": "2026-12-04T09:30:01.250000Z", "figures": {"since": "2026-12-04T09:30:01.250000Z"},
        "users": [{"created_at": "2026-12-04T09:30:01.250000Z"}],
        "when": ["2026-12-04T09:30:01.250000Z"]}
    output.emit(obj, False)
    human = capsys.readouterr().out
    assert human.count("2026-12-04T09:30:01.250000Z") == 4 and "09:30:01.25000" in human
    assert "2026-12-04 09:30" not in human and "+00:00" not in human
    output.emit_rows([{"at": naive, "ok": True, "gone": False}], ("at", "ok", "gone"), False)
    assert capsys.readouterr().out.splitlines()[1].split() == [
        "2026-12-04T09:30:01.250000Z", "yes", "no"]


@pytest.mark.process
@pytest.mark.parametrize("read", [("lead", "show", "1"), ("contact", "show", "1"),
                                  ("inbox", "list")])
def test_a_fast_read_loads_neither_typer_nor_the_models(config_file, read):
    """What makes a read take about the time of importing SQLAlchemy (``bench/cli.py``
    measures it): no typer (click), no SQLModel, no pydantic, no models."""
    assert run(config_file, "lead", "add", "--account", "1", "--email", "a@people.test"
               ).returncode == EXIT_FAILED  # no account 1 yet: the database is there
    ok_json(config_file, "account", "add", "Dealer One")
    ok_json(config_file, "lead", "add", "--account", "1", "--email", "ann@people.test")
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "feedback_mta", *read,
                           "--config", str(config_file)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split()[0] in ("id", "ID")
    loaded = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
              if line.startswith("import time:")}
    assert "feedback_mta.cli.reads" in loaded and "sqlalchemy" in loaded  # the check sees
    heavy = {m for m in loaded if m.split(".")[0] in ("typer", "click", "sqlmodel", "pydantic")
             or m in ("feedback_mta.store.models", "feedback_mta.cli.common")}
    assert not heavy


def _into_a_closed_pipe(config, *argv: str) -> subprocess.CompletedProcess:
    """``feedback-mta ARGV | head -1``: the reader takes one line and goes away while the
    command still has about 1 MB to write."""
    proc = subprocess.Popen([sys.executable, "-m", "feedback_mta", *argv, "--config",
                             str(config)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    code = proc.wait(timeout=60)
    return subprocess.CompletedProcess(argv, code, first.decode(), proc.stderr.read().decode())


@pytest.mark.process
def test_a_command_into_a_closed_pipe_ends_quietly(config_file, engine):
    ok_json(config_file, "account", "add", "Dealer One")
    ok_json(config_file, "lead", "add", "--account", "1", "--email", "ann@people.test")
    with engine.begin() as conn:  # more than a pipe holds (64 KB), after the first line
        conn.execute(sa.update(tables.lead).values(comments="spam " * 200_000))
    for argv in (("lead", "show", "1"),          # the fast path
                 ("-v", "lead", "show", "1")):   # typer's
        done = _into_a_closed_pipe(config_file, *argv)
        assert done.stdout.split() == ["id", "1"]
        assert (done.returncode, done.stderr) == (EXIT_FAILED, ""), argv

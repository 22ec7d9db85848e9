"""The ``feedback-mta`` command as scripts use it: JSON on stdout, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from feedback_mta.cli.common import EXIT_CONFIG, EXIT_DATABASE, EXIT_FAILED
from tests.cli import run, spawn
from tests.conftest import FIXTURES, ROOT, write_config
from tests.support import message, send


def ok_json(config, *args, **kw):
    result = run(config, *args, "--json", **kw)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout  # one object, nothing else on stdout
    return json.loads(lines[0])


def ok_rows(config, *args, **kw) -> list[dict]:
    """A listing command's JSON lines, one object per row."""
    result = run(config, *args, "--json", **kw)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_account_user_lead_contact_flow(config_file):
    account = ok_json(config_file, "account", "add", "Dealer One")
    assert isinstance(account["id"], int)
    user = ok_json(config_file, "user", "add", "--account", str(account["id"]),
                   "--email", "Boss@Dealer.TEST", "--role", "contact-admin")
    assert user["email"] == "boss@dealer.test" and user["roles"] == ["contact-admin"]
    lead = ok_json(config_file, "lead", "add", "--account", str(account["id"]), "--email",
                   "ann@people.test", "--first", "Ann", "--last", "Lee", "--ip", "192.0.2.7",
                   "--comments", "call me")
    assert re.fullmatch(rf"reply\+{lead['id']}-[a-z2-7]{{16}}@fb\.test", lead["reply_to"])
    assert lead["message_id"].endswith("@fb.test") and lead["status"] == "active"
    assert ok_json(config_file, "lead", "show", str(lead["id"]))["reply_to"] == lead["reply_to"]
    contact = ok_json(config_file, "contact", "show", str(lead["contact_id"]))
    assert (contact["status"], contact["opt_out_reason"], contact["tags"]) == ("active", None, [])
    headers = ok_json(config_file, "contact", "headers", str(lead["contact_id"]))
    assert headers["Return-Path"].startswith("<bounce+")
    assert headers["List-Unsubscribe"].startswith("<mailto:unsubscribe+")
    assert re.fullmatch(rf"{lead['contact_id']}-[a-z2-7]{{16}}", headers["X-Feedback-Token"])
    listed = run(config_file, "lead", "list", "--json")
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [lead["id"]]
    table = run(config_file, "lead", "list")
    assert table.stdout.splitlines()[0].split()[:2] == ["ID", "ACCOUNT_ID"]


@pytest.mark.parametrize(("args", "code", "stderr"), [
    (("lead", "show", "999"), EXIT_FAILED, "no lead 999"),
    (("contact", "show", "999"), EXIT_FAILED, "no contact 999"),
    (("user", "add", "--account", "999", "--email", "a@b.test"), EXIT_FAILED, "no account 999"),
    (("lead", "add", "--account", "1", "--email", "not-an-address"), EXIT_FAILED,
     "no account 1"),
])
def test_operation_errors(config_file, args, code, stderr):
    assert run(config_file, "db", "upgrade").returncode == 0
    result = run(config_file, *args, "--json")
    assert result.returncode == code
    assert result.stdout == ""
    assert stderr in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("feedback-mta:")] \
        == [f"feedback-mta: error: {stderr}"]


def test_config_errors_exit_3_and_name_the_key(tmp_path, sqlite_url):
    bad = write_config(tmp_path / "bad.toml", sqlite_url, smtp={"port": "twenty-five"})
    result = run(bad, "account", "add", "x")
    assert result.returncode == EXIT_CONFIG
    assert result.stderr.strip() == (f"feedback-mta: error: {bad}: [smtp] port: expected a "
                                     "whole number from 0 to 65535, got 'twenty-five'")
    missing = run(None, "account", "add", "x", env={"FEEDBACK_MTA_CONFIG": "/nonexistent.toml"})
    assert missing.returncode == EXIT_CONFIG and "no such file" in missing.stderr


def test_unreachable_database_exits_4(tmp_path, sqlite_url):
    cfg = write_config(tmp_path / "c.toml", sqlite_url, database={"connect_timeout": "1s"})
    result = run(cfg, "account", "add", "x",
                 env={"FEEDBACK_MTA_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/x"})
    assert result.returncode == EXIT_DATABASE
    assert result.stderr.startswith("feedback-mta: error: database: ")


def test_db_upgrade(tmp_path, sqlite_url):
    cfg = write_config(tmp_path / "c.toml", sqlite_url, database={"auto_upgrade": False})
    first = ok_json(cfg, "db", "upgrade")
    assert first["before"] is None and first["changed"] is True
    assert ok_json(cfg, "db", "upgrade")["changed"] is False


def test_without_upgrade_commands_refuse_an_empty_database(tmp_path, sqlite_url):
    cfg = write_config(tmp_path / "c.toml", sqlite_url, database={"auto_upgrade": False})
    result = run(cfg, "account", "add", "x")
    assert result.returncode == EXIT_DATABASE
    assert "run `feedback-mta db upgrade`" in result.stderr


def test_inbox_list_and_retry(server, config_file, engine):
    assert send(server.port, "a@isp.test", ["fbl@fb.test"], message(message_id="i1@isp.test"))[0] \
        == 250
    server.wait_for("message.processed")
    result = run(config_file, "inbox", "list", "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 1
    assert {"id", "message_id", "state", "kind", "received_at"} <= rows[0].keys()
    assert (rows[0]["message_id"], rows[0]["state"], rows[0]["kind"], rows[0]["reason"]) == \
        ("i1@isp.test", "ignored", "unknown", "no action")
    assert rows[0]["received_at"].endswith("Z")
    assert ok_json(config_file, "inbox", "retry", "--failed")["requeued"] == 0


def test_parse_prints_one_object_per_file():
    files = [FIXTURES / "messages" / n for n in ("arf-rfc5965-abuse.eml", "dsn-postfix-hard.eml",
                                                 "plain-unknown.eml")]
    result = run(None, "parse", *map(str, files), "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["kind"], r["feedback_type"]) for r in rows] == [
        ("complaint", "abuse"), ("bounce", None), ("unknown", None)]
    assert rows[0]["recipients"] == ["user@example.com"]
    assert [r["hard_bounce"] for r in rows] == [None, True, None]
    assert {"file", "kind", "feedback_type", "recipients", "hard_bounce", "intent", "token"
            } <= rows[0].keys()
    missing = run(None, "parse", "/nonexistent.eml", "--json")
    assert missing.returncode == EXIT_FAILED and missing.stdout == ""


def test_parse_reads_every_form_of_its_command_line():
    """Plain command lines are read without argparse; the rest goes to argparse, which
    reads abbreviations and refuses what it does not know, with the usage and exit 2."""
    dsn = str(FIXTURES / "messages" / "dsn-postfix-hard.eml")
    for argv in (["--json", dsn], [dsn, "--json"], ["--json", "--", dsn], ["--js", dsn]):
        result = run(None, "parse", *argv)
        assert result.returncode == 0, (argv, result.stderr)
        assert json.loads(result.stdout)["kind"] == "bounce", argv
    for argv in (["-c", "/nonexistent.toml", dsn], ["--config=/nonexistent.toml", dsn]):
        result = run(None, "parse", *argv)
        assert result.returncode == EXIT_CONFIG and "/nonexistent.toml" in result.stderr, argv
    for argv in (["--bogus", dsn], ["--json"], ["-c"]):
        result = run(None, "parse", *argv)
        assert result.returncode == 2 and "usage: feedback-mta parse" in result.stderr, argv


@pytest.mark.process
def test_parse_into_a_reader_that_stops_ends_quietly():
    """``parse DIR | head -1``: no traceback when the reader goes away; exit 1."""
    proc = subprocess.Popen([sys.executable, "-m", "feedback_mta", "parse", "--json",
                             str(FIXTURES / "sisimai" / "eml")], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=60) == EXIT_FAILED
    assert json.loads(first)["file"].endswith(".eml")
    assert b"Traceback" not in proc.stderr.read()


def test_parse_gives_every_file_a_line_even_binary_junk(tmp_path):
    junk = tmp_path / "junk.eml"
    junk.write_bytes(bytes(range(256)) * 40)
    auto = FIXTURES / "reports" / "ours-dsn-delivered.eml"
    result = run(None, "parse", str(junk), str(auto), "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in rows] == [str(junk), str(auto)]
    assert rows[0]["kind"] == "unknown" and rows[1]["kind"] == "auto_reply"


@pytest.mark.process
def test_parse_of_a_mailbox_shares_it_among_processes_and_keeps_the_order(tmp_path):
    """A directory of at least PARALLEL_FROM files is parsed by one process per core; the
    lines must be the files' own, in the files' order, and an unreadable file still
    reported with exit 1."""
    from feedback_mta.cli.parse import PARALLEL_FROM, classify_file

    corpus = sorted((FIXTURES / "sisimai" / "eml").glob("*.eml"))[:PARALLEL_FROM + 30]
    box = tmp_path / "cur"
    box.mkdir()
    for i, file in enumerate(corpus):
        (box / f"{i:04d}.eml").write_bytes(file.read_bytes())
    unreadable = box / "0100.eml"
    unreadable.chmod(0)
    result = spawn(None, "parse", str(box), "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    readable = sorted(p for p in box.iterdir() if p != unreadable)
    if os.geteuid() == 0:  # root reads any file: every file has its line
        readable = sorted(box.iterdir())
    else:
        assert result.returncode == EXIT_FAILED and "0100.eml" in result.stderr
    assert [r["file"] for r in rows] == [str(p) for p in readable]
    unreadable.chmod(0o644)
    assert rows == [classify_file(p, None) for p in readable]


def _lines(result) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_lead_flag_restore_list_and_export_hold(config_file, engine):
    account = ok_json(config_file, "account", "add", "Dealer One")["id"]
    ids = [ok_json(config_file, "lead", "add", "--account", str(account), "--email",
                   f"p{i}@people.test")["id"] for i in range(3)]
    spam, kept, _ = ids

    flagged = ok_json(config_file, "lead", "flag", str(spam), "--by", "alice")
    assert (flagged["status"], flagged["flagged_via"], flagged["flagged_by"], flagged["changed"]
            ) == ("spam", "cli", "cli:alice", True)
    assert ok_json(config_file, "lead", "flag", str(spam))["changed"] is False  # idempotent

    listed = run(config_file, "lead", "list", "--account", str(account), "--json")
    assert spam not in [row["id"] for row in _lines(listed)]
    only_spam = run(config_file, "lead", "list", "--account", str(account), "--status", "spam",
                    "--json")
    assert [row["id"] for row in _lines(only_spam)] == [spam]
    contact = ok_json(config_file, "contact", "show", str(flagged["contact_id"]))
    assert contact["leads"] == [] and contact["status"] == "active"

    # Export: the spam lead is held back; once restored it goes out with the next run.
    first = _lines(run(config_file, "lead", "export", "--account", str(account), "--json"))
    assert spam not in [row["id"] for row in first] and kept in [row["id"] for row in first]
    assert all(row["exported_at"] for row in first)
    assert _lines(run(config_file, "lead", "export", "--account", str(account), "--json")) == []
    restored = ok_json(config_file, "lead", "restore", str(spam))
    assert (restored["status"], restored["flagged_at"], restored["changed"]) == (
        "active", None, True)
    assert ok_json(config_file, "lead", "restore", str(spam))["changed"] is False
    again = _lines(run(config_file, "lead", "export", "--account", str(account), "--json"))
    assert [row["id"] for row in again] == [spam]

    import sqlalchemy as sa

    from feedback_mta.store.models import Event
    t = Event.__table__
    with engine.connect() as conn:
        trail = conn.execute(sa.select(t.c.action, t.c.actor).where(t.c.subject_id == spam,
                             t.c.subject_type == "lead").order_by(t.c.id)).all()
    assert [tuple(r) for r in trail] == [
        ("lead.created", "cli"), ("lead.flagged_spam", "cli:alice"), ("lead.restored", "cli"),
        ("lead.exported", "cli")]


def test_lead_flag_unknown_lead_fails_with_a_clear_line(config_file, engine):
    result = run(config_file, "lead", "flag", "999")
    assert result.returncode == EXIT_FAILED
    assert result.stderr.strip() == "feedback-mta: error: no lead 999"


def test_parse_reads_the_intent_of_replies():
    files = [FIXTURES / "replies" / name for name in
             ("gmail-spam.eml", "gmail-not-spam.eml", "chatty-mentions-spam.eml")]
    result = run(None, "parse", *map(str, files), "--json")
    rows = _lines(result)
    assert [(r["kind"], r["intent"]) for r in rows] == [
        ("reply", "flag"), ("reply", "restore"), ("reply", None)]


def test_parse_imports_neither_the_handlers_nor_the_actions():
    """The offline parse reads a reply's intent with ``reading.commands`` alone: even for a
    reply, nothing of ``feedback_mta.handlers`` or ``feedback_mta.actions`` is imported."""
    reply = FIXTURES / "replies" / "gmail-spam.eml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_MTA_")}
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "feedback_mta", "parse",
                             "--json", str(reply)], capture_output=True, text=True, cwd=ROOT,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["intent"] == "flag"
    loaded = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
              if line.startswith("import time:")}
    assert "feedback_mta.reading.commands" in loaded  # the check itself sees imports
    assert not {m for m in loaded
                if m.startswith(("feedback_mta.handlers", "feedback_mta.actions"))}

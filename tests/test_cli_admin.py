"""The command line as an admin meets it: reads that create nothing, one-line errors for
everything (usage too), unknown targets named, quiet output, readable tables, and the
commands that Postfix's and Mailman's admins reach for (inbox show, events, reprocess, ...).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from feedback_mta.cli.common import EXIT_CONFIG, EXIT_DATABASE, EXIT_FAILED, EXIT_USAGE
from tests.cli import run
from tests.conftest import DOMAIN, ROOT, write_config
from tests.support import message, send, wait_until
from tests.test_cli import ok_json


def rows(config, *args):
    result = run(config, *args, "--json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("feedback-mta: error: "), lines[0]
    return lines[0]


@pytest.fixture
def dealer(config_file):
    """An account with a contact admin, one lead and its contact."""
    account = ok_json(config_file, "account", "add", "Dealer One")["id"]
    ok_json(config_file, "user", "add", "--account", str(account), "--email",
            "boss@dealer.test", "--role", "contact-admin")
    lead = ok_json(config_file, "lead", "add", "--account", str(account), "--email",
                   "ann@people.test", "--first", "Ann", "--last", "Lee")
    return account, lead


# --- reads change nothing ----------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("lead", "show", "1"), ("lead", "list"), ("contact", "show", "1"), ("contact", "list"),
    ("contact", "headers", "1"), ("inbox", "list"), ("inbox", "show", "1"), ("events",),
    ("stats",), ("account", "list"), ("network", "list"), ("lead", "export", "--account", "1",
                                                            "--dry-run"),
])
def test_reads_never_create_a_database(tmp_path, args):
    config = write_config(tmp_path / "c.toml", "sqlite:///data/fresh.sqlite3")
    result = run(config, *args, cwd=tmp_path)
    assert result.returncode == EXIT_DATABASE
    assert "run `feedback-mta db upgrade`" in one_error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]  # no data/, no lock


def test_check_config_changes_nothing_and_checks_the_listen_host(tmp_path):
    config = write_config(tmp_path / "c.toml", "sqlite:///data/fresh.sqlite3")
    result = run(config, "check-config", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["schema"] is None
    assert any("no database yet" in w for w in out["warnings"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]
    for host, why in (("no-such-host.invalid", "does not resolve"),
                      ("192.0.2.1", "cannot be bound here")):
        bad = write_config(tmp_path / "bad.toml", "sqlite:///x.sqlite3", smtp={"host": host})
        result = run(bad, "check-config")
        assert result.returncode == EXIT_CONFIG
        assert why in one_error_line(result) and host in result.stderr


def test_a_read_of_an_existing_database_writes_nothing(config_file, dealer, sqlite_url):
    path = sqlite_url.removeprefix("sqlite:///")
    before = {p.name for p in (config_file.parent).iterdir()}
    ok_json(config_file, "lead", "show", str(dealer[1]["id"]))
    run(config_file, "events")
    after = {p.name for p in (config_file.parent).iterdir()}
    assert after == before and path.endswith(".sqlite3")


# --- errors, help, version -----------------------------------------------------------------------

@pytest.mark.parametrize(("args", "words"), [
    (("lead", "show"), "Missing argument 'ID'"),
    (("lead", "show", "x"), "Invalid value for 'ID'"),
    (("nonsense",), "No such command 'nonsense'"),
    (("contact", "list", "--mailable", "maybe"), "'maybe' is not one of"),
    (("lead", "add", "--account", "1", "--email", "a@b.test", "--ip", "1.2.3"),
     "--ip: not an IP address: '1.2.3'"),
    (("inbox", "retry"), "name message ids or pass --failed"),
    (("inbox", "show"), "name a message: ID or --message-id MID"),
    (("events", "--since", "last tuesday"), "--since: expected an ISO date"),
])
def test_usage_errors_are_one_line_and_exit_2(config_file, args, words):
    result = run(config_file, *args)
    assert result.returncode == EXIT_USAGE
    assert words in one_error_line(result)
    assert result.stdout == ""


@pytest.mark.parametrize(("args", "words"), [
    (("inbox", "retry", "9999"), "no inbound message 9999"),
    (("inbox", "reprocess", "9999"), "no inbound message 9999"),
    (("stats", "--account", "99"), "no account 99"),
    (("lead", "list", "--account", "42"), "no account 42"),
    (("contact", "list", "--account", "42"), "no account 42"),
    (("events", "--lead", "77"), "no lead 77"),
    (("account", "show", "5"), "no account 5"),
    (("user", "remove", "--account", "1", "--email", "nobody@dealer.test"),
     "no user nobody@dealer.test in account 1"),
    (("inbox", "show", "--message-id", "<nothing@x.test>"), "Message-ID <nothing@x.test>"),
    (("contact", "import", "/nonexistent/x.csv", "--account", "1"),
     "/nonexistent/x.csv: No such file or directory"),
])
def test_unknown_targets_are_errors_that_name_them(config_file, dealer, args, words):
    result = run(config_file, *args)
    assert result.returncode == EXIT_FAILED
    assert words in one_error_line(result)


def test_help_version_and_completion():
    version = run(None, "--version")
    assert re.fullmatch(r"feedback-mta \d+\.\d+\.\d+\S*\n", version.stdout)
    top = run(None, "--help").stdout
    assert "--install-completion" in top and "--version" in top
    for args in (("lead", "add"), ("inbox", "retry"), ("contact", "list"), ("inbox", "list"),
                 ("user", "role", "remove"), ("parse",), ("events",)):
        text = run(None, *args, "--help").stdout
        assert "<bool>" not in text and "``" not in text, (args, text)
        assert "[OPTIONS]" in text
    assert "ID..." in run(None, "inbox", "retry", "--help").stdout
    assert "FILE..." in run(None, "parse", "--help").stdout


# --- quiet, readable ------------------------------------------------------------------------------

def test_quiet_by_default_verbose_on_request(config_file):
    quiet = run(config_file, "account", "add", "Quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = run(config_file, "-v", "account", "add", "Loud")
    assert loud.returncode == 0
    assert any(json.loads(line)["event"] == "account.created"
               for line in loud.stderr.splitlines() if line.startswith("{"))


def test_human_output_has_no_python_reprs(config_file, dealer):
    contact_id = dealer[1]["contact_id"]
    ok_json(config_file, "network", "add", "198.51.100.0/24")
    lead = ok_json(config_file, "lead", "add", "--account", str(dealer[0]), "--email",
                   "x@people.test", "--first", "Asdfgh", "--last", "Qwerty", "--ip",
                   "198.51.100.9")
    shown = run(config_file, "contact", "show", str(lead["contact_id"])).stdout
    assert "['" not in shown and "SYSTEM - Invalid Contact" in shown
    # Its only lead was flagged (a known-bad contact's) and spam leads are left out.
    assert re.search(r"^leads *$", shown, re.M), shown
    shown = run(config_file, "contact", "show", str(contact_id)).stdout
    assert re.search(r"^leads +\d+$", shown, re.M), shown  # a list of one: its id, no brackets
    assert contact_id != lead["contact_id"]
    stats = run(config_file, "stats").stdout
    assert re.search(r"\b\d+\.\d{3}%", stats) and "{" not in stats
    check = run(config_file, "check-config").stdout
    assert "('" not in check and "127.0.0.1:0" in check


# --- contact import -------------------------------------------------------------------------------

def test_contact_import_reports_bad_rows_by_line_and_a_summary(config_file, dealer, tmp_path):
    rows_csv = ["email,first,last,ip", "a1@people.test,Ann,Lee,192.0.2.1",
                "not-an-address,Bo,Li,", "a3@people.test,Cy,Po,999.1.1.1",
                "a4@people.test,Xkqzvwpt,Jhgfdsa,"]
    rows_csv += [f"p{i}@people.test,Pat,Smith," for i in range(1200)]
    path = tmp_path / "contacts.csv"
    path.write_text("\n".join(rows_csv) + "\n")
    result = run(config_file, "contact", "import", str(path), "--account", str(dealer[0]))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no log lines, no progress bar when stderr is not a terminal
    first = result.stdout.splitlines()[0]
    assert first == ("imported 1202 new, 0 existing: 1201 ok, 0 suspected, 1 invalid, "
                     "1201 awaiting confirmation; 2 rows refused")
    assert "  line 3: not an email address: 'not-an-address'" in result.stdout
    assert "  line 4: not an IP address: '999.1.1.1'" in result.stdout
    again = ok_json(config_file, "contact", "import", str(path), "--account", str(dealer[0]))
    assert (again["created"], again["existing"]) == (0, 1202)
    assert [e["line"] for e in again["errors"]] == [3, 4]


# --- what an admin reaches for ------------------------------------------------------------

def test_accounts_users_and_roles(config_file, dealer):
    account, _ = dealer
    listed = rows(config_file, "account", "list")
    assert [(a["name"], a["users"], a["contacts"], a["leads"]) for a in listed] == [
        ("Dealer One", 1, 1, 1)]
    shown = ok_json(config_file, "account", "show", str(account))
    assert [u["email"] for u in shown["user_list"]] == ["boss@dealer.test"]
    assert rows(config_file, "user", "list", "--account", str(account))[0]["roles"] == [
        "contact-admin"]
    out = ok_json(config_file, "user", "role", "remove", "--account", str(account), "--email",
                  "boss@dealer.test", "--role", "contact-admin")
    assert (out["roles"], out["changed"]) == ([], True)
    out = ok_json(config_file, "user", "role", "remove", "--account", str(account), "--email",
                  "boss@dealer.test", "--role", "contact-admin")
    assert out["changed"] is False
    ok_json(config_file, "user", "remove", "--account", str(account), "--email",
            "boss@dealer.test")
    assert rows(config_file, "user", "list", "--account", str(account)) == []
    trail = [e["type"] for e in rows(config_file, "events", "--account", str(account))]
    assert trail[-2:] == ["user.roles_revoked", "user.removed"]


def test_contacts_optin_list_by_email_and_mailable(config_file, dealer):
    account, lead = dealer
    contact = str(lead["contact_id"])
    ok_json(config_file, "contact", "optout", contact)
    back = ok_json(config_file, "contact", "optin", contact, "--reason", "asked on the phone")
    assert (back["status"], back["changed"]) == ("active", True)
    assert ok_json(config_file, "contact", "optin", contact, "--reason", "x")["changed"] is False
    other = ok_json(config_file, "account", "add", "Dealer Two")["id"]
    ok_json(config_file, "contact", "add", "--account", str(other), "--email",
            "ANN@people.test")
    same = rows(config_file, "contact", "list", "--email", "ann@people.test")
    assert sorted(c["account_id"] for c in same) == [account, other]
    assert rows(config_file, "contact", "list", "--mailable", "false") == []
    assert len(rows(config_file, "contact", "list", "--mailable", "true")) == 2
    table = run(config_file, "contact", "list").stdout.splitlines()[0].split()
    assert "MAILABLE" in table
    optin = [e for e in rows(config_file, "events", "--contact", contact)
             if e["type"] == "contact.opted_in"]
    assert optin[0]["data"]["previous_reason"] == "manual"
    assert optin[0]["reason"] == "asked on the phone"


def test_lead_export_dry_run_names_the_contact_and_marks_nothing(config_file, dealer):
    account, lead = dealer
    dry = rows(config_file, "lead", "export", "--account", str(account), "--dry-run")
    assert [(r["id"], r["email"], r["first_name"], r["last_name"], r["exported_at"])
            for r in dry] == [(lead["id"], "ann@people.test", "Ann", "Lee", None)]
    assert rows(config_file, "lead", "export", "--account", str(account), "--dry-run") == dry
    done = rows(config_file, "lead", "export", "--account", str(account))
    assert done[0]["email"] == "ann@people.test" and done[0]["exported_at"]
    assert rows(config_file, "lead", "export", "--account", str(account)) == []


def test_events_trail_of_a_contact_includes_its_leads(config_file, dealer):
    _, lead = dealer
    ok_json(config_file, "lead", "flag", str(lead["id"]), "--by", "boss")
    trail = rows(config_file, "events", "--contact", str(lead["contact_id"]))
    assert [e["type"] for e in trail] == ["contact.created", "lead.created",
                                            "lead.flagged_spam"]
    assert trail[-1]["actor"] == "cli:boss"
    assert [e["type"] for e in rows(config_file, "events", "--lead", str(lead["id"]))] == [
        "lead.created", "lead.flagged_spam"]
    assert rows(config_file, "events", "--since", "2099-01-01") == []
    assert len(rows(config_file, "events", "--since", "1h")) == len(
        rows(config_file, "events"))


def test_inbox_show_list_filters_and_reprocess_after_the_role_is_granted(
        tmp_path, sqlite_url, server_factory):
    config = write_config(tmp_path / "c.toml", sqlite_url)
    ok_json(config, "db", "upgrade")
    account = ok_json(config, "account", "add", "Dealer One")["id"]
    ok_json(config, "user", "add", "--account", str(account), "--email", "clerk@dealer.test")
    lead = ok_json(config, "lead", "add", "--account", str(account), "--email",
                   "ann@people.test", "--first", "Ann", "--last", "Lee")
    server = server_factory(config)
    raw = message(subject="Re: New lead", body="SPAM", sender="clerk@dealer.test",
                  message_id="clerk-reply@dealer.test")
    assert send(server.port, "clerk@dealer.test", [lead["reply_to"]], raw)[0] == 250
    server.wait_for("message.processed", reason="refused: not a contact admin")

    found = rows(config, "inbox", "list", "--message-id", "<clerk-reply@dealer.test>")
    assert [(m["state"], m["reason"]) for m in found] == [
        ("ignored", "refused: not a contact admin")]
    message_id = found[0]["id"]
    assert [m["id"] for m in rows(config, "inbox", "list", "--from", "CLERK@")] == [message_id]
    assert [m["id"] for m in rows(config, "inbox", "list", "--rcpt", "reply+")] == [message_id]
    assert rows(config, "inbox", "list", "--since", "2099-01-01") == []
    shown = ok_json(config, "inbox", "show", "--message-id", "clerk-reply@dealer.test")
    assert shown["id"] == message_id and shown["kind"] == "reply"
    assert "Subject: Re: New lead" in shown["headers"]
    assert [e["type"] for e in shown["events"]] == ["reply.refused"]
    human = run(config, "inbox", "show", str(message_id)).stdout
    assert "reply.refused" in human and "Subject: Re: New lead" in human
    raw_out = run(config, "inbox", "show", str(message_id), "--raw")
    assert raw_out.stdout_bytes == raw

    ok_json(config, "user", "add", "--account", str(account), "--email", "clerk@dealer.test",
            "--role", "contact-admin")
    out = ok_json(config, "inbox", "reprocess", str(message_id))
    assert out == {"requeued": 1, "ids": [message_id]}
    wait_until(lambda: ok_json(config, "lead", "show", str(lead["id"]))["status"] == "spam",
               what="the reprocessed reply to flag the lead")
    assert ok_json(config, "inbox", "show", str(message_id))["state"] == "processed"
    failed = run(config, "inbox", "reprocess", str(message_id))
    assert failed.returncode == EXIT_FAILED
    assert f"inbound message {message_id} is processed, not ignored" in one_error_line(failed)
    requeued = [e for e in rows(config, "events") if e["type"] == "inbox.requeued"]
    assert requeued[0]["subject_id"] == message_id


# --- postmaster@ and abuse@ -------------------------------------------------------------------

def test_postmaster_and_abuse_are_accepted_kept_forwarded_and_never_acted_on(
        tmp_path, sqlite_url, server_factory, relay):
    config = write_config(tmp_path / "c.toml", sqlite_url,
                          smtp={"postmaster": "ops@operator.test"},
                          outbound={"relay": f"127.0.0.1:{relay.port}",
                                    "retry_interval": "1s"})
    ok_json(config, "db", "upgrade")
    account = ok_json(config, "account", "add", "Dealer One")["id"]
    lead = ok_json(config, "lead", "add", "--account", str(account), "--email",
                   "ann@people.test", "--first", "Ann", "--last", "Lee")
    token = ok_json(config, "contact", "headers", str(lead["contact_id"]))["X-Feedback-Token"]
    server = server_factory(config)
    # A verification mail, and an abuse report naming a genuine contact token: neither acts.
    verify = message(subject="Please verify your domain", sender="fbl@mailbox.test")
    report = message(subject="spam complaint", sender="abuse@isp.test",
                     extra=f"X-Feedback-Token: {token}\r\n")
    assert send(server.port, "", [f"postmaster@{DOMAIN}"], verify)[0] == 250
    assert send(server.port, "", [f"Abuse@{DOMAIN}"], report)[0] == 250
    assert send(server.port, "", ["Postmaster"], verify)[0] == 250  # RFC 5321: no domain
    forwarded = relay.wait(3)
    assert sorted(m[1][0] for m in forwarded) == ["ops@operator.test"] * 3
    assert all(m[0] == "<>" for m in forwarded)  # null sender: nothing bounces back to us
    assert all(b"Resent-To: ops@operator.test" in m[2] for m in forwarded)
    assert any(m[2].endswith(report) for m in forwarded)
    kept = rows(config, "inbox", "list", "--kind", "admin")
    assert len(kept) == 3 and {m["state"] for m in kept} == {"processed"}
    contact = ok_json(config, "contact", "show", str(lead["contact_id"]))
    assert contact["status"] == "active" and contact["complaints"] == 0


def test_without_a_postmaster_address_admin_mail_is_kept_only(config_file, server):
    raw = message(subject="hello postmaster")
    assert send(server.port, "a@else.test", [f"postmaster@{DOMAIN}"], raw)[0] == 250
    server.wait_for("message.processed", kind="admin")
    kept = rows(config_file, "inbox", "list", "--kind", "admin")
    assert kept[0]["state"] == "ignored" and "kept" in kept[0]["reason"]


@pytest.mark.process
def test_a_read_loads_neither_migrations_nor_logging(config_file, dealer):
    """What keeps a read quick (bench/cli.py measures it): no alembic (the schema is
    compared with ``db.HEAD``), no structlog (a read logs nothing), no actions."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "feedback_mta", "lead",
                             "show", str(dealer[1]["id"]), "--config", str(config_file)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    loaded = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
              if line.startswith("import time:")}
    assert "sqlalchemy" in loaded  # the check itself sees imports
    assert not {m for m in loaded if m.split(".")[0] in ("alembic", "structlog")}
    assert not {m for m in loaded if m.startswith("feedback_mta.actions")}


@pytest.mark.process
def test_contact_import_shows_a_progress_bar_on_a_terminal(config_file, dealer, tmp_path):
    import os
    import pty

    path = tmp_path / "contacts.csv"
    path.write_text("email,first,last\n" + "".join(
        f"t{i}@people.test,Tess,Ober\n" for i in range(1500)))
    master, slave = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "feedback_mta", "contact", "import",
                               str(path), "--account", str(dealer[0]), "--config",
                               str(config_file)], stdout=subprocess.PIPE, stderr=slave,
                              cwd=ROOT, timeout=120)
        os.close(slave)
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal's other end is closed: all is read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(master)
    assert done.returncode == 0
    assert b"importing" in drawn and b"1500" in drawn  # the bar, and the rows it counted
    assert done.stdout.decode().startswith("imported 1500 new")

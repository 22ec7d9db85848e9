"""README.md and docs/ are what users copy commands from and admins grep their logs and
dashboards by: every log event the code can write and every metric it serves must be in
them, spelled as in the code; every command line they show must be one the CLI takes; the
README's walkthrough must run as written."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from feedback_mta import events
from feedback_mta.service import metrics
from tests import doc_commands
from tests.conftest import ROOT

PACKAGE = ROOT / "feedback_mta"
README = (ROOT / "README.md").read_text()
#: README.md and docs/*.md, each ending its last section (``_section`` reads to the next).
DOCS = "\n## \n".join(p.read_text() for p in [ROOT / "README.md",
                                              *sorted((ROOT / "docs").glob("*.md"))])
_EVENT = re.compile(r"^[a-z]+\.[a-z_]+$")
_LOG_CALLS = {"debug", "info", "warning", "error", "exception", "critical", "record"}


def _names(node: ast.AST):
    if isinstance(node, ast.Constant) and isinstance(node.value, str) \
            and _EVENT.match(node.value):
        yield node.value
    elif isinstance(node, ast.IfExp):
        yield from _names(node.body)
        yield from _names(node.orelse)


def logged_events() -> dict[str, str]:
    """{event name: file} for every ``log.<level>("a.b")``, ``record("a.b", ...)``,
    ``(log.x if c else log.y)("a.b" if c else "c.d")``, ``_logged.append(("a.b", ...))``
    and ``action = "a.b" if c else "c.d"`` in the package."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            first = None
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                attr = func.attr if isinstance(func, ast.Attribute) else None
                if attr in _LOG_CALLS or isinstance(func, ast.IfExp):
                    first = node.args[0]
                elif attr == "append" and isinstance(node.args[0], ast.Tuple):
                    first = node.args[0].elts[0]
            elif isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "action" for t in node.targets):
                first = node.value
            for name in _names(first) if first is not None else ():
                found.setdefault(name, path.name)
    # Audit events are named by constants in one module; every one of them can be written.
    for name in (*events.ALL, events.MAIL_QUEUED):
        found.setdefault(name, "events.py")
    return found


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", DOCS + "\n## ", re.S | re.M)
    assert match, f"neither README.md nor docs/ has a '## {title}' section"
    return match.group(1)


def test_the_collector_finds_events_of_every_shape():
    events = logged_events()
    for name in ("message.processed",      # log.info("...")
                 "contact.opted_out",      # events.CONTACT_OPTED_OUT
                 "mail.deferred",          # (log.error if ... else log.warning)(...)
                 "mail.queued",            # events.MAIL_QUEUED
                 "contact.soft_bounced"):  # events.CONTACT_SOFT_BOUNCED
        assert name in events, name
    assert len(events) >= 55


def test_every_event_constant_is_a_stable_name_and_written_somewhere():
    """A constant nobody records is a README row that can never appear in a log."""
    source = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py")
                       if p.name != "events.py" and "migrations" not in p.parts)
    for name, value in vars(events).items():
        if name.isupper() and isinstance(value, str):
            assert _EVENT.match(value), value
            assert f"events.{name}" in source, f"events.{name} is never used"


def test_every_log_event_is_in_the_readme_logs_table():
    documented = set(re.findall(r"`([a-z]+\.[a-z_]+)`", _section("Logs")))
    missing = {name: file for name, file in logged_events().items() if name not in documented}
    assert not missing, f"log events not in README.md's Logs table: {missing}"


def test_every_metric_is_in_the_readme():
    text = _section("Operating it")
    served = {m.name for m in metrics.REGISTRY.collect()} | {
        "feedback_mta_queue_received", "feedback_mta_queue_oldest_seconds"}
    missing = sorted(name for name in served if name not in text)
    assert not missing, f"metrics not in README.md's Operating it section: {missing}"


def test_readme_units_and_postfix_lines_match_the_files():
    text = _section("Operating it")
    for name in ("feedback-mta.service", "feedback-mta-db-upgrade.service",
                 "feedback-mta.sysusers.conf"):
        assert name in text and (ROOT / "systemd" / name).exists(), name
    postfix_test = (ROOT / "tests" / "test_postfix.py").read_text()
    for line in ("reject_unverified_recipient", "unverified_recipient_reject_code = 550",
                 "address_verify_poll_delay = 1s"):
        assert line in text and line in postfix_test, line
    assert Path(ROOT / "config" / "feedback-mta.toml").read_text().count("[metrics]") == 1


def test_the_quick_start_makes_a_venv_and_ci_runs_the_readme_test_command():
    """Debian's python3 refuses `pip install` outside a virtual environment (PEP 668); the
    two quick-start commands must work there, and CI must run the second one as written."""
    quick = _section("Quick start")
    commands = re.findall(r"```sh\n(.+?)\n```", quick)[:2]
    assert len(commands) == 2
    serve, tests = commands
    for command in commands:
        assert command.startswith("python3 -m venv .venv && .venv/bin/pip install -e ")
    assert serve.endswith("serve --config config/feedback-mta.toml")
    assert tests.endswith(".venv/bin/python -m pytest")
    assert tests in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_readme_speaks_to_users_not_about_how_the_work_was_organised():
    assert not re.search(r"\bissue[ -]\d|\.\./shared|DESIGN\.md", DOCS, re.I)


def test_the_readme_is_short_and_every_link_to_docs_leads_somewhere():
    """A new user reads the README whole: it stays short, and sends them on to docs/."""
    assert len(README.splitlines()) <= 250
    for source in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", source.read_text()):
            assert (source.parent / target).exists(), (source.name, target)


def test_build_output_is_ignored():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for pattern in ("build/", "dist/", "*.egg-info/", ".venv/", "/data/"):
        assert pattern in ignored, pattern


# -- Every documented command line is one the CLI takes ------------------------------------

DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_documented_command_line_is_one_the_cli_takes():
    """A reader copies a command as it stands: its subcommands and options must exist."""
    root = doc_commands.cli_tree()
    lines = doc_commands.documented(DOC_FILES)
    assert len(lines) >= 60, "the finder lost the documents' command lines"
    wrong = [f"{line.source}: {line.text}: {why}" for line in lines
             if (why := doc_commands.problem(root, line.argv))]
    assert not wrong, "\n".join(wrong)


def test_every_command_is_in_the_command_reference():
    """A command nobody documented is one nobody finds."""
    reference = {line.argv for line in doc_commands.documented(DOC_FILES)
                 if line.source.endswith("(command reference)")}
    missing = [" ".join(path) for path in doc_commands.leaf_paths(doc_commands.cli_tree())
               if not any(argv[:len(path)] == path for argv in reference)]
    assert not missing, f"commands not in docs/integrating.md's Command reference: {missing}"


@pytest.mark.parametrize(("argv", "why"), [
    ("lead show 1 --json", None),
    ("-vv inbox list --state=failed --limit 5", None),
    ("contact import - --account 1 --config x.toml", None),
    ("webhook add URL (--account ID \\| --all-accounts) [--events TYPE,...]", None),
    ("lead shwo 1", "`feedback-mta lead` has no command 'shwo'"),
    ("nosuch list", "`feedback-mta` has no command 'nosuch'"),
    ("lead show 1 --jsn", "`feedback-mta lead show` has no option --jsn"),
    ("webhook add http://x/ --acount 1", "`feedback-mta webhook add` has no option --acount"),
    ("--config x.toml lead show 1", "`feedback-mta` has no option --config"),
    ("inbox", "`feedback-mta inbox` needs a command"),
    ("lead list --status spam --via", None),
])
def test_the_checker_refuses_what_the_cli_does_not_take(argv, why):
    words = doc_commands.reference_words(argv) if "\\|" in argv else tuple(argv.split())
    assert doc_commands.problem(doc_commands.cli_tree(), words) == why


@pytest.mark.parametrize(("shell", "found"), [
    ("feedback-mta lead show 1 --json   # {\"status\": ...}", [("lead", "show", "1", "--json")]),
    ("KEY=$(feedback-mta key add --account 1 --json | jq -r .key)",
     [("key", "add", "--account", "1", "--json")]),
    ("swaks --to \"$(feedback-mta contact headers 1 --json | jq .a)\"",
     [("contact", "headers", "1", "--json")]),
    (". .venv/bin/activate && .venv/bin/feedback-mta serve --config 'a b.toml'",
     [("serve", "--config", "a b.toml")]),
    ("cd /var/lib/feedback-mta && runuser -u feedback-mta -- \\\n    feedback-mta check-config",
     [("check-config",)]),
    ("# kept aside; see `feedback-mta inbox list --state failed` now",
     [("inbox", "list", "--state", "failed")]),
    ("journalctl -u feedback-mta -o cat | jq .", []),
    ("systemctl status feedback-mta        # Status", []),
    ("ln -s /opt/feedback-mta/bin/feedback-mta /usr/local/bin/feedback-mta", []),
    ("install -m 640 -g feedback-mta config/feedback-mta.toml /etc/feedback-mta/", []),
])
def test_the_finder_sees_commands_where_a_shell_runs_them(shell, found):
    assert doc_commands.commands_in_shell(shell) == found


# -- The README's walkthrough, run as a reader runs it -----------------------------------

def _walkthrough_config(path: Path, database_url: str, smtp: int, http: int) -> Path:
    """The example config as it is, on this test's database and free ports."""
    text = (ROOT / "config" / "feedback-mta.toml").read_text()
    for old, new in [('"sqlite:///data/feedback-mta.sqlite3"', json.dumps(database_url)),
                     ("port = 2525\n", f"port = {smtp}\n"),
                     ("127.0.0.1:8025", f"127.0.0.1:{http}"),
                     ('listen = "127.0.0.1:9125"', 'listen = ""'),
                     ('format = "auto"', 'format = "json"')]:
        assert old in text, f"the example config no longer says {old}"
        text = text.replace(old, new)
    path.write_text(text)
    return path


def walkthrough_script(readme: str, config: Path, ports: dict[int, int]) -> str:
    """The README's ```sh walkthrough blocks in order, as one bash script, on this run's
    config, ports and virtual environment."""
    blocks = re.findall(r"^```sh walkthrough\n(.*?)^```$", readme, re.S | re.M)
    assert len(blocks) >= 4, "the README's walkthrough blocks are gone"
    script = "\n".join(blocks)
    script = script.replace(". .venv/bin/activate", f". {Path(sys.executable).parent}/activate")
    script = script.replace("config/feedback-mta.toml", str(config))
    for documented, real in ports.items():
        script = re.sub(rf"\b{documented}\b", str(real), script)
    return "set -euo pipefail\n" + script


@pytest.mark.process
@pytest.mark.skipif(not (shutil.which("jq") and shutil.which("curl")),
                    reason="the README's walkthrough needs jq and curl")
def test_the_readme_walkthrough_runs_as_written(tmp_path, server_factory):
    """From a running server on the example config to a lead its dealer flagged by reply,
    the webhooks that told the platform, and a one-click unsubscribe: the README's own
    commands, in order, with bash."""
    from tests.cli import run
    from tests.support import free_port, wait_until

    smtp, http, receiver = free_port(), free_port(), free_port()
    config = _walkthrough_config(tmp_path / "feedback-mta.toml",
                                 f"sqlite:///{tmp_path / 'feedback.sqlite3'}", smtp, http)
    server_factory(config)
    (tmp_path / "data").mkdir()  # where the reader's server keeps its database
    script = walkthrough_script(README, config, {2525: smtp, 8025: http, 8026: receiver})
    shell = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = shell.communicate(timeout=120)
        assert shell.returncode == 0, output

        def shown(*args: str) -> dict:
            return json.loads(run(config, *args, "--json").stdout)

        wait_until(lambda: shown("lead", "show", "1")["status"] == "spam", what="lead flagged")
        assert shown("lead", "show", "1")["flagged_via"] == "email"
        wait_until(lambda: shown("contact", "show", "1")["status"] == "opted_out",
                   what="one-click unsubscribe")
        log = tmp_path / "data" / "webhooks.log"
        delivered = wait_until(lambda: {json.loads(line)["type"] for line in
                                        log.read_text().splitlines() if line.strip()}
                               >= {"lead.created", "lead.flagged_spam", "contact.opted_out"}
                               and log.read_text(), what="webhooks received")
        assert '"via":"email"' in delivered.replace(" ", ""), delivered
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGTERM)  # the receiver the walkthrough left running

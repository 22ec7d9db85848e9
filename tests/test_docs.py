"""README.md is what admins grep their logs and dashboards by: every log event the code can
write and every metric it serves must be in it, spelled as in the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from feedback_mta import events
from feedback_mta.service import metrics
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

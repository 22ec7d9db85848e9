"""The ``feedback-mta`` command run inside the test process, as a script sees it.

``invoke`` runs one command through the same entry point the console script calls
(``feedback_mta.__main__.run``) and hands back what ``subprocess.run`` would: the exit
code, stdout and stderr. Running it here rather than in a child interpreter saves about
1.4 s of CPU a call (mostly imports); what only a process shows (the installed script,
import time, ``| head``, a terminal) is the process tier's (``tests.cli.spawn``).

The command runs in a copy of the caller's context (its verbosity, its log reader are
thrown away when it returns), with the environment a child would get (no
``FEEDBACK_MTA_*`` of the test run's own unless given), in ``cwd``, its stdout and stderr
captured.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Result:
    """What ``subprocess.run(..., capture_output=True, text=True)`` gives, for one command,
    and the bytes written to stdout (``inbox show --raw``)."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    stdout_bytes: bytes


class _Captured(io.TextIOWrapper):
    """A text stream with a ``buffer``, as a process's stdout has; read back as a child's
    output is read in text mode (universal newlines)."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", write_through=True)

    def bytes(self) -> bytes:
        self.flush()
        raw = self.buffer
        assert isinstance(raw, io.BytesIO)
        return raw.getvalue()

    def text(self) -> str:
        return self.bytes().decode(errors="replace").replace("\r\n", "\n").replace("\r", "\n")


@contextlib.contextmanager
def _environment(env: dict[str, str] | None) -> Iterator[None]:
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("FEEDBACK_MTA_")]:
        del os.environ[key]
    os.environ.update(env or {})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def invoke(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
           input: str = "", typer: bool = False) -> Result:
    """Run ``feedback-mta ARGV...`` in this process (``typer``: through the typer app, even
    a read that ``__main__`` answers without it)."""
    if typer:
        from feedback_mta.cli.app import run
    else:
        from feedback_mta.__main__ import run

    out, err = _Captured(), _Captured()
    context = contextvars.copy_context()
    with _environment(env), contextlib.chdir(cwd or ROOT), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        saved_stdin, sys.stdin = sys.stdin, io.StringIO(input)
        try:
            code = context.run(run, list(argv))
        finally:
            sys.stdin = saved_stdin
    return Result(list(argv), code, out.text(), err.text(), out.bytes())


def run(config: Path | None, *args: str, env: dict | None = None,
        cwd: Path | None = None, typer: bool = False) -> Result:
    """``feedback-mta ARGS... --config CONFIG`` in this process."""
    argv = [*args]
    if config is not None:
        argv += ["--config", str(config)]
    return invoke(argv, env=env, cwd=cwd, typer=typer)


def spawn(config: Path | None, *args: str, env: dict | None = None,
          cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m feedback_mta ARGS...`` as a child process: for the process tier."""
    argv = [sys.executable, "-m", "feedback_mta", *args]
    if config is not None:
        argv += ["--config", str(config)]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_MTA_")}
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd or ROOT, timeout=60,
                          env={**full_env, **(env or {})})

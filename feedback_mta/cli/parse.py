"""``feedback-mta parse``: classify raw messages offline, one JSON line per file.

It is the tool to bulk-check a mailbox, so it is kept light: it never touches the
database and imports nothing of it (``python -m feedback_mta parse`` starts here without
loading SQLAlchemy, typer or alembic; ``__main__`` sends it here), nor the handlers and
actions: a reply's intent is read with ``reading.commands``' words. ``cli`` declares the same
command for ``--help`` and shares ``classify_file``.
"""

from __future__ import annotations

import gc
import json
import marshal
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feedback_mta.addresses import Box
from feedback_mta.cli import output
from feedback_mta.reading.candidates import candidates, first_token, verify
from feedback_mta.reading.classify import Kind, classify
from feedback_mta.reading.parse import parse

if TYPE_CHECKING:
    from feedback_mta.addresses import AddressBook

#: ``config.ENV_CONFIG``; the config module itself (and the reply reader) load only when a
#: config is named or a reply is read, so a mailbox of bounces starts sooner.
ENV_CONFIG = "FEEDBACK_MTA_CONFIG"

#: Columns of the table for people (``--json`` prints every field).
COLUMNS = ("file", "kind", "feedback_type", "recipients", "hard_bounce")


def expand(paths: Iterable[Path]) -> Iterator[Path]:
    """Files as given; a directory (a maildir, a folder of .eml) stands for all files in it
    and its subdirectories, in path order."""
    for path in paths:
        if path.is_dir():
            found = sorted(_files_in(str(path)), key=lambda name: name.split(os.sep))
            yield from map(Path, found)
        else:
            yield path


def _files_in(directory: str) -> list[str]:
    """Every file under ``directory`` (``os.scandir``: a mailbox of thousands is listed
    without a stat per file, where ``Path.rglob`` and ``is_file`` took 10 ms a thousand)."""
    found: list[str] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                found += _files_in(entry.path)
            elif entry.is_file():
                found.append(entry.path)
    return found


def classify_file(file: Path, book: AddressBook | None,
                  markers: Sequence[str] | None = None) -> dict[str, Any]:
    """One line of ``parse``. Raises OSError when the file cannot be read; anything the
    message itself does wrong gives kind ``unknown`` and ``error`` instead."""
    raw = file.read_bytes()
    try:
        parsed = parse(raw, guess_envelope=True)
        result = classify(parsed, book.resolve_all(parsed.rcpt_tos) if book else [])
        wanted = _intent(parsed, result, markers) if result.kind is Kind.REPLY else None
        bounces = result.report.bounces if result.report else ()
        row = {"file": str(file), "kind": result.kind.value,
               "feedback_type": result.feedback_type, "recipients": list(result.recipients),
               "hard_bounce": result.hard_bounce,
               "reason": bounces[0].reason if bounces else (
                   "feedback" if result.kind is Kind.COMPLAINT else None),
               "bounces": [{"address": b.address, "reason": b.reason, "hard": b.hard,
                            "status": b.status, "diagnostic": b.diagnostic,
                            **({"final_recipient": b.final} if b.final else {})}
                           for b in bounces],
               "intent": wanted,
               "token": first_token(result),
               "format": result.report.format if result.report else None,
               "why": result.why, "message_id": parsed.message_id}
        if book is not None:
            row["token_valid"] = any(verify(c, book) is not None for c in candidates(result))
        return row
    except Exception as exc:  # one odd file must not stop a mailbox-wide check
        return {"file": str(file), "kind": Kind.UNKNOWN.value, "feedback_type": None,
                "recipients": [], "hard_bounce": None, "reason": None, "bounces": [],
                "intent": None, "token": None,
                "error": f"{type(exc).__name__}: {exc}"[:300]}


def _intent(parsed, result, markers: Sequence[str] | None) -> Any:
    """A dealer's command (``flag``, ``restore``), or a contact's answer to a confirmation
    request (``confirm``, ``decline``; none when it says both), as the handlers read them."""
    if _to_confirm(parsed, result):
        from feedback_mta.markers import CONFIRMATION_MARKERS
        from feedback_mta.reading.commands import CONSENT_VOCABULARY
        from feedback_mta.reading.reply_text import read_answers

        said = read_answers(parsed, CONSENT_VOCABULARY, CONFIRMATION_MARKERS)
        return next(iter(said)) if len(said) == 1 else None
    from feedback_mta.reading.commands import VOCABULARY
    from feedback_mta.reading.reply_text import NOTIFICATION_MARKERS, read

    return read(parsed, VOCABULARY, tuple(NOTIFICATION_MARKERS if markers is None else markers))


def _to_confirm(parsed, result) -> bool:
    """Is this a reply to ``confirm+TOKEN``? Verified with a config; without one (no
    secret), by the recipient's local part as found."""
    if result.recipient is not None:
        return result.recipient.box is Box.CONFIRM
    return any(r.lower().startswith("confirm+") for r in parsed.rcpt_tos)


def settings(config: Path | None) -> tuple[AddressBook | None, Sequence[str] | None]:
    """The address book (for token checks) and reply markers, when a config is named."""
    if config is None and not os.environ.get(ENV_CONFIG):
        return None, None
    from feedback_mta import config as config_mod
    from feedback_mta.addresses import AddressBook

    cfg = config_mod.load(config)
    return AddressBook.from_config(cfg), cfg.replies.markers


def run(files: Iterable[Path], config: Path | None, as_json: bool, out=None) -> int:
    """Print one row per file; the exit code (1 when a file could not be read)."""
    out = out or sys.stdout
    book, markers = settings(config)
    # Parsing makes many short-lived objects and no reference cycles: the cyclic collector's
    # passes over them find nothing and cost a few percent of a mailbox-wide run.
    gc.disable()
    try:
        rows, status = _classify_all(files, book, markers, out if as_json else None)
    finally:
        gc.enable()
    if not as_json:
        output.table(rows, COLUMNS, out)
    return status


#: Below this many files one process is faster than starting workers.
PARALLEL_FROM = 200


#: Chunk numbers go through a pipe, written whole before the workers start: at most this
#: many (4 bytes each, 16 KiB, within any Unix pipe's buffer), so chunks grow past 16
#: files on a mailbox of more than 65,536.
MAX_CHUNKS = 4096


def _classify_all(files, book, markers, stream) -> tuple[list[dict[str, Any]], int]:
    """Rows for every file, in the files' order; written to ``stream`` as JSON lines, if
    given. A mailbox-sized run is shared among processes, one per core (``_shared``)."""
    paths = list(expand(files))
    size = max(16, -(-len(paths) // MAX_CHUNKS))
    chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
    workers = min(os.cpu_count() or 1, 8)
    if len(paths) < PARALLEL_FROM or not hasattr(os, "fork"):
        workers = 1
    done = _shared(chunks, workers, book, markers)
    rows: list[dict[str, Any]] = []
    status = 0
    for number in range(len(chunks)):
        lines, errors = done[number]
        for error in errors:
            status = 1
            print(error, file=sys.stderr)
        if stream is not None:
            stream.writelines(line + "\n" for line in lines)
        else:
            rows += [json.loads(line) for line in lines]
    return rows, status


def _shared(chunks: list[list[Path]], workers: int, book: AddressBook | None,
            markers: Sequence[str] | None) -> dict[int, tuple[list[str], list[str]]]:
    """Each chunk's lines and errors, by its number. With several workers, this process
    and ``workers - 1`` forked after the imports (so each starts at once) take the next
    chunk from one queue until none is left, so they finish together however the costly
    messages fall; the forked ones send theirs back with ``marshal`` (strings in lists:
    no need for pickle, nor for its import)."""
    if workers == 1:
        return {n: _chunk(chunk, book, markers) for n, chunk in enumerate(chunks)}
    # The queue: every chunk number, 4 bytes each, in a pipe written whole and closed
    # before any worker starts; a read of 4 bytes takes one number, atomically.
    queue, feed = os.pipe()
    os.write(feed, b"".join(n.to_bytes(4, "big") for n in range(len(chunks))))
    os.close(feed)
    readers = []
    for _ in range(1, workers):  # this process is a worker too
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: its chunks, down the pipe, then gone
            code = 1
            try:
                os.close(reader)
                share = _take(queue, chunks, book, markers)
                with os.fdopen(writer, "wb") as out:
                    out.write(marshal.dumps(share))
                code = 0
            finally:  # never back into the parent's code, whatever happened
                os._exit(code)
        os.close(writer)
        readers.append((pid, reader))
    done = _take(queue, chunks, book, markers)
    os.close(queue)
    for pid, reader in readers:
        with os.fdopen(reader, "rb") as source:
            data = source.read()
        _, code = os.waitpid(pid, 0)
        if code != 0 or not data:
            raise RuntimeError(f"parse worker {pid} failed (status {code})")
        done.update(marshal.loads(data))  # noqa: S302 - our own child's output
    return done


def _take(queue: int, chunks: list[list[Path]], book: AddressBook | None,
          markers: Sequence[str] | None) -> dict[int, tuple[list[str], list[str]]]:
    """Chunks from the queue until it is empty."""
    done = {}
    while len(number := os.read(queue, 4)) == 4:
        n = int.from_bytes(number, "big")
        done[n] = _chunk(chunks[n], book, markers)
    return done


def _chunk(paths: list[Path], book: AddressBook | None, markers: Sequence[str] | None
           ) -> tuple[list[str], list[str]]:
    """One chunk: JSON lines, and the errors of files it could not read."""
    lines, errors = [], []
    for file in paths:
        try:
            lines.append(json.dumps(classify_file(file, book, markers), ensure_ascii=False))
        except OSError as exc:
            errors.append(f"feedback-mta: error: {file}: {exc.strerror or exc}")
    return lines, errors


def _plain(argv: Sequence[str]) -> tuple[list[Path], Path | None, bool] | None:
    """(files, config, --json) of a plain command line (files, ``--json``, ``--config`` /
    ``-c``), read without argparse, whose import and set-up cost a bulk parse a few
    milliseconds; None for anything else, which argparse reads (and explains)."""
    files: list[Path] = []
    config: str | None = os.environ.get(ENV_CONFIG) or None
    as_json = False
    args = iter(argv)
    for arg in args:
        if arg == "--json":
            as_json = True
        elif arg in ("--config", "-c"):
            config = next(args, None)
            if not config or config.startswith("-"):
                return None
        elif arg.startswith("--config=") and len(arg) > len("--config="):
            config = arg.partition("=")[2]
        elif arg == "--":
            files += [Path(a) for a in args]
        elif arg.startswith("-") and arg != "-":
            return None
        else:
            files.append(Path(arg))
    return (files, Path(config) if config else None, as_json) if files else None


def main(argv: Sequence[str]) -> int:
    """The fast path for ``feedback-mta parse ...`` (same options as the typer command)."""
    plain = _plain(argv)
    if plain is None:
        import argparse

        parser = argparse.ArgumentParser(prog="feedback-mta parse", add_help=False)
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--config", "-c", type=Path,
                            default=os.environ.get(ENV_CONFIG) or None)
        parser.add_argument("--json", dest="as_json", action="store_true")
        args = parser.parse_args(argv)
        plain = (args.files, args.config, args.as_json)
    files, config, as_json = plain
    try:
        return run(files, config, as_json)
    except Exception as exc:
        from feedback_mta.config import ConfigError

        if not isinstance(exc, ConfigError):
            raise
        print(f"feedback-mta: error: {exc}", file=sys.stderr)
        return 3

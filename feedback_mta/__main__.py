"""``python -m feedback_mta`` and the ``feedback-mta`` command.

Two kinds of command skip typer, so that they do not pay for loading what they do not use:
``parse`` (bulk, offline, no database) goes straight to ``bulk``, and the reads an admin
runs most (``lead show ID``, ``contact show ID``, ``inbox list``) to ``cli.reads``, which
runs the same functions typer's commands call without loading typer or the models.
Everything else, ``--help`` of these too, goes through the typer app in ``cli``.
"""

import sys


def _bulk(argv: list[str]) -> bool:
    return argv[:1] == ["parse"] and not {"--help", "-h"} & set(argv)


def run(argv: list[str]) -> int:
    """One command, in this process; its exit code (``main`` leaves with it)."""
    if _bulk(argv):
        from feedback_mta.cli import parse as bulk

        try:
            return bulk.main(argv[1:])
        except SystemExit as exc:  # argparse's usage error (2), already on stderr
            return exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdout.flush()
    from feedback_mta.cli import reads

    code = reads.fast(argv)
    if code is not None:
        return code
    from feedback_mta.cli.app import run as run_command

    return run_command(argv)


def main() -> None:
    from feedback_mta.cli.output import leave

    argv = sys.argv[1:]
    try:
        code = run(argv)
    except BrokenPipeError:  # parse ... | head: the reader has stopped reading
        code = 1
    if _bulk(argv):
        leave(code)  # every line is written: leave without tearing the interpreter down
    from feedback_mta.cli.base import FAST_EXIT

    if FAST_EXIT.get():
        leave(code)
    sys.exit(code)  # serve: its threads and files are closed on the way out


if __name__ == "__main__":
    main()

"""``python -m feedback_mta`` and the ``feedback-mta`` command.

``parse`` (bulk, offline, no database) goes straight to ``bulk`` so that checking a
mailbox does not pay for loading the database stack; everything else, and ``parse --help``,
goes through the typer app in ``cli``.
"""

import os
import sys


def run(argv: list[str]) -> int:
    """One command, in this process; its exit code (``main`` leaves with it)."""
    if argv[:1] == ["parse"] and not {"--help", "-h"} & set(argv):
        from feedback_mta.cli import parse as bulk

        try:
            return bulk.main(argv[1:])
        except SystemExit as exc:  # argparse's usage error (2), already on stderr
            return exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdout.flush()
    from feedback_mta.cli.app import run as run_command

    return run_command(argv)


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["parse"] and not {"--help", "-h"} & set(argv):
        try:
            code = run(argv)
        except BrokenPipeError:  # parse ... | head: the reader has stopped reading
            code = 1
        # Every line is written: leave without tearing the interpreter down (its modules
        # and the messages' objects), as the other commands leave.
        sys.stderr.flush()
        os._exit(code)
    from feedback_mta.cli.app import main as cli_main

    cli_main()

if __name__ == "__main__":
    main()

"""``python -m feedback_mta`` and the ``feedback-mta`` command.

``parse`` (bulk, offline, no database) goes straight to ``bulk`` so that checking a
mailbox does not pay for loading the database stack; everything else, and ``parse --help``,
goes through the typer app in ``cli``.
"""

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["parse"] and not {"--help", "-h"} & set(argv):
        from feedback_mta.cli import parse as bulk

        sys.exit(bulk.main(argv[1:]))
    from feedback_mta.cli.app import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()

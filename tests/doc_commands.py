"""The ``feedback-mta`` command lines README.md and docs/ show, and whether the CLI takes them.

A reader copies a documented command as it stands; one that names a command or an option
the CLI does not have fails them at once. ``documented`` finds the lines: in fenced code
blocks, wherever ``feedback-mta`` stands where a shell runs a command (start of a line,
after ``|``, ``&&``, ``;``, ``$(``, ``--``, a backtick), in inline code that starts with
``feedback-mta``, and in the first column of the command reference, whose forms
(``[--status active\\|spam]``, ``(--account ID \\| --all-accounts)``) are read as the words
they name. ``problem`` walks one command line through the click tree of the typer app
without running anything: each word before the command must name a subcommand, each
``--option`` must exist where it stands; values and placeholders (``ID``, ``EMAIL``) are not
judged.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

#: ``feedback-mta`` (or a path ending in it) followed by a word: a candidate command.
_NAME = re.compile(r"(?<![\w.-])(?:[\w./-]*/)?feedback-mta(?=[ \t]+\S)")
#: What may stand before a command on its line (a shell's command positions).
_COMMAND_POSITION = re.compile(r"(?:^|\$\(|\||&&|;|\(|(?:^|\s)--|`|\bexec|\bsudo)\s*$")
_FENCE = re.compile(r"^```(.*)$")
_REFERENCE = re.compile(r"^## Command reference\n(.*?)(?=^## |\Z)", re.M | re.S)
_REFERENCE_CELL = re.compile(r"^\| (`.*?) \|", re.M)


@dataclass(frozen=True)
class Line:
    """One documented command line: where it is, and its words after ``feedback-mta``."""

    source: str
    text: str
    argv: tuple[str, ...]


def _words(text: str) -> list[str]:
    """The shell words of ``text`` up to its first operator (``|``, ``&&``, ``)``, ...) or
    comment."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    words = []
    try:
        for word in lexer:
            if word and set(word) <= set("();<>|&"):
                break
            words.append(word)
    except ValueError:  # an unclosed quote: the line goes on past what is shown
        pass
    return words


def commands_in_shell(text: str) -> list[tuple[str, ...]]:
    """The ``feedback-mta`` command lines of shell text (continuations joined)."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        for match in _NAME.finditer(line):
            before = line[:match.start()]
            if not _COMMAND_POSITION.search(before):
                continue
            rest = line[match.end():]
            if before.endswith("`"):
                rest = rest.split("`", 1)[0]
            found.append(tuple(_words(rest)))
    return found


def reference_words(form: str) -> tuple[str, ...]:
    """The words of a command reference form: alternatives and brackets dropped."""
    plain = re.sub(r"\\\||[\[\]()]|\.\.\.", " ", form)
    return tuple(plain.split())


def documented(files: list[Path]) -> list[Line]:
    """Every ``feedback-mta`` command line the documents show."""
    lines: list[Line] = []
    for path in files:
        text = path.read_text()
        prose: list[str] = []
        block: list[str] | None = None
        for number, line in enumerate(text.splitlines(), 1):
            if _FENCE.match(line):
                if block is None:
                    block, start = [], number
                else:
                    for argv in commands_in_shell("\n".join(block)):
                        lines.append(Line(f"{path.name}:{start}", " ".join(argv), argv))
                    block = None
            elif block is not None:
                block.append(line)
            else:
                prose.append(line)
        for span in re.findall(r"`([^`]+)`", "\n".join(prose)):
            span = " ".join(span.split())
            if span.startswith("feedback-mta "):
                argv = tuple(_words(span.removeprefix("feedback-mta ")))
                lines.append(Line(f"{path.name} (inline)", span, argv))
        reference = _REFERENCE.search(text)
        for cell in _REFERENCE_CELL.findall(reference.group(1) if reference else ""):
            for form in re.findall(r"`([^`]+)`", cell):
                lines.append(Line(f"{path.name} (command reference)", form,
                                  reference_words(form)))
    return lines


def _options(command) -> dict[str, bool]:
    """{option name: whether it takes a value} of one click command, --help included."""
    names: dict[str, bool] = {"--help": False}
    for param in command.params:
        if getattr(param, "param_type_name", "") != "option":
            continue
        takes_value = not (param.is_flag or param.count)
        for name in (*param.opts, *param.secondary_opts):
            names[name] = takes_value
    return names


def _option_problem(word: str, options: dict[str, bool], where: str) -> str | None:
    name = word.split("=", 1)[0]
    if name in options:
        return None
    if re.fullmatch(r"-[a-zA-Z]{2,}", word) and all(f"-{c}" in options for c in word[1:]):
        return None  # -vv: short flags together
    return f"`{where}` has no option {name}"


def _is_option(word: str) -> bool:
    return word.startswith("-") and word != "-" and not re.fullmatch(r"-\d.*", word)


def problem(root, argv: tuple[str, ...]) -> str | None:
    """Why ``feedback-mta ARGV`` is not a command line the CLI takes (an unknown command or
    option, a group without its subcommand); None if it is."""
    import click

    command, path, i = root, ["feedback-mta"], 0
    while True:
        options = _options(command)
        is_group = hasattr(command, "list_commands")
        while i < len(argv):
            word = argv[i]
            if word == "--":
                break
            if _is_option(word):
                wrong = _option_problem(word, options, " ".join(path))
                if wrong:
                    return wrong
                i += 2 if options.get(word, False) and "=" not in word else 1
            elif is_group:
                break
            else:
                i += 1  # an argument, or a placeholder for one
        if not is_group:
            return None
        if i >= len(argv) or argv[i] == "--":
            return f"`{' '.join(path)}` needs a command"
        sub = command.get_command(click.Context(command), argv[i])
        if sub is None:
            return f"`{' '.join(path)}` has no command {argv[i]!r}"
        command, i = sub, i + 1
        path.append(sub.name or argv[i - 1])


def cli_tree():
    """The click command of the ``feedback-mta`` typer app."""
    import typer

    from feedback_mta.cli.app import app

    return typer.main.get_command(app)


def leaf_paths(command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every runnable command's words (``("lead", "show")``), hidden ones left out."""
    import click

    if not hasattr(command, "list_commands"):
        return [path]
    context = click.Context(command)
    paths = []
    for name in command.list_commands(context):
        sub = command.get_command(context, name)
        if sub is not None and not getattr(sub, "hidden", False):
            paths += leaf_paths(sub, (*path, name))
    return paths

"""Coverage-guided fuzzing of parse / classify / trim with atheris (libFuzzer).

    python bench/fuzz.py                  # until stopped (Ctrl-C)
    python bench/fuzz.py --runs 200000    # a fixed number of inputs, then the figures
    python bench/fuzz.py --seconds 600

Starts from every real-world sample in tests/fixtures (the corpus grows in
$TMPDIR/feedback-mta-fuzz-corpus and is kept, so the next run goes on from there), mutates
them guided by coverage of feedback_mta, mail-parser and the stdlib email package, and
runs ``tests.fuzzing.examine`` on each input. An input that raises anything but
``ParseError`` (the processor keeps those ``failed`` with the reason), or takes longer than
``--timeout`` seconds, is a crasher: libFuzzer writes it to tests/fixtures/crashers/new-*
and exits non-zero. Minimise it, fix the code, name the file and add it to
``CRASHERS_TABLE`` in tests/test_fuzz.py.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import shutil
import sys
import tempfile
import time
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

with atheris.instrument_imports(include=["feedback_mta", "mailparser", "email"]):
    from tests.fuzzing import CRASHERS, FIXTURES, ParseError, examine

KINDS: collections.Counter[str] = collections.Counter()
STARTED = time.perf_counter()
IN_INPUT = False  # still True at exit: an exception escaped (or a timeout struck)
#: libFuzzer ends a ``-runs`` run with C exit(), which skips Python's atexit: the figures
#: are printed after the last input instead (and every 10,000, for open-ended runs).
RUNS = -1


def one_input(data: bytes) -> None:
    global IN_INPUT
    IN_INPUT = True
    try:
        KINDS[examine(data)] += 1
    except ParseError:
        KINDS["ParseError"] += 1
    IN_INPUT = False
    done = sum(KINDS.values())
    if done == RUNS or done % 10000 == 0:
        _figures()


def _figures() -> None:
    runs = sum(KINDS.values())
    seconds = time.perf_counter() - STARTED
    verdict = "CRASHER FOUND (see above)" if IN_INPUT else "done"
    print(f"fuzz: {verdict}: {runs} inputs in {seconds:.1f} s "
          f"({runs / max(seconds, 1e-9):.0f}/s); outcomes {dict(KINDS.most_common())}",
          flush=True)


def main() -> None:
    global RUNS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=-1, help="inputs to try (-1: no end)")
    parser.add_argument("--seconds", type=int, default=0, help="stop after this long")
    parser.add_argument("--timeout", type=int, default=5, help="seconds one input may take")
    args = parser.parse_args()
    RUNS = args.runs
    corpus = Path(tempfile.gettempdir()) / "feedback-mta-fuzz-corpus"
    corpus.mkdir(exist_ok=True)
    for i, sample in enumerate(p for p in sorted(FIXTURES.rglob("*.eml"))
                               if p.parent != CRASHERS):
        shutil.copy(sample, corpus / f"{i:04d}-{sample.name}")
    libfuzzer = [sys.argv[0], str(corpus), f"-runs={args.runs}", f"-timeout={args.timeout}",
                 f"-artifact_prefix={CRASHERS}/new-", "-max_len=262144", "-rss_limit_mb=4096",
                 "-print_final_stats=1"]
    if args.seconds:
        libfuzzer.append(f"-max_total_time={args.seconds}")
    atexit.register(lambda: IN_INPUT and _figures())
    atheris.Setup(libfuzzer, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

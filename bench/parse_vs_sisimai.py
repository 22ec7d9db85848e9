"""Bulk ``feedback-mta parse`` against Sisimai (Debian's ``libsisimai-perl``), the reference
bounce/ARF parser, on the same files, each in one process.

    python bench/parse_vs_sisimai.py [--copies 100] [--dir tests/fixtures/reports]

Prints:

* agreement with Sisimai on every fixture: the kind (complaint / bounce / auto_reply),
  the recipients and hard/soft, file by file, and the files only one of us reads;
* with ``--corpus``, instead: Sisimai's public corpus (``tests/fixtures/sisimai``) against
  its own test suites' expectations, our figures beside Debian Sisimai's;
* speed: the fixtures copied ``--copies`` times (each copy with its own Message-ID) into a
  temporary maildir, parsed by ``python -m feedback_mta parse --json DIR`` and by one
  ``perl -MSisimai`` process; wall time of each whole process (startup included), the
  median of ``--runs`` (3) alternating runs, and the ratio; our package's bytecode is
  compiled first, as an install compiles it; with ``--go BINARY``, go-sisimai too (a
  program calling ``sisimai.Rise`` on the directory, built offline from
  sisimai/go-sisimai with Debian's Go 1.19 and its golang-golang-x-{net,text}-dev copied
  into a ``vendor/`` directory);
  then our start-up time (``parse`` of no file) and the in-process cost per file.

Sisimai's reasons map to our kinds: ``feedback`` -> complaint, ``delivered`` and
``vacation`` -> auto_reply, any other reason -> bounce; its ``softbounce`` 0/1 -> hard/soft.
"""

from __future__ import annotations

import argparse
import compileall
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SISIMAI = r"""
use strict; use warnings; use Sisimai; use JSON::PP;
my $v = Sisimai->make($ARGV[0], 'delivered' => 1, 'vacation' => 1) || [];
my $n = 0;
for my $e (@$v) {
    $n++;
    next unless $ARGV[1];
    print JSON::PP->new->canonical->encode({file => $e->{'origin'},
        recipient => lc($e->{'recipient'}->address), reason => $e->{'reason'},
        softbounce => $e->{'softbounce'} + 0, feedbacktype => $e->{'feedbacktype'}}), "\n";
}
print STDERR "sisimai records: $n\n";
"""


def sisimai(path: Path, print_rows: bool) -> tuple[list[dict], float]:
    started = time.perf_counter()
    done = subprocess.run(["perl", "-e", SISIMAI, str(path), "1" if print_rows else ""],
                          capture_output=True, check=True)
    elapsed = time.perf_counter() - started
    return [json.loads(line) for line in done.stdout.splitlines()], elapsed


def ours(path: Path) -> tuple[list[dict], float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "feedback_mta", "parse", "--json", str(path)],
                          capture_output=True, check=True, cwd=ROOT)
    elapsed = time.perf_counter() - started
    return [json.loads(line) for line in done.stdout.splitlines()], elapsed


def their_kind(row: dict) -> str:
    if row["reason"] == "feedback" and row.get("feedbacktype") == "opt-out":
        return "unsubscribe"
    return {"feedback": "complaint", "delivered": "auto_reply", "vacation": "auto_reply"}.get(
        row["reason"], "bounce")


def agreement(fixtures: Path) -> None:
    theirs_rows, _ = sisimai(fixtures, True)
    ours_rows, _ = ours(fixtures)
    theirs: dict[str, list[dict]] = defaultdict(list)
    for row in theirs_rows:
        theirs[Path(row["file"]).name].append(row)
    kind_same = rcpt_same = hard_same = hard_total = both = 0
    only_ours, only_theirs, differ = [], [], []
    for row in ours_rows:
        name = Path(row["file"]).name
        mine_reads = row["kind"] in ("complaint", "bounce", "auto_reply", "unsubscribe")
        if name not in theirs:
            if mine_reads:
                only_ours.append(f"{name} ({row['kind']})")
            continue
        if not mine_reads:
            only_theirs.append(f"{name} ({theirs[name][0]['reason']})")
            continue
        both += 1
        t = theirs[name]
        t_kind = their_kind(t[0])
        kind_same += t_kind == row["kind"]
        t_rcpts = {r["recipient"] for r in t if "libsisimai.org.invalid" not in r["recipient"]}
        rcpt_same += t_rcpts == set(row["recipients"])
        if row["kind"] == "bounce" and t_kind == "bounce":
            hard_total += 1
            t_hard = any(r["softbounce"] == 0 for r in t)
            hard_same += t_hard == row["hard_bounce"]
            if t_hard != row["hard_bounce"]:
                differ.append(f"{name}: hard ours={row['hard_bounce']} sisimai={t_hard} "
                              f"({'/'.join(sorted({r['reason'] for r in t}))})")
        if t_rcpts != set(row["recipients"]):
            differ.append(f"{name}: recipients ours={sorted(row['recipients'])} "
                          f"sisimai={sorted(t_rcpts)}")
    total = len(ours_rows)
    print(f"agreement on {total} fixtures: both read {both}; kind {kind_same}/{both}, "
          f"recipients {rcpt_same}/{both}, hard/soft {hard_same}/{hard_total}")
    print(f"  read by us only ({len(only_ours)}): {', '.join(sorted(only_ours)) or '-'}")
    print(f"  read by Sisimai only ({len(only_theirs)}): {', '.join(only_theirs) or '-'}")
    for line in differ:
        print(f"  differ: {line}")


def corpus() -> None:
    """Sisimai's public corpus against its test suites' expectations
    (``tests/fixtures/sisimai``): our figures and Debian Sisimai's, side by side."""
    sys.path.insert(0, str(ROOT))
    from tests.sisimai_corpus import EML, NOT_BOUNCES, agreement, table

    expected = table()
    ours_rows, ours_s = ours(EML)
    mine = {Path(r["file"]).name: r for r in ours_rows}
    theirs_rows, theirs_s = sisimai(EML, True)
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in theirs_rows:
        grouped[Path(row["file"]).name].append(row)
    theirs = {name: {"kind": NOT_BOUNCES.get(rows[0]["reason"], "bounce"),
                     "recipients": [r["recipient"] for r in rows],
                     "hard_bounce": rows[0]["softbounce"] == 0,
                     "bounces": [{"address": r["recipient"], "reason": r["reason"],
                                  "hard": r["softbounce"] == 0} for r in rows]}
              for name, rows in grouped.items()}
    print(f"Sisimai's corpus: {len(expected)} files, expectations of go-sisimai / p5-sisimai")
    print(f"  {'':<20} {'feedback-mta':>22} {'Sisimai ' + sisimai_version():>22}")
    a, b = agreement(mine, expected).figures(), agreement(theirs, expected).figures()
    for name in a:
        print(f"  {name:<20} {a[name]:>22} {b[name]:>22}")
    print(f"  {'one process':<20} {ours_s:>21.2f}s {theirs_s:>21.2f}s")


def go_sisimai(binary: Path | None, path: Path) -> float | None:
    if binary is None:
        return None
    started = time.perf_counter()
    subprocess.run([str(binary), str(path)], capture_output=True, check=True)
    return time.perf_counter() - started


def in_process(fixtures: Path) -> tuple[float, float]:
    """(start-up seconds of ``parse`` with nothing to read, median of 5; milliseconds per
    file of a warm in-process pass over ``fixtures``)."""
    sys.path.insert(0, str(ROOT))
    from feedback_mta.cli.parse import classify_file

    runs = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "feedback_mta", "parse", "--json", "/dev/null"],
                       capture_output=True, cwd=ROOT)
        runs.append(time.perf_counter() - started)
    files = sorted(fixtures.glob("*.eml"))
    for file in files:
        classify_file(file, None)
    started = time.perf_counter()
    for file in files:
        json.dumps(classify_file(file, None))
    return sorted(runs)[2], 1000 * (time.perf_counter() - started) / len(files)


def speed(fixtures: Path, copies: int, go: Path | None = None, runs: int = 3
          ) -> tuple[int, float, float, float | None]:
    """(files, our seconds, Sisimai's, go-sisimai's): the median of ``runs`` runs each,
    alternating."""
    files = sorted(fixtures.glob("*.eml"))
    # Timed as installed: pip compiles a package's bytecode as it installs it, and a source
    # checkout writes it on its first run, unless PYTHONDONTWRITEBYTECODE is set (as on some
    # CI machines), when every start would compile every module again.
    compileall.compile_dir(ROOT / "feedback_mta", quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        maildir = Path(tmp) / "cur"
        maildir.mkdir()
        for i in range(copies):
            for file in files:
                raw = file.read_bytes()
                (maildir / f"{i:05d}.{file.name}").write_bytes(
                    raw.replace(b"Message-ID: <", f"Message-ID: <copy{i}.".encode(), 1))
        n = len(files) * copies
        # Alternating, so a busy moment hits both alike.
        theirs_runs, ours_runs, go_runs = [], [], []
        for _ in range(runs):
            theirs_runs.append(sisimai(maildir, False)[1])
            rows, elapsed = ours(maildir)
            ours_runs.append(elapsed)
            assert len(rows) == n, (len(rows), n)
            go_runs.append(go_sisimai(go, maildir))
    middle = runs // 2
    go_s = sorted(go_runs)[middle] if go is not None else None  # type: ignore[type-var]
    return n, sorted(ours_runs)[middle], sorted(theirs_runs)[middle], go_s


def installed() -> bool:
    return shutil.which("perl") is not None and subprocess.run(
        ["perl", "-MSisimai", "-e", "1"], capture_output=True).returncode == 0


def sisimai_version() -> str:
    done = subprocess.run(["perl", "-MSisimai", "-e", "print $Sisimai::VERSION"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=ROOT / "tests" / "fixtures" / "reports")
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument("--corpus", action="store_true",
                        help="only Sisimai's corpus against its own expectations")
    parser.add_argument("--go", type=Path, default=None,
                        help="a go-sisimai program (sisimai.Rise over a directory) to time too")
    parser.add_argument("--runs", type=int, default=3,
                        help="timed runs of each program, alternating; the median is shown")
    args = parser.parse_args()
    if not installed():
        sys.exit("Sisimai is not installed (apt-get install libsisimai-perl)")
    if args.corpus:
        corpus()
        return
    agreement(args.dir)
    n, ours_s, theirs_s, go_s = speed(args.dir, args.copies, args.go, args.runs)
    print(f"speed on {n} files ({args.copies} copies of each fixture), one process each,"
          f" median of {args.runs}:")
    print(f"  feedback-mta parse: {ours_s:.2f} s  ({n / ours_s:,.0f} files/s)")
    print(f"  Sisimai {sisimai_version()}:  {theirs_s:.2f} s  ({n / theirs_s:,.0f} files/s)")
    if go_s is not None:
        print(f"  go-sisimai:         {go_s:.2f} s  ({n / go_s:,.0f} files/s)")
    print(f"  ratio: feedback-mta is {theirs_s / ours_s:.2f}x Sisimai's speed"
          + (f", {go_s / ours_s:.2f}x go-sisimai's" if go_s is not None else ""))
    startup, per_file = in_process(args.dir)
    print(f"  feedback-mta start-up (parse of no file): {1000 * startup:.0f} ms;"
          f" in process, warm: {per_file:.2f} ms per file")


if __name__ == "__main__":
    main()

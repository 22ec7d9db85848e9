"""Command-line latency: what an admin waits for, measured by hyperfine (Debian: hyperfine).

In one run, on a scratch SQLite database with a few rows: the bare interpreter
(``python -c pass``) and ``python -c "import sqlalchemy"``, then ``lead show 1``,
``inbox list``, ``stats`` and ``contact show 1``, each whole process, wall time, warm
caches. Prints mean and standard deviation in ms, the ratio to the bare interpreter, and the
target (under 0.3 s) met or not; for the reads answered without typer (``lead show``,
``contact show``, ``inbox list``) also the ratio to importing SQLAlchemy, and the target of a
read within 1.5x of it met or not (and the ratio of CPU time, steadier on a shared machine).

    .venv/bin/python bench/cli.py [--runs 20] [--json]

``contact import`` throughput (rows/s over 50,000 generated rows) is measured here too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 0.3
#: A read takes at most this many times ``python -c "import sqlalchemy"`` (DESIGN.md).
TARGET_IMPORT_RATIO = 1.5
COMMANDS = (("lead show 1", ("lead", "show", "1")), ("inbox list", ("inbox", "list")),
            ("stats", ("stats",)), ("contact show 1", ("contact", "show", "1")))
#: The reads held to TARGET_IMPORT_RATIO (``cli.reads``).
READS = ("lead show 1", "inbox list", "contact show 1")


def _config(directory: Path) -> Path:
    path = directory / "bench.toml"
    path.write_text(f"""[database]
url = "sqlite:///{directory / 'bench.sqlite3'}"
[smtp]
host = "127.0.0.1"
port = 0
domain = "fb.test"
lmtp = false
max_message_size = "1MB"
[security]
secret_key = "bench-secret-key-0123456789"
[quality]
allowed_domains = ["test"]
""")
    return path


def _cli(config: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "feedback_mta", *args, "--config", str(config)],
                          capture_output=True, text=True, input=stdin, check=True, cwd=ROOT)
    return done.stdout


def _hyperfine(commands: list[str], runs: int) -> list[dict]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(["hyperfine", "-N", "--warmup", "3", "--runs", str(runs),
                        "--export-json", out.name, *commands], check=True,
                       capture_output=True, cwd=ROOT)
        return json.loads(Path(out.name).read_text())["results"]


def _cpu(result: dict) -> float:
    return float(result["user"] + result["system"])


def latency(config: Path, runs: int) -> dict:
    baselines = [f"{sys.executable} -c pass", f"{sys.executable} -c 'import sqlalchemy'"]
    commands = baselines + [" ".join([sys.executable, "-m", "feedback_mta", *args, "--config",
                                      str(config)]) for _, args in COMMANDS]
    results = _hyperfine(commands, runs)
    bare, sqlalchemy = results[0]["mean"], results[1]["mean"]
    out = {"bare_python_ms": round(bare * 1000, 1),
           "import_sqlalchemy_ms": round(sqlalchemy * 1000, 1),
           "import_sqlalchemy_stddev_ms": round(results[1]["stddev"] * 1000, 1), "commands": {}}
    for (name, _), result in zip(COMMANDS, results[len(baselines):], strict=True):
        row = out["commands"][name] = {
            "mean_ms": round(result["mean"] * 1000, 1),
            "stddev_ms": round(result["stddev"] * 1000, 1),
            "ratio_to_bare": round(result["mean"] / bare, 1),
            "target_met": result["mean"] < TARGET_S}
        if name in READS:
            row["ratio_to_import_sqlalchemy"] = round(result["mean"] / sqlalchemy, 2)
            row["import_target_met"] = result["mean"] <= TARGET_IMPORT_RATIO * sqlalchemy
            # CPU (user + system) too: on a shared machine it moves less than wall time.
            row["cpu_ratio_to_import_sqlalchemy"] = round(_cpu(result) / _cpu(results[1]), 2)
    return out


SURNAMES = ("Smith", "Jones", "Brown", "Lee", "Garcia")


def import_rate(config: Path, rows: int) -> dict:
    lines = ["email,first,last,ip"] + [
        f"person{i}@people.test,Pat,{SURNAMES[i % 5]},"
        f"198.51.{i // 250 % 250}.{i % 250}" for i in range(rows)]
    started = time.perf_counter()
    out = json.loads(_cli(config, "contact", "import", "-", "--account", "1", "--json",
                          stdin="\n".join(lines) + "\n"))
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
            "created": out["created"], "target_met": rows / seconds >= 2000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rows", type=int, default=50000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if shutil.which("hyperfine") is None:
        print("bench/cli.py: hyperfine is not installed (Debian: apt install hyperfine)",
              file=sys.stderr)
        return 2
    env_config = os.environ.pop("FEEDBACK_MTA_CONFIG", None)
    with tempfile.TemporaryDirectory() as scratch:
        config = _config(Path(scratch))
        _cli(config, "db", "upgrade")
        _cli(config, "account", "add", "Dealer One")
        _cli(config, "lead", "add", "--account", "1", "--email", "ann@people.test",
             "--first", "Ann", "--last", "Lee")
        result = {"latency": latency(config, args.runs), "import": import_rate(config, args.rows)}
    if env_config is not None:
        os.environ["FEEDBACK_MTA_CONFIG"] = env_config
    if args.json:
        print(json.dumps(result))
        return 0
    lat = result["latency"]
    print(f"bare python -c pass: {lat['bare_python_ms']} ms; python -c 'import sqlalchemy': "
          f"{lat['import_sqlalchemy_ms']} ms ± {lat['import_sqlalchemy_stddev_ms']}")
    for name, row in lat["commands"].items():
        verdict = "met" if row["target_met"] else "NOT met"
        line = (f"{name:<16} {row['mean_ms']:>7.1f} ms ± {row['stddev_ms']:<5} "
                f"{row['ratio_to_bare']:>5}x bare   < {TARGET_S * 1000:.0f} ms: {verdict}")
        if "ratio_to_import_sqlalchemy" in row:
            met = "met" if row["import_target_met"] else "NOT met"
            line += (f"   {row['ratio_to_import_sqlalchemy']:>4}x import sqlalchemy"
                     f" (CPU {row['cpu_ratio_to_import_sqlalchemy']}x)"
                     f"   <= {TARGET_IMPORT_RATIO}x: {met}")
        print(line)
    imp = result["import"]
    print(f"contact import   {imp['rows']} rows in {imp['seconds']} s: {imp['rows_per_s']} rows/s"
          f"   >= 2000 rows/s: {'met' if imp['target_met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

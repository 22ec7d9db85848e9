"""Automatic lead spam flagging on a public labelled corpus, through the real API.

The SMS Spam Collection (Almeida, Gómez Hidalgo and Yamakami, 2011: 4,827 real messages
and 747 spam, CC BY 4.0, UCI Machine Learning Repository, dataset 228) is streamed, in a
seeded random order, as the comments of new leads (``POST /v1/leads``) of several
accounts, each from a new sender with a common freemail domain and a random address (so
neither the sender nor the network gives the label away: the words and the rules must).
Simulated dealers then do what the issue describes: they flag every spam lead they are
shown (``POST /v1/leads/ID/flag``), and restore half of the real leads the system flagged
wrongly (``POST /v1/leads/ID/restore``).

Printed, over the second half of the stream (once the model had the first half to learn
from) and over the whole: the false-flag rate (real leads flagged / real leads), precision
and recall of the automatic flags; ``POST /v1/leads`` latency as the client saw it; and the
scoring time per lead, measured afterwards in this process on the same database (the
rules, the behaviour reads and the model read for 1,000 leads of the second half, each in a
transaction rolled back). Targets: false flags <= 0.5% of real leads, recall >= 90%,
scoring p99 < 5 ms, ``POST /v1/leads`` p99 < 25 ms.

The corpus is not in the repository. Give it with ``--corpus FILE`` (the tab-separated
``SMSSpamCollection``), or put it at ``bench/data/SMSSpamCollection`` (ignored by git); a
copy is in many public repositories, for example ``hamzaaacodes/sms-spam-collection``.

    .venv/bin/python bench/lead_spam.py [--corpus FILE] [--accounts 5] [--seed 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api import Child, _cli, _config

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT / "bench" / "data" / "SMSSpamCollection"
TARGETS = {"false flags (%)": 0.5, "recall (%)": 90.0, "scoring p99 (ms)": 5.0,
           "POST p99 (ms)": 25.0}
FIRST = ("Ann", "Bo", "Cy", "Dee", "Ed", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kim", "Lu",
         "Max", "Nia", "Oli", "Pam", "Raj", "Sue", "Tom", "Uma", "Vic", "Wes", "Xi", "Yan")
LAST = ("Lee", "Li", "Moss", "Hill", "Ray", "Ode", "Khan", "Diaz", "Kim", "Nash", "Park",
        "Ross", "Shaw", "Tate", "Vos", "Wong", "Young", "Zhou", "Brown", "Smith")
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com")


def load(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        label, _, text = line.partition("\t")
        if label in ("ham", "spam") and text.strip():
            rows.append((label, text.strip()))
    return rows


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _rates(rows: list[tuple[str, bool]]) -> dict:
    ham = sum(1 for label, _ in rows if label == "ham")
    spam = len(rows) - ham
    false = sum(1 for label, flagged in rows if label == "ham" and flagged)
    true = sum(1 for label, flagged in rows if label == "spam" and flagged)
    return {"leads": len(rows), "real": ham, "spam": spam,
            "false_flags": false, "false_flag_pct": round(100 * false / max(ham, 1), 2),
            "precision_pct": round(100 * true / max(true + false, 1), 1),
            "recall_pct": round(100 * true / max(spam, 1), 1)}


def stream(url: str, keys: list[str], corpus: list[tuple[str, str]], rng: random.Random
           ) -> dict:
    """Every message as a lead; the simulated dealers' flags and restores."""
    outcomes: list[tuple[str, bool]] = []
    latency: list[float] = []
    ids: list[int] = []
    flags = restores = wrong = 0
    clients = [httpx.Client(base_url=url, timeout=30,
                            headers={"Authorization": f"Bearer {key}"}) for key in keys]
    for n, (label, text) in enumerate(corpus):
        client = clients[rng.randrange(len(clients))]
        first, last = rng.choice(FIRST), rng.choice(LAST)
        body = {"email": f"{first.lower()}.{last.lower()}{n}@{rng.choice(DOMAINS)}",
                "first": first, "last": last, "comments": text,
                "ip": f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}."
                      f"{rng.randrange(1, 255)}"}
        started = time.perf_counter()
        answer = client.post("/v1/leads", json=body)
        latency.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
        lead = answer.json()
        flagged = lead["status"] == "spam"
        outcomes.append((label, flagged))
        ids.append(lead["id"])
        if label == "spam" and not flagged:  # shown to the dealer, who flags it
            client.post(f"/v1/leads/{lead['id']}/flag").raise_for_status()
            flags += 1
        elif label == "ham" and flagged:  # wrongly flagged: half of them restored
            wrong += 1
            if wrong % 2 == 1:
                client.post(f"/v1/leads/{lead['id']}/restore").raise_for_status()
                restores += 1
    for client in clients:
        client.close()
    half = len(outcomes) // 2
    return {"second_half": _rates(outcomes[half:]), "whole": _rates(outcomes),
            "dealer_flags": flags, "dealer_restores": restores,
            "post_ms": {"p50": round(_pct(latency[half:], 0.5), 2),
                        "p99": round(_pct(latency[half:], 0.99), 2)},
            "second_half_ids": ids[half:]}


def scoring_time(database: str, config_path: Path, ids: list[int]) -> dict:
    """The scoring of each lead again, in this process, each in a transaction rolled back."""

    from feedback_mta import config as config_mod
    from feedback_mta.actions import SYSTEM, AuditedSession, UnitOfWork
    from feedback_mta.quality.verdict import Level, Verdict
    from feedback_mta.store import db
    from feedback_mta.store.models import Contact, Lead

    cfg = config_mod.load(config_path, env={})
    engine = db.create_engine(cfg.database)
    times = []
    try:
        for lead_id in ids:
            with AuditedSession(engine) as session:
                lead = session.get(Lead, lead_id)
                assert lead is not None
                contact = session.get(Contact, lead.contact_id)
                assert contact is not None
                verdict = Verdict(Level(contact.quality or "ok"),
                                  tuple(contact.quality_reasons or ()))
                uow = UnitOfWork(session, SYSTEM)
                started = time.perf_counter()
                uow.registration.score_lead(lead, contact, verdict, cfg.leads.auto_flag_threshold)
                session.flush()
                times.append((time.perf_counter() - started) * 1000)
                session.rollback()
    finally:
        engine.dispose()
    return {"leads": len(times), "p50": round(_pct(times, 0.5), 3),
            "p99": round(_pct(times, 0.99), 3), "mean": round(statistics.fmean(times), 3)}


def run(args: argparse.Namespace) -> dict:
    corpus = load(args.corpus)
    rng = random.Random(args.seed)
    rng.shuffle(corpus)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        database = args.database or f"sqlite:///{work / 'bench.sqlite3'}"
        config = _config(work, database)
        _cli(config, "db", "upgrade")
        keys = []
        for n in range(args.accounts):
            account = _cli(config, "account", "add", f"Dealer {n + 1}")["id"]
            keys.append(_cli(config, "key", "add", "--account", str(account))["key"])
        serve = Child([sys.executable, "-m", "feedback_mta", "serve", "--no-smtp", "--config",
                       str(config)], "http.started")
        try:
            started = time.perf_counter()
            result = stream(f"http://127.0.0.1:{serve.port}", keys, corpus, rng)
            result["stream_s"] = round(time.perf_counter() - started, 1)
        finally:
            serve.stop()
        ids = result.pop("second_half_ids")
        sample = random.Random(args.seed).sample(ids, min(1000, len(ids)))
        result["scoring_ms"] = scoring_time(database, config, sample)
        result["model"] = _cli(config, "leads", "model", "--limit", "10")
    result["corpus"] = {"file": str(args.corpus), "messages": len(corpus),
                        "spam": sum(1 for label, _ in corpus if label == "spam")}
    half = result["second_half"]
    figures = {"false flags (%)": half["false_flag_pct"], "recall (%)": half["recall_pct"],
               "scoring p99 (ms)": result["scoring_ms"]["p99"],
               "POST p99 (ms)": result["post_ms"]["p99"]}
    result["verdicts"] = {
        name: {"value": value, "target": TARGETS[name],
               "met": value >= TARGETS[name] if name == "recall (%)" else value <= TARGETS[name]}
        for name, value in figures.items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--accounts", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", help="a database URL (default: a scratch SQLite file)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"no corpus at {args.corpus}: give --corpus FILE (the tab-separated "
                 "SMSSpamCollection; see this script's docstring)")
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    c, h, w = result["corpus"], result["second_half"], result["whole"]
    print(f"corpus: {c['messages']} messages ({c['spam']} spam), {args.accounts} accounts, "
          f"streamed in {result['stream_s']} s")
    print(f"dealers flagged {result['dealer_flags']} spam leads they were shown and restored "
          f"{result['dealer_restores']} real ones flagged wrongly")
    for name, r in (("second half", h), ("whole stream", w)):
        print(f"{name:<13} false flags {r['false_flags']}/{r['real']} = "
              f"{r['false_flag_pct']}%   precision {r['precision_pct']}%   "
              f"recall {r['recall_pct']}%")
    print(f"POST /v1/leads (client) p50 {result['post_ms']['p50']} ms, p99 "
          f"{result['post_ms']['p99']} ms; scoring p50 {result['scoring_ms']['p50']} ms, "
          f"p99 {result['scoring_ms']['p99']} ms")
    for name, v in result["verdicts"].items():
        print(f"  {name:<18} {v['value']:>8}  target {v['target']:>6}: "
              f"{'met' if v['met'] else 'NOT met'}")


if __name__ == "__main__":
    main()

"""``bench/run.py`` still runs from a checkout: a short run, its figures checked
for sense, not for speed (speed is the benchmark's business, not a test's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.process
def test_the_benchmark_runs_and_every_kind_of_message_acts(tmp_path):
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--messages", "300",
         "--only", "bare,serve", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["bare"]["codes"] == {"250": 300}
    serve = result["serve"]
    assert serve["codes"] == {"250": 300} and serve["rate"] > 0
    assert 0 < serve["p50_ms"] <= serve["p99_ms"] and serve["peak_rss_mb"][0] > 20
    # serve and its processing process, both measured.
    assert len(serve["peak_rss_mb"]) == 2 and serve["cpu_ms_per_message"] > 0
    shares = serve["cpu_ms_per_process"]
    assert len(shares) == 2 and all(ms > 0 for ms in shares)
    assert abs(sum(shares) - serve["cpu_ms_per_message"]) < 0.02
    # Every part of the mix reached its handler with a genuine token: the complaints
    # were attributed, the bounces, unsubscribes and dealer replies acted.
    outcomes = serve["outcomes"]
    for reason in ("opted out (complaint)", "hard bounce", "opted out", "flagged"):
        assert outcomes.get(f"processed/{reason}", 0) > 0, outcomes
    assert sum(outcomes.values()) == 300 + 200  # the measured messages and the warm-up
    assert [name for name, *_ in result["verdicts"]] == [
        "one process / bare", "CPU per message / bare", "peak RSS per process (MB)"]


@pytest.mark.process
def test_the_api_benchmark_runs_and_every_request_is_answered(tmp_path):
    done = subprocess.run(
        [sys.executable, "bench/api.py", "--requests", "200", "--connections", "4",
         "--webhook-leads", "20", "--json", "--no-postgresql"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    everything = json.loads(done.stdout)
    result = everything["sqlite"]
    assert everything["bare"]["codes"] == {"201": 200} and result["leads"]["codes"] == {"201": 200}
    at_80 = result["leads"]["at_80"]
    assert at_80["codes"] == {"201": 200} and 0 < at_80["p50_ms"] <= at_80["p99_ms"]
    assert result["leads"]["ratio"] > 0 and result["leads"]["cpu_ms"] > 0
    hooks = result["webhooks"]
    # The subscription's first event, then per lead: contact.created,
    # contact.consent_recorded (method api) and lead.created.
    assert hooks["delivered"] == hooks["events"] == 1 + 20 * 3 and hooks["rate"] > 0
    # Signed ESP webhooks: every one answered 200 and processed (its contact unmailable),
    # the closed loop's 200 and the open loop's 200.
    assert result["hooks"]["codes"] == {"200": 200} and result["hooks"]["at_80"]["codes"] == {
        "200": 200}
    assert result["hooks"]["undeliverable"] == 2 * 200
    assert [name for name, *_ in result["verdicts"]] == [
        "leads / bare", "leads p99 at 80% (ms)", "hooks / bare", "hooks p99 at 80% (ms)",
        "hooks processed after the last 200 (s)"]


def test_the_lead_spam_benchmark_runs_in_process_on_a_committed_corpus_and_a_given_file(
        tmp_path):
    done = subprocess.run([sys.executable, "bench/lead_spam.py", "--fast", "--corpus",
                           "youtube", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    half = json.loads(done.stdout)["second_half"]
    assert half["leads"] == 978 and half["real"] + half["spam"] == 978
    assert 0 <= half["false_flag_pct"] <= 100 and half["recall_pct"] > 50
    own = tmp_path / "own.tsv"
    own.write_text("".join(f"ham\tIs the car {n} still available?\nspam\tWin cash now at "
                           f"https://win{n % 3}.example\n" for n in range(40)))
    done = subprocess.run([sys.executable, "bench/lead_spam.py", "--fast", "--corpus-file",
                           str(own), "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["whole"] | {"leads": 80, "real": 40, "spam": 40} == (
        json.loads(done.stdout)["whole"])


def test_the_lead_spam_benchmark_shows_how_well_the_scores_rank():
    done = subprocess.run([sys.executable, "bench/lead_spam.py", "--fast", "--corpus",
                           "youtube", "--ranking", "3", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    half, ranked = result["second_half"], result["ranking"]
    # 0.5% of the second half's real leads may be flagged: the score past them is the cut
    assert ranked["real_flagged_within_budget"] == int(0.005 * half["real"])
    top = [lead["score"] for lead in ranked["top_real"]]
    assert len(top) == 3 and top == sorted(top, reverse=True)
    assert top[-1] >= ranked["score_past_budget"]
    lowest = [lead["score"] for lead in ranked["lowest_spam"]]
    assert len(lowest) == 3 and lowest == sorted(lowest)
    assert all(score <= ranked["score_past_budget"] for score in lowest)
    assert ranked["best_recall_pct"] == round(
        100 * (half["spam"] - ranked["spam_under_it"]) / half["spam"], 1)
    assert all(lead["comments"] for lead in ranked["top_real"] + ranked["lowest_spam"])


def test_the_lead_spam_table_keeps_its_columns_apart(capsys):
    sys.path.insert(0, str(ROOT / "bench"))
    import lead_spam

    spread = {"min": 0.29, "median": 0.37, "max": 0.5}
    lead_spam.print_table([{"run": "youtube left out", "words": "function words",
                            "threshold": 0.97, "false_flag_pct": spread,
                            "recall_pct": {"min": 91.9, "median": 93.1, "max": 95.0},
                            "met": True}], 5)
    row = capsys.readouterr().out.splitlines()[-1]
    assert row.split() == ["youtube", "left", "out", "function", "words", "0.97", "0.29",
                           "/", "0.37", "/", "0.50", "91.9", "/", "93.1", "/", "95.0", "met"]

"""Reports: leads per day, week or source with spam leads counted apart and never in the
totals (``lead report``, ``GET /v1/reports/leads``), and the review page's charts of the
last 30 days (server-drawn SVG, no JavaScript).

Pure first (the folding into periods and sources, the window, the SVG), then the command
on a real database of each engine, the endpoint through a real server and httpx, and the
page, signed in as a contact admin, in httpx and headless Chromium.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from feedback_mta.actions import CLI, unit_of_work
from feedback_mta.config import GuardConfig
from feedback_mta.http import charts
from feedback_mta.queries import reports
from feedback_mta.queries.reports import Days, Row
from feedback_mta.store.models import Lead
from tests.cli import run
from tests.support import chromium_page
from tests.test_api import Api
from tests.test_api import api as api  # the fixture, by its name
from tests.test_cli import ok_json, ok_rows
from tests.test_review_page import SEO, Desk, _signed_in_client

SVG = "{http://www.w3.org/2000/svg}"
NOW = datetime(2026, 7, 8, 15, 30, tzinfo=UTC)  # a Wednesday


# --- pure: counting, periods, sources, the window --------------------------------------------

def test_a_spam_lead_is_counted_apart_never_as_a_lead():
    assert reports.fold([("a", "active", 3), ("a", "spam", 2), ("b", "spam", 1),
                         ("b", "active", 0)]) == {"a": (3, 2), "b": (0, 1)}


def test_days_and_weeks_have_a_row_each_the_empty_ones_too():
    counted = {"2026-06-29": (2, 1), "2026-07-01": (1, 0), "2026-07-06": (4, 4),
               "2026-07-09": (9, 9)}  # after the window's end: left out
    daily = reports.per_period(counted, date(2026, 6, 28), date(2026, 7, 8))
    assert [r.key for r in daily][:3] == ["2026-06-28", "2026-06-29", "2026-06-30"]
    assert len(daily) == 11 and daily[1] == Row("2026-06-29", 2, 1)
    assert daily[2] == Row("2026-06-30", 0, 0)
    assert sum(r.leads for r in daily) == 7 and sum(r.spam_leads for r in daily) == 5
    # Weeks are named by their Monday; the first (from a Sunday) is partial.
    weekly = reports.per_period(counted, date(2026, 6, 28), date(2026, 7, 8), weekly=True)
    assert weekly == (Row("2026-06-22", 0, 0), Row("2026-06-29", 3, 1), Row("2026-07-06", 4, 4))


def test_sources_most_leads_first_the_rest_folded_into_other():
    counted = {"192.0.2.0/24": (5, 0), "unknown": (1, 7), "198.51.100.0/24": (5, 2),
               "203.0.113.0/24": (2, 0)}
    assert reports.by_source(counted) == (
        Row("198.51.100.0/24", 5, 2), Row("192.0.2.0/24", 5, 0), Row("203.0.113.0/24", 2, 0),
        Row("unknown", 1, 7))
    folded = reports.by_source(counted, limit=2)
    assert folded[-1] == Row("other", 3, 7) and len(folded) == 3
    assert sum(r.leads for r in folded) == 13 and sum(r.spam_leads for r in folded) == 9


def test_the_window_is_bounded_and_in_utc():
    assert reports.window(None, NOW) == NOW - timedelta(days=30)
    assert reports.window(date(2026, 7, 1), NOW) == datetime(2026, 7, 1, tzinfo=UTC)
    assert reports.window(datetime(2026, 7, 1, 12), NOW) == datetime(2026, 7, 1, 12, tzinfo=UTC)
    zoned = datetime(2026, 7, 1, 2, tzinfo=timezone(timedelta(hours=3)))
    assert reports.window(zoned, NOW) == datetime(2026, 6, 30, 23, tzinfo=UTC)
    for bad, said in ((NOW + timedelta(seconds=1), "since: in the future"),
                      (NOW - timedelta(days=367), "since: at most 366 days back"),
                      # Far off, and zoned: refused, never an overflow.
                      (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=23, minutes=59))),
                       "since: at most 366 days")):
        with pytest.raises(reports.BadWindow, match=said):
            reports.window(bad, NOW)


# --- pure: the SVG ---------------------------------------------------------------------------

def _svg(chart: charts.Chart) -> ET.Element:
    root = ET.fromstring(chart.svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    return root


def _bars(root: ET.Element, series: int = 0) -> list[float]:
    return [float(r.get("height")) for r in root.iter(f"{SVG}rect")
            if r.get("class") == "bar" and r.get("data-series") == str(series)]


DAYS = ("2026-07-06", "2026-07-07", "2026-07-08")


def test_bars_are_proportional_and_the_chart_says_what_it_shows():
    chart = charts.bar_chart("Leads per day", DAYS, [
        charts.Series("leads", (2, 0, 8), "#00f"), charts.Series("spam leads", (1, 4, 0), "#999")])
    root = _svg(chart)
    leads, spam = _bars(root, 0), _bars(root, 1)
    assert leads == [charts.PLOT / 4, 0.0, charts.PLOT] and spam == [charts.PLOT / 8,
                                                                    charts.PLOT / 2, 0.0]
    assert root.get("aria-label") == root.find(f"{SVG}title").text == "Leads per day"
    assert chart.summary == root.find(f"{SVG}desc").text == (
        "Leads per day, 2026-07-06 to 2026-07-08: leads: 10 (most 8 on 2026-07-08); "
        "spam leads: 5 (most 4 on 2026-07-07).")
    assert [t.text for t in root.iter(f"{SVG}title")][1] == "2026-07-06: 2 leads"


def test_a_threshold_is_a_line_where_it_is_known():
    chart = charts.bar_chart("Complaints per day", DAYS,
                             [charts.Series("complaints", (1, 3, 0), "#808")],
                             [charts.Line("warn 0.1%", (None, 2.0, 4.0), "#e90")])
    root = _svg(chart)
    [line] = [p for p in root.iter(f"{SVG}path") if p.get("class") == "threshold"]
    # The scale takes in the line (4 at the top); no step on the first day (unknown).
    step = charts.LEFT + 1 * (charts.BAR + charts.GAP)
    top = charts.TOP + charts.PLOT
    assert line.get("d").startswith(f"M{step} {top - charts.PLOT / 2} ")
    assert _bars(root) == [charts.PLOT / 4, charts.PLOT * 3 / 4, 0.0]
    assert "warn 0.1% reached on 1 of 2 days with sends" in chart.summary
    nothing = charts.bar_chart("Complaints per day", DAYS[:1],
                               [charts.Series("complaints", (0,), "#808")],
                               [charts.Line("warn", (None,), "#e90")])
    assert not [p for p in _svg(nothing).iter(f"{SVG}path")]
    assert "warn: not known (no sends told)" in nothing.summary


def test_every_text_in_the_svg_is_escaped():
    hostile = '<script>alert("x")</script> & "quoted"'
    chart = charts.bar_chart(hostile, (hostile,), [charts.Series(hostile, (1,), '"><x')],
                             [charts.Line(hostile, (1.0,), "#000")])
    assert "<script" not in chart.svg and '"><x' not in chart.svg
    root = _svg(chart)
    assert root.get("aria-label") == root.find(f"{SVG}title").text == hostile
    assert hostile in root.find(f"{SVG}desc").text


def test_the_review_charts_hold_the_guards_lines_as_counts_of_the_days_sends():
    days = Days(days=DAYS, leads=(1, 2, 3), spam_leads=(0, 1, 0), complaints=(0, 2, 0),
                hard_bounces=(0, 0, 30), sent=(0, 1000, 1000))
    leads, complaints, bounces = charts.review_charts(days, GuardConfig())
    assert [len(_bars(_svg(leads), s)) for s in (0, 1)] == [3, 3]
    assert "reached" not in leads.summary
    # 0.1% and 0.3% of 1000 sends: 1 and 3 complaints; 2% and 5%: 20 and 50 bounces.
    assert "warn 0.1% reached on 1 of 2 days" in complaints.summary
    assert "pause 0.3% reached on 0 of 2 days" in complaints.summary
    assert "warn 2.0% reached on 1 of 2 days" in bounces.summary
    assert len([p for p in _svg(bounces).iter(f"{SVG}path")]) == 2


# --- the command, on a real database -----------------------------------------------------------

def _lead(path, account: int, n: int, ip: str, comments: str = "call me") -> dict:
    return ok_json(path, "lead", "add", "--account", str(account), "--email",
                   f"p{n}@people.test", "--first", "Ann", "--last", "Lee", "--ip", ip,
                   "--comments", comments)


def _age(engine, lead_id: int, days: int) -> None:
    """Move a lead's arrival ``days`` back (as if it came then)."""
    table = Lead.__table__
    with engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.id == lead_id).values(
            created_at=datetime.now(UTC) - timedelta(days=days)))


def test_lead_report_leaves_spam_out_of_every_total(config_file, engine):
    with unit_of_work(engine, CLI) as uow:
        account, other = uow.accounts.add("Dealer").id, uow.accounts.add("Elsewhere").id
    path = config_file
    buyer = _lead(path, account, 1, "192.0.2.10")
    _lead(path, account, 2, "192.0.2.11")
    by_dealer = _lead(path, account, 3, "198.51.100.7")
    by_system = _lead(path, account, 4, "198.51.100.8", SEO)   # flagged as it arrived
    restored = _lead(path, account, 5, "203.0.113.9")
    _lead(path, other, 6, "192.0.2.12")                         # another account's
    assert by_system["status"] == "spam" and by_system["flagged_via"] == "auto"
    ok_json(path, "lead", "flag", str(by_dealer["id"]), "--by", "email:boss@dealer.test")
    ok_json(path, "lead", "flag", str(restored["id"]))
    ok_json(path, "lead", "restore", str(restored["id"]))
    _age(engine, buyer["id"], 8)
    _age(engine, by_dealer["id"], 8)
    today = datetime.now(UTC).date()

    daily = ok_rows(path, "lead", "report", "--account", str(account))
    assert len(daily) == 31 and daily[-1]["key"] == today.isoformat()
    assert {"key": (today - timedelta(days=8)).isoformat(), "leads": 1,
            "spam_leads": 1} in daily
    assert daily[-1] == {"key": today.isoformat(), "leads": 2, "spam_leads": 1}
    assert sum(r["leads"] for r in daily) == 3 and sum(r["spam_leads"] for r in daily) == 2

    weekly = ok_rows(path, "lead", "report", "--account", str(account), "--by", "week")
    assert all(date.fromisoformat(r["key"]).weekday() == 0 for r in weekly)
    assert (sum(r["leads"] for r in weekly), sum(r["spam_leads"] for r in weekly)) == (3, 2)

    sources = ok_rows(path, "lead", "report", "--account", str(account), "--by", "source")
    assert sources == [{"key": "192.0.2.0/24", "leads": 2, "spam_leads": 0},
                       {"key": "203.0.113.0/24", "leads": 1, "spam_leads": 0},
                       {"key": "198.51.100.0/24", "leads": 0, "spam_leads": 2}]

    # --since: the leads moved back are outside a week's window.
    recent = ok_rows(path, "lead", "report", "--account", str(account), "--since", "7d")
    assert (sum(r["leads"] for r in recent), sum(r["spam_leads"] for r in recent)) == (2, 1)

    table = run(path, "lead", "report", "--account", str(account), "--by", "source")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["SOURCE", "LEADS", "SPAM_LEADS"]
    assert lines[-1].split() == ["total", "3", "2"]


@pytest.mark.parametrize(("args", "said"), [
    (("--by", "month"), "--by: expected day, week or source, got 'month'"),
    (("--since", "2001-01-01"), "--since: at most 366 days back"),
    (("--since", "yesterday-ish"), "--since: expected an ISO date"),
])
def test_lead_report_refuses_what_it_cannot_report(config_file, engine, args, said):
    with unit_of_work(engine, CLI) as uow:
        account = uow.accounts.add("Dealer").id
    result = run(config_file, "lead", "report", "--account", str(account), *args)
    assert result.returncode == 2 and result.stdout == "" and said in result.stderr
    missing = run(config_file, "lead", "report", "--account", "999")
    assert missing.returncode == 1 and "no account 999" in missing.stderr


# --- the endpoint --------------------------------------------------------------------------------

def test_the_report_endpoint_answers_what_the_command_prints_to_its_own_account(api: Api):
    for i, comments in enumerate(("call me", SEO, "is it available?")):
        assert api.client.post("/v1/leads", json={
            "email": f"r{i}@people.test", "first": "Ann", "last": "Lee",
            "ip": f"192.0.2.{i + 1}", "comments": comments}).status_code == 201
    answer = api.client.get("/v1/reports/leads", params={"by": "source"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["account_id"], body["by"], body["leads"], body["spam_leads"]) == (
        api.account, "source", 2, 1)
    assert body["rows"] == [{"key": "192.0.2.0/24", "leads": 2, "spam_leads": 1}]
    assert body["rows"] == ok_rows(api.path, "lead", "report", "--account", str(api.account),
                                   "--by", "source")
    assert body["since"].endswith("Z") and body["until"].endswith("Z")
    daily = api.client.get("/v1/reports/leads", params={
        "since": (datetime.now(UTC) - timedelta(days=2)).date().isoformat()}).json()
    assert len(daily["rows"]) == 3 and (daily["leads"], daily["spam_leads"]) == (2, 1)
    # The all-accounts key names the account; it sees the same.
    everyone = api.as_(api.all_key)
    assert everyone.get("/v1/reports/leads", params={
        "account_id": api.account, "by": "source"}).json()["rows"] == body["rows"]


def test_the_report_endpoint_is_scoped_and_bounded(api: Api):
    from tests.test_api import _problem

    other = api.as_(api.other_key)
    assert _problem(other.get("/v1/reports/leads", params={"account_id": api.account}),
                    404)["detail"] == f"no account {api.account}"
    assert other.get("/v1/reports/leads").json()["account_id"] == api.other
    _problem(api.as_(None).get("/v1/reports/leads"), 401)
    _problem(api.as_("fmk_nope").get("/v1/reports/leads"), 401)
    everyone = api.as_(api.all_key)
    assert _problem(everyone.get("/v1/reports/leads"), 422)["errors"][0]["loc"] == [
        "query", "account_id"]
    _problem(everyone.get("/v1/reports/leads", params={"account_id": 99999}), 404)
    for params, where in (({"since": "2001-01-01"}, "since"),
                          ({"since": "9999-12-31T23:59:59-23:59"}, "since"),
                          ({"since": "0001-01-01T00:00:00+23:59"}, "since"),
                          ({"since": "not a date"}, "since"),
                          ({"by": "month"}, "by"),
                          ({"account_id": 2**31}, "account_id")):
        body = _problem(api.client.get("/v1/reports/leads", params=params), 422)
        assert body["errors"] and body["errors"][0]["loc"] == ["query", where], body


# --- the review page -----------------------------------------------------------------------------

@pytest.fixture
def desk(tmp_path, database_url, server_factory, relay):
    return Desk(tmp_path, database_url, server_factory, relay)


def _complaint(desk: Desk) -> None:
    """A complaint about the buyer's contact, recorded as a feedback loop's is."""
    from feedback_mta import config as config_mod
    from feedback_mta.store import db

    engine = db.create_engine(config_mod.load(desk.path, env={}).database)
    try:
        with unit_of_work(engine, CLI) as uow:
            contact = uow.contacts.get(desk.buyer["contact_id"])
            uow.feedback.record_report(contact, "abuse", "arf", "token")
    finally:
        engine.dispose()


def test_the_review_page_charts_the_accounts_last_30_days(desk):
    ok_json(desk.path, "account", "sent", str(desk.account), "1000")
    _complaint(desk)
    client = _signed_in_client(desk)
    page = client.get("/review/").text
    svgs = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert len(svgs) == 3  # boss reviews one account: three charts
    leads, complaints, bounces = (ET.fromstring(s) for s in svgs)
    today = datetime.now(UTC).date().isoformat()
    # Today: the buyer's lead, and the spam one apart; the other account's never.
    assert _bars(leads, 0)[-1] == _bars(leads, 1)[-1] == charts.PLOT
    assert f"leads: 1 (most 1 on {today}); spam leads: 1 (most 1 on {today})" in page
    assert complaints.get("aria-label") == "Complaints per day"
    assert len([p for p in complaints.iter(f"{SVG}path")]) == 2  # warn and pause lines
    assert "warn 0.1% reached on 1 of 1 days with sends" in page
    assert bounces.get("aria-label") == "Hard bounces per day"
    assert "<script" not in page

    cookie = client.cookies.get("fm_review")
    with chromium_page() as browser:
        browser.context.add_cookies([{"name": "fm_review", "value": cookie,
                                      "url": desk.url + "/review/"}])
        assert browser.goto(desk.url + "/review/").status == 200
        drawn = browser.get_by_role("img", name="Leads per day")
        box = drawn.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100
        assert browser.locator("svg rect.bar").count() == 4 * 30
        assert browser.get_by_role("img", name="Complaints per day").is_visible()

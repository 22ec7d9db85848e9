"""The account guard: complaint and hard-bounce rates against warn and pause lines.

The verdict is a pure function (a table of figures); then a real ``serve`` whose scheduler
checks every second takes signed complaints over HTTP until the account is warned, then
paused, and ``account resume`` clears it; the CLI, the API and the audit trail agree.
"""

from __future__ import annotations

import httpx
import pytest

from feedback_mta import tokens
from feedback_mta.config import GuardConfig
from feedback_mta.jobs.guard import verdict
from tests.conftest import SECRET
from tests.support import wait_until
from tests.test_cli import ok_json, run
from tests.test_hooks import MAILGUN_KEY, _hooks, _mailgun

LINES = GuardConfig(min_sent=1000)


@pytest.mark.parametrize(("sent", "complaints", "bounces", "state", "because"), [
    (999, 50, 50, "ok", ()),                                  # too few sent to judge
    (1000, 0, 0, "ok", ()),
    (1000, 0, 19, "ok", ()),
    (1000, 1, 0, "warned", ("complaint rate 0.100% >= 0.100% (1 of 1000)",)),
    (1000, 2, 20, "warned", ("complaint rate 0.200% >= 0.100% (2 of 1000)",
                             "hard-bounce rate 2.000% >= 2.000% (20 of 1000)")),
    (1000, 3, 0, "paused", ("complaint rate 0.300% >= 0.300% (3 of 1000)",)),
    (1000, 1, 50, "paused", ("hard-bounce rate 5.000% >= 5.000% (50 of 1000)",
                             "complaint rate 0.100% >= 0.100% (1 of 1000)")),
    (100000, 99, 1999, "ok", ()),
])
def test_the_verdict_follows_the_lines(sent, complaints, bounces, state, because):
    figures = {"sent": sent, "complaints": complaints, "hard_bounces": bounces}
    advice = verdict(figures, LINES)
    assert (advice.state, advice.reasons) == (state, because)


def test_the_guard_warns_pauses_and_resumes(tmp_path, database_url, server_factory):
    hooks = _hooks(tmp_path, database_url, server_factory,
                   sections={"guard": {"min_sent": 100, "complaint_warn": 0.01,
                                       "complaint_pause": 0.03, "check_interval": "1s"}},
                   mailgun={"signing_key": MAILGUN_KEY})
    account = str(hooks.account)
    key = ok_json(hooks.path, "key", "add", "--account", account)["key"]
    api = httpx.Client(base_url=hooks.url, headers={"Authorization": f"Bearer {key}"})
    ok_json(hooks.path, "account", "sent", account, "100")

    def complain(n: int) -> None:
        contact = hooks.contact(f"c{n}@people.test")
        token = tokens.make(SECRET, tokens.Purpose.FEEDBACK, contact)
        body = _mailgun("complained.json", recipient=f"c{n}@people.test", token=token,
                        event_id=f"complaint-{n}")
        assert hooks.client.post("/hooks/mailgun", content=body).status_code == 200

    def sending() -> str:
        return ok_json(hooks.path, "account", "show", account)["sending"]

    complain(1)
    hooks.done(1)
    wait_until(lambda: sending() == "warned", what="warned")
    shown = ok_json(hooks.path, "account", "show", account)
    assert shown["sending_reasons"] == ["complaint rate 1.000% >= 1.000% (1 of 100)"]
    assert (shown["figures"]["sent"], shown["figures"]["complaints"]) == (100, 1)

    complain(2)
    complain(3)
    hooks.done(3)
    wait_until(lambda: sending() == "paused", what="paused")
    over_http = api.get(f"/v1/accounts/{account}").json()
    assert over_http["sending"] == "paused"
    assert over_http["figures"]["complaint_rate"] == 0.03
    assert api.get(f"/v1/accounts/{hooks.other}").status_code == 404
    [warned] = hooks.events("account.warned")
    [paused] = hooks.events("account.paused")
    assert (paused["actor"], paused["data"]["previous"], paused["data"]["complaints"]) == (
        "scheduler", "warned", 3)
    assert warned["id"] < paused["id"]

    resumed = ok_json(hooks.path, "account", "resume", account)
    assert (resumed["sending"], resumed["changed"]) == ("ok", True)
    assert ok_json(hooks.path, "account", "resume", account)["changed"] is False
    # Counted afresh from the resume: the old complaints no longer pause it.
    assert ok_json(hooks.path, "account", "guard")["changed"] == 0
    assert sending() == "ok"
    assert len(hooks.events("account.paused")) == 1
    assert [e["actor"] for e in hooks.events("account.resumed")] == ["cli"]
    # Every change goes out like any event: the feed (and so the webhooks) carry them.
    feed = api.get("/v1/events", params={"type": "account.*"}).json()["events"]
    assert [e["type"] for e in feed] == ["account.created", "account.sent_recorded",
                                         "account.warned", "account.paused", "account.resumed"]
    assert feed[3]["data"]["reason"] == "complaint rate 3.000% >= 3.000% (3 of 100)"
    assert run(hooks.path, "account", "resume", "999").returncode != 0
    hooks.engine.dispose()

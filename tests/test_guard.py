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


def test_every_accounts_figures_in_one_read_are_each_accounts_own(engine):
    """The guard reads every account's figures with grouped queries; each must be what
    ``account show`` reads for that account alone (resumed accounts included)."""
    import sqlalchemy as sa

    from feedback_mta import events
    from feedback_mta.actions import CLI, unit_of_work
    from feedback_mta.actions.accounts import every_guard_figures, guard_figures
    from feedback_mta.store.models import Account, utcnow

    now = utcnow()
    day = now.date().isoformat()
    with unit_of_work(engine, CLI) as uow:
        ids = [uow.accounts.add(f"A{i}").id for i in range(4)]
        for n, account_id in enumerate(ids):
            uow.accounts.add_sent(account_id, day, 100 * (n + 1))
            for _ in range(n):
                uow.recorder.record(events.CONTACT_COMPLAINED, "contact", 1, account_id)
            for _ in range(2 * n):
                uow.recorder.record(events.CONTACT_HARD_BOUNCED, "contact", 1, account_id)
            uow.recorder.record(events.CONTACT_SOFT_BOUNCED, "contact", 1, account_id)
    with unit_of_work(engine, CLI) as uow:
        uow.accounts.advise(ids[2], "paused", ["test"], {})
        uow.accounts.resume(ids[2])  # counts from now: nothing yet
        uow.recorder.record(events.CONTACT_COMPLAINED, "contact", 1, ids[2])
    with engine.connect() as conn:
        every = every_guard_figures(conn, 86400.0, utcnow())
    later = utcnow()
    with engine.connect() as conn:
        alone = {account.id: guard_figures(conn, account, 86400.0, later)
                 for account in conn.execute(sa.select(Account.__table__))}
    assert [account_id for account_id, _, _ in every] == ids
    for account_id, sending, figures in every:
        mine = alone[account_id]
        assert (figures["sent"], figures["complaints"], figures["hard_bounces"]) == (
            mine["sent"], mine["complaints"], mine["hard_bounces"]), account_id
        assert sending == "ok"
    assert [f["complaints"] for _, _, f in every] == [0, 1, 1, 3]
    assert [f["hard_bounces"] for _, _, f in every] == [0, 2, 0, 6]

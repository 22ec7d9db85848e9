"""New leads scored as they arrive: form spam and known-bad contacts' leads are flagged by
the system before the platform forwards or exports them; buyers' leads are not.

Through the real API (``POST /v1/leads``) and the command line (``lead add``, ``lead
export``), on a real database of each engine.
"""

from __future__ import annotations

from feedback_mta.actions import CLI, unit_of_work
from tests.conftest import write_config
from tests.test_api import api  # noqa: F401 (the fixture)
from tests.test_cli import ok_json, ok_rows

SEO = ("Hi! I can get your website on the first page of Google with our SEO services. "
       "See http://bit.ly/3xYz and http://seo-agency.example/offer")
BUYER = "Is the 2019 Civic still available? Can I test drive it Saturday?"


def test_a_spam_lead_is_flagged_as_it_arrives_and_a_buyer_s_is_not(api):  # noqa: F811
    spam = api.client.post("/v1/leads", json={"email": "pitch@agency.test", "first": "Sam",
                                              "last": "Hill", "comments": SEO})
    buyer = api.client.post("/v1/leads", json={"email": "ann@people.test", "first": "Ann",
                                               "last": "Lee", "comments": BUYER})
    assert spam.status_code == buyer.status_code == 201
    spam, buyer = spam.json(), buyer.json()
    assert (spam["status"], spam["notify"], spam["flagged_via"]) == ("spam", False, "auto")
    assert spam["spam_score"] >= 0.9 and "seo pitch" in spam["spam_reasons"]
    assert (buyer["status"], buyer["notify"], buyer["flagged_via"]) == ("active", True, None)
    assert buyer["spam_score"] == 0.0 and buyer["spam_reasons"] == []

    [flagged] = api.events("lead.flagged_spam")
    assert (flagged["subject_id"], flagged["actor"], flagged["via"]) == (
        spam["id"], "system", "auto")
    assert flagged["data"]["score"] == spam["spam_score"]
    created = [e for e in api.events("lead.created") if e["subject_id"] == spam["id"]]
    assert [(e["actor"], e["via"]) for e in created] == [(f"api:key{1}", "api")]
    assert api.client.get(f"/v1/leads/{spam['id']}").json()["spam_reasons"] == spam[
        "spam_reasons"]

    to_review = ok_rows(api.path, "lead", "list", "--status", "spam", "--via", "auto")
    assert [(row["id"], row["spam_score"]) for row in to_review] == [
        (spam["id"], spam["spam_score"])]
    assert ok_rows(api.path, "lead", "list", "--status", "spam", "--via", "email") == []
    exported = ok_rows(api.path, "lead", "export", "--account", str(api.account))
    assert [row["id"] for row in exported] == [buyer["id"]]
    # A person restores it: then it goes out like any lead.
    assert api.client.post(f"/v1/leads/{spam['id']}/restore").json()["status"] == "active"
    exported = ok_rows(api.path, "lead", "export", "--account", str(api.account))
    assert [row["id"] for row in exported] == [spam["id"]]


def test_a_known_bad_contact_s_lead_is_never_exported(api):  # noqa: F811
    account = str(api.account)
    bot = ok_json(api.path, "lead", "add", "--account", account, "--email", "x@people.test",
                  "--first", "Xkqzvwpt", "--last", "Jhgfdsa", "--comments", "asdasd")
    assert (bot["status"], bot["notify"], bot["quality"]) == ("spam", False, "invalid")
    assert bot["spam_score"] == 1.0 and bot["spam_reasons"][0] == "known bad contact"
    later = ok_json(api.path, "lead", "add", "--account", account, "--email", "liz@people.test",
                    "--first", "Liz", "--last", "Ray", "--comments", BUYER)
    assert later["notify"] is True
    # Known to be a bot's only after its lead came: its lead stays active, and unexported.
    with unit_of_work(api.engine, CLI) as act:
        act.mark_invalid(act.contact(later["contact_id"]), ["found out later"])
    assert ok_rows(api.path, "lead", "export", "--account", account) == []


def test_the_threshold_is_the_config_s(tmp_path, sqlite_url):
    path = write_config(tmp_path / "c.toml", sqlite_url, leads={"auto_flag_threshold": 1.0})
    ok_json(path, "db", "upgrade")
    account = str(ok_json(path, "account", "add", "Dealer")["id"])
    pitch = ok_json(path, "lead", "add", "--account", account, "--email", "p@agency.test",
                    "--first", "Sam", "--last", "Hill", "--comments", SEO)
    assert (pitch["status"], pitch["notify"]) == ("active", True) and pitch["spam_score"] >= 0.9
    bot = ok_json(path, "lead", "add", "--account", account, "--email", "x@people.test",
                  "--first", "Xkqzvwpt", "--last", "Jhgfdsa")
    assert bot["status"] == "spam"  # 1.0: only known-bad contacts' leads

"""Consent where contacts are made, shown and proved, on both engines: ``contact add``,
``lead add`` and ``contact import`` with ``--consent-method`` and ``--source``, the API's
``"consent"`` on ``POST /v1/contacts`` and ``/v1/leads`` (through a real ``serve`` and
httpx), ``contact consent`` and ``GET /v1/contacts/{id}/consent``, a known-bad or pending
contact that no opt-in lifts, complaints by consent method in the guard's figures, and
``check-config`` counting contacts of unknown consent."""

from __future__ import annotations

import re

import pytest

from feedback_mta.actions import CLI, unit_of_work
from feedback_mta.actions.accounts import every_guard_figures
from feedback_mta.actions.consent import Evidence
from feedback_mta.store.states import ConfirmedVia
from tests.cli import run
from tests.test_api import Api, _problem
from tests.test_api import api as api  # the fixture, by its name
from tests.test_cli import ok_json, ok_rows


@pytest.fixture
def account(config_file) -> int:
    return ok_json(config_file, "account", "add", "Dealer One")["id"]


def _add(config_file, account: int, email: str, *extra: str) -> dict:
    return ok_json(config_file, "contact", "add", "--account", str(account), "--email", email,
                   "--first", "Ann", "--last", "Lee", *extra)


def test_the_add_commands_keep_how_the_contact_came(config_file, account):
    social = _add(config_file, account, "ann@people.test", "--consent-method", "social",
                  "--source", "linkedin connections")
    assert (social["status"], social["mailable"], social["not_mailable_reason"]) == (
        "pending", False, "unconfirmed")
    assert social["consent"]["method"] == "social"
    assert social["consent"]["source"] == "linkedin connections"
    assert social["consent"]["at"] and social["consent"]["confirm_by"]
    shown = ok_json(config_file, "contact", "show", str(social["id"]))
    assert shown["consent"] == social["consent"]

    # Nothing said: nothing claimed (unknown), and mailable as before.
    plain = _add(config_file, account, "bo@people.test")
    assert (plain["status"], plain["consent"]["method"], plain["consent"]["at"]) == (
        "active", "unknown", None)

    # A lead of a new contact from a bought list is registered; its contact waits.
    lead = ok_json(config_file, "lead", "add", "--account", str(account), "--email",
                   "cy@people.test", "--first", "Cy", "--last", "Po", "--consent-method",
                   "purchased", "--source", "list vendor 7")
    assert (lead["status"], lead["contact_status"]) == ("active", "pending")
    form = ok_json(config_file, "lead", "add", "--account", str(account), "--email",
                   "di@people.test", "--first", "Di", "--last", "Ng", "--consent-method",
                   "form", "--source", "https://dealer.test/contact")
    assert form["contact_status"] == "active"
    assert ok_json(config_file, "contact", "show", str(form["contact_id"]))["consent"][
        "source"] == "https://dealer.test/contact"

    pending = ok_rows(config_file, "contact", "list", "--status", "pending")
    assert [c["id"] for c in pending] == [social["id"], lead["contact_id"]]
    bad = run(config_file, "contact", "add", "--account", str(account), "--email",
              "ed@people.test", "--consent-method", "linkedin")
    assert bad.returncode == 2 and "linkedin" in bad.stderr
    long = run(config_file, "contact", "add", "--account", str(account), "--email",
               "ed@people.test", "--source", "x" * 501)
    assert long.returncode == 2 and "--source: at most 500" in long.stderr


def test_an_import_is_one_its_new_contacts_wait_and_the_existing_keep_their_record(
        config_file, account, tmp_path):
    _add(config_file, account, "ann@people.test", "--consent-method", "form")
    path = tmp_path / "list.csv"
    path.write_text("email,first,last\nann@people.test,Ann,Lee\nbo@people.test,Bo,Li\n")
    done = ok_json(config_file, "contact", "import", str(path), "--account", str(account),
                   "--source", "crm export 2026-11")
    assert (done["created"], done["existing"], done["pending"]) == (1, 1, 1)
    rows = {c["email"]: c for c in ok_rows(config_file, "contact", "list")}
    assert (rows["ann@people.test"]["status"], rows["ann@people.test"]["consent"]["method"]) \
        == ("active", "form")  # a person who filled in a form is not demoted
    assert (rows["bo@people.test"]["status"], rows["bo@people.test"]["consent"]["method"],
            rows["bo@people.test"]["consent"]["source"]) == (
        "pending", "import", "crm export 2026-11")

    path.write_text("email,first,last\ncy@people.test,Cy,Po\n")
    told = ok_json(config_file, "contact", "import", str(path), "--account", str(account),
                   "--consent-method", "double_opt_in", "--source", "shop newsletter")
    assert told["pending"] == 0
    cy = ok_rows(config_file, "contact", "list", "--email", "cy@people.test")[0]
    assert (cy["status"], cy["consent"]["method"]) == ("active", "double_opt_in")
    table = run(config_file, "contact", "import", str(path), "--account", str(account))
    assert "0 awaiting confirmation" in table.stdout


def test_the_proof_shows_the_record_the_evidence_and_the_events_in_order(
        config_file, account, engine):
    contact = _add(config_file, account, "ann@people.test", "--consent-method", "social",
                   "--source", "linkedin")
    with unit_of_work(engine, CLI) as uow:
        uow.consent.confirm(uow.contacts.get(contact["id"]), Evidence(
            ConfirmedVia.LINK, {"ip": "192.0.2.9", "user_agent": "Firefox"}))
    ok_json(config_file, "contact", "optout", str(contact["id"]), "--reason", "asked")
    proof = ok_json(config_file, "contact", "consent", str(contact["id"]))
    assert (proof["method"], proof["source"], proof["confirmed_via"]) == (
        "social", "linkedin", "link")
    assert proof["at"] and proof["confirmed_at"] and proof["confirm_by"] is None
    assert proof["evidence"] == {"ip": "192.0.2.9", "user_agent": "Firefox"}
    assert [(e["type"], e["reason"]) for e in proof["events"]] == [
        ("contact.consent_recorded", None), ("contact.confirmed", None),
        ("contact.opted_out", "asked")]
    assert proof["events"][0]["data"]["pending"] is True
    assert proof["events"][1]["data"]["confirmed_via"] == "link"
    assert proof["events"][0]["actor"] == "cli" and proof["events"][0]["via"] == "cli"
    people = run(config_file, "contact", "consent", str(contact["id"]))
    assert people.returncode == 0 and "contact.confirmed" in people.stdout
    assert re.search(r"^ID +TYPE +AT +ACTOR", people.stdout, re.M), people.stdout
    missing = run(config_file, "contact", "consent", "999")
    assert missing.returncode == 1 and "no contact 999" in missing.stderr


def test_an_admin_cannot_opt_in_a_pending_contact(config_file, account):
    contact = _add(config_file, account, "ann@people.test", "--consent-method", "import")
    refused = run(config_file, "contact", "optin", str(contact["id"]), "--reason", "sure")
    assert refused.returncode == 1 and "pending" in refused.stderr
    assert ok_json(config_file, "contact", "show", str(contact["id"]))["status"] == "pending"


def _known_bad_after_unsubscribing(engine, account: int, email: str) -> int:
    """A contact that unsubscribed, then was found bad (a later check): its opt-out's
    reason is the unsubscribe's, its verdict known bad."""
    with unit_of_work(engine, CLI) as uow:
        contact, _ = uow.contacts.add(account, email, "Ann", "Lee")
        uow.contacts.opt_out(contact, "unsubscribe")
        uow.quality.mark_invalid(contact, ["name: not a person's"])
        assert contact.id is not None
        return contact.id


def test_a_known_bad_contact_is_opted_in_again_only_once_verified(config_file, account,
                                                                   engine):
    contact_id = _known_bad_after_unsubscribing(engine, account, "ann@people.test")
    refused = run(config_file, "contact", "optin", str(contact_id), "--reason", "asked")
    assert refused.returncode == 1, refused.stdout
    assert "known-bad" in refused.stderr and "contact verify" in refused.stderr
    assert ok_json(config_file, "contact", "show", str(contact_id))["status"] == "opted_out"
    ok_json(config_file, "contact", "verify", str(contact_id))
    lifted = ok_json(config_file, "contact", "optin", str(contact_id), "--reason", "asked")
    assert (lifted["changed"], lifted["status"], lifted["mailable"]) == (True, "active", True)


def test_the_api_refuses_to_lift_a_known_bad_contact_until_verified(api: Api):
    contact_id = _known_bad_after_unsubscribing(api.engine, api.account, "ann@people.test")
    body = _problem(api.client.delete("/v1/suppressions/ann@people.test"), 409)
    assert "known-bad" in body["detail"]
    assert api.client.post(f"/v1/contacts/{contact_id}/verify").status_code == 200
    lifted = api.client.delete("/v1/suppressions/ann@people.test")
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["mailable"] is True


def test_the_api_keeps_the_consent_given_and_api_when_none(api: Api):
    given = {"method": "social", "source": "linkedin", "at": "2026-11-01T10:00:00+01:00",
             "ip": "2001:db8::1", "user_agent": "Mozilla/5.0"}
    made = api.client.post("/v1/contacts", json={"email": "ann@people.test", "first": "Ann",
                                                  "last": "Lee", "consent": given})
    assert made.status_code == 201, made.text
    contact = made.json()
    assert (contact["status"], contact["not_mailable_reason"]) == ("pending", "unconfirmed")
    assert contact["consent"]["at"] == "2026-11-01T09:00:00Z"
    proof = api.client.get(f"/v1/contacts/{contact['id']}/consent")
    assert proof.status_code == 200, proof.text
    assert (proof.json()["ip"], proof.json()["user_agent"]) == ("2001:db8::1", "Mozilla/5.0")
    # One query for both: the command line prints what the API answers.
    assert proof.json() == ok_json(api.path, "contact", "consent", str(contact["id"]))
    assert api.client.get(f"/v1/contacts/{contact['id']}").json()["consent"] == \
        contact["consent"]
    _problem(api.as_(api.other_key).get(f"/v1/contacts/{contact['id']}/consent"), 404)

    # A lead without consent: its new contact came by the API; a pending one's lead exists.
    lead = api.client.post("/v1/leads", json={"email": "bo@people.test", "first": "Bo",
                                               "last": "Li"})
    assert lead.status_code == 201 and lead.json()["contact_status"] == "active"
    assert api.client.get(f"/v1/contacts/{lead.json()['contact_id']}").json()[
        "consent"]["method"] == "api"
    again = api.client.post("/v1/leads", json={"email": "ann@people.test", "first": "Ann",
                                                "last": "Lee"})
    assert again.status_code == 201 and again.json()["contact_status"] == "pending"
    bought = api.client.post("/v1/leads", json={"email": "cy@people.test", "consent": {
        "method": "purchased"}})
    assert bought.status_code == 201 and bought.json()["contact_status"] == "pending"

    listed = api.client.get("/v1/contacts", params={"status": "pending"}).json()["contacts"]
    assert [c["email"] for c in listed] == ["ann@people.test", "cy@people.test"]
    suppressed = {s["email"]: s["reason"] for s in
                  api.client.get("/v1/suppressions").json()["suppressions"]}
    assert suppressed == {"ann@people.test": "unconfirmed", "cy@people.test": "unconfirmed"}


@pytest.mark.parametrize(("consent", "field"), [
    ({"method": "linkedin"}, "method"),
    ({"source": "x" * 501}, "source"),
    ({"source": "list\u0000"}, "source"),
    ({"ip": "999.1.1.1"}, "ip"),
    ({"user_agent": "x" * 1001}, "user_agent"),
    ({"at": "0001-01-01T00:00:00+05:00"}, "at"),
    ({"at": "yesterday"}, "at"),
])
def test_bad_consent_is_a_422_naming_its_field(api: Api, consent, field):
    for path in ("/v1/contacts", "/v1/leads"):
        answer = api.client.post(path, json={"email": "ann@people.test", "consent": consent})
        body = _problem(answer, 422)
        assert ["body", "consent", field] in [e["loc"][:3] for e in body["errors"]], body
    assert api.client.get("/v1/contacts").json()["contacts"] == []


def test_complaints_are_counted_by_consent_method_in_one_read(api: Api):
    with unit_of_work(api.engine, CLI) as uow:
        for email, method in (("a@people.test", "import"), ("b@people.test", "import"),
                              ("c@people.test", "form"), ("d@people.test", None)):
            contact, _ = uow.contacts.add(api.account, email)
            if method:
                contact.consent_method = method
            uow.feedback.record_report(contact, "abuse", "arf", "token")
    expected = {"form": 1, "import": 2, "unknown": 1}
    shown = ok_json(api.path, "account", "show", str(api.account))
    assert shown["figures"]["complaints"] == 4
    assert shown["figures"]["complaints_by_consent"] == expected
    over_http = api.client.get(f"/v1/accounts/{api.account}").json()
    assert over_http["figures"]["complaints_by_consent"] == expected
    with api.engine.connect() as conn:
        every = {a: f for a, _, f in every_guard_figures(conn, 7 * 86400.0)}
    assert every[api.account]["complaints_by_consent"] == expected
    assert every[api.other]["complaints_by_consent"] == {}
    people = run(api.path, "account", "show", str(api.account)).stdout
    assert "complaints_by_consent" in people and "import" in people


def test_check_config_counts_the_contacts_of_unknown_consent_only_when_there_are_some(
        config_file, account):
    _add(config_file, account, "ann@people.test", "--consent-method", "form")
    quiet = ok_json(config_file, "check-config")
    assert not [w for w in quiet["warnings"] if "consent method unknown" in w]
    _add(config_file, account, "bo@people.test")
    _add(config_file, account, "cy@people.test")
    told = ok_json(config_file, "check-config")
    assert next(w for w in told["warnings"] if "consent method unknown" in w).startswith(
        "2 contacts with consent method unknown")

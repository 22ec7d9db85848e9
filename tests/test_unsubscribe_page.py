"""The unsubscribe page a person sees who clicks the link in a mail (``/u/TOKEN``): whose
mail and which address, a confirmation after the click, a resubscribe for a while after,
and errors as pages for browsers (problem+json for everyone else).

The decisions are pure functions first; then a real ``serve`` with httpx and Chromium.
RFC 8058's own one-click behaviour is tested in ``test_hooks``.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from feedback_mta import config as config_mod
from feedback_mta import events as names
from feedback_mta.actions import CLI, Actor, unit_of_work
from feedback_mta.actions.contacts import (
    OptOutFacts,
    Resubscribe,
    resubscribe_verdict,
)
from feedback_mta.addresses import AddressBook
from feedback_mta.edge.intake import Arrival, Intake
from feedback_mta.http.pages import prefers_html
from feedback_mta.queries.unsubscribe import mask
from feedback_mta.reading.hooks import one_click
from feedback_mta.service.process import process_one
from feedback_mta.store.models import Event
from tests.support import chromium_page
from tests.test_hooks import Hooks, _hooks, _unsubscribe_url

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
CLICK = {"List-Unsubscribe": "One-Click"}
RESUBSCRIBE = {"resubscribe": "yes"}
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


# --- pure --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("accept", "html"), [
    (BROWSER["Accept"], True),                       # Chromium, Firefox
    ("text/html", True),
    ("text/*, application/json;q=0.5", True),
    ("", False),                                     # a mail client's one-click POST
    ("*/*", False),                                  # curl
    ("application/json", False),
    ("application/problem+json, text/html;q=0.9", False),
    ("text/html;q=0.5, application/json", False),
    ("text/html;q=oops, */*", False),                # a quality that is no number: 0
])
def test_a_browser_is_told_apart_from_an_api_client_by_accept(accept, html):
    assert prefers_html(accept) is html


@pytest.mark.parametrize(("email", "shown"), [
    ("jane@example.com", "j***@example.com"),
    ("j@example.com", "j***@example.com"),
    ("\"odd@local\"@example.com", "\"***@example.com"),
    ("not-an-address", "***"),
])
def test_the_address_is_shown_partly_masked(email, shown):
    assert mask(email) == shown


def _facts(**changes) -> OptOutFacts:
    facts = {"status": "opted_out", "opt_out_reason": "unsubscribe", "barred": False,
             "link_opted_out_at": NOW - timedelta(hours=1), "sticky_since": False,
             "resubscriptions": 0}
    return OptOutFacts(**{**facts, **changes})


@pytest.mark.parametrize(("changes", "verdict"), [
    ({}, Resubscribe.ALLOWED),
    ({"link_opted_out_at": NOW - timedelta(hours=23, minutes=59)}, Resubscribe.ALLOWED),
    ({"link_opted_out_at": NOW - timedelta(hours=24, seconds=1)}, Resubscribe.EXPIRED),
    ({"status": "active", "opt_out_reason": None}, Resubscribe.NOT_UNSUBSCRIBED),
    ({"status": "pending", "opt_out_reason": None}, Resubscribe.NOT_UNSUBSCRIBED),
    ({"opt_out_reason": "complaint"}, Resubscribe.REFUSED),
    ({"opt_out_reason": "invalid_contact"}, Resubscribe.REFUSED),
    ({"link_opted_out_at": None}, Resubscribe.REFUSED),     # a mailto, an admin, the API
    ({"sticky_since": True}, Resubscribe.REFUSED),          # a complaint after the click
    ({"barred": True}, Resubscribe.REFUSED),                # bounced, or known bad
])
def test_only_the_link_s_own_recent_unsubscribe_is_lifted(changes, verdict):
    assert resubscribe_verdict(_facts(**changes), NOW) is verdict


def test_a_click_after_a_resubscription_is_a_new_event_and_the_first_keeps_its_name():
    day = NOW.date()
    assert one_click.event_id("7-ABC", day) == "7-abc:2026-05-01"  # as before: retries dedupe
    assert one_click.event_id("7-abc", day, 1) == "7-abc:2026-05-01:1"
    assert len({one_click.content_hash("7-abc", day, n) for n in range(3)}) == 3


# --- a real server ------------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path, database_url, server_factory):
    # No sweep during a test: a click stored by "another node" stays unprocessed until
    # the test processes it.
    h = _hooks(tmp_path, database_url, server_factory,
               sections={"processing": {"sweep_interval": "1h"}})
    yield h
    h.engine.dispose()


def _contact(site: Hooks, email: str = "jane@people.test") -> tuple[int, str]:
    contact = site.contact(email)
    return contact, _unsubscribe_url(site, contact)


def _opted_in(site: Hooks) -> list[dict]:
    return [e for e in site.events(names.CONTACT_OPTED_IN) if e["reason"] == "resubscribed"]


def test_the_page_names_the_sender_and_the_masked_address_and_changes_nothing(site):
    contact, path = _contact(site)
    page = site.client.get(path, headers=BROWSER)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Dealer One" in page.text and "j***@people.test" in page.text
    assert "jane@" not in page.text  # the address itself is never on the page
    assert "stops every email Dealer One sends to this address" in page.text
    assert 'method="post"' in page.text and "24 hours" in page.text
    # Neither the page nor a scanner's GET of the resubscribe address changes anything.
    assert site.client.get(path + "/resubscribe", headers=BROWSER).status_code == 404
    assert site.rows() == [] and site.state(contact).mailable


def test_a_click_confirms_and_a_resubscribe_undoes_it_with_its_evidence(site):
    contact, path = _contact(site)
    done = site.client.post(path, data=CLICK, headers=BROWSER)
    assert done.status_code == 200
    assert ("You will not receive emails from <strong>Dealer One</strong> at "
            "<strong>j***@people.test</strong> any more.") in done.text
    token = path.removeprefix("/u/")
    assert f'action="{token}/resubscribe"' in done.text and "24 hours" in done.text
    site.done(1)
    assert site.state(contact).opt_out_reason == "unsubscribe"
    # Now the page says so and offers the way back, with its deadline.
    assert "is unsubscribed" in site.client.get(path).text

    back = site.client.post(path + "/resubscribe", data=RESUBSCRIBE,
                            headers={**BROWSER, "User-Agent": "Resubscriber/1.0"})
    assert back.status_code == 200 and "You are subscribed again" in back.text
    state = site.state(contact)
    assert (state.status, state.opt_out_reason, state.mailable) == ("active", None, True)
    [event] = _opted_in(site)
    assert (event["actor"], event["via"], event["subject_id"]) == (
        "http:one-click", "one-click", contact)
    assert event["data"]["ip"] == "127.0.0.1"
    assert event["data"]["user_agent"] == "Resubscriber/1.0"
    assert event["data"]["previous_reason"] == "unsubscribe"
    assert abs(datetime.fromisoformat(event["data"]["at"]) - datetime.now(UTC)) \
        < timedelta(minutes=1)

    # Twice: nothing to undo, nothing recorded.
    again = site.client.post(path + "/resubscribe", data=RESUBSCRIBE)
    assert again.status_code == 200 and "nothing to undo" in again.text
    assert len(_opted_in(site)) == 1

    # A click the same day after the resubscribe acts again (it is no copy of the first).
    assert site.client.post(path, data=CLICK).status_code == 200
    assert site.done(2)[1]["state"] == "processed"
    assert site.state(contact).opt_out_reason == "unsubscribe"
    assert len(site.events(names.CONTACT_OPTED_OUT)) == 2


def _opt_out_by(site: Hooks, contact: int, actor: Actor, reason: str) -> None:
    with unit_of_work(site.engine, actor) as uow:
        uow.contacts.opt_out(uow.contacts.get(contact), reason)


def test_a_resubscribe_lifts_nothing_but_the_link_s_own_unsubscribe(site):
    """A complaint, a hard bounce after the click, an admin's opt-out: the page says it
    cannot, with 409, and nothing changes."""
    complained, complained_path = _contact(site, "ann@people.test")
    _opt_out_by(site, complained, Actor("email:fbl@isp.test", "email"), "complaint")
    by_admin, by_admin_path = _contact(site, "bob@people.test")
    _opt_out_by(site, by_admin, CLI, "unsubscribe")
    bounced, bounced_path = _contact(site, "cy@people.test")
    assert site.client.post(bounced_path, data=CLICK).status_code == 200
    site.done(1)
    with unit_of_work(site.engine, Actor("email:mailer-daemon@isp.test", "email")) as uow:
        uow.contacts.mark_undeliverable(uow.contacts.get(bounced), "hard bounce: 5.1.1")
    for contact, path in ((complained, complained_path), (by_admin, by_admin_path),
                          (bounced, bounced_path)):
        page = site.client.get(path, headers=BROWSER)
        assert "Resubscribe" not in page.text  # not offered
        refused = site.client.post(path + "/resubscribe", data=RESUBSCRIBE, headers=BROWSER)
        assert refused.status_code == 409, contact
        assert "cannot resubscribe" in refused.text
        assert site.state(contact).status == "opted_out"
    assert _opted_in(site) == []


def test_a_resubscribe_after_the_window_is_refused(site):
    contact, path = _contact(site)
    assert site.client.post(path, data=CLICK).status_code == 200
    site.done(1)
    t = Event.__table__
    with site.engine.begin() as conn:  # the click, a day and a minute ago
        conn.execute(sa.update(t).where(t.c.action == names.CONTACT_OPTED_OUT).values(
            at=datetime.now(UTC) - timedelta(hours=24, minutes=1)))
    late = site.client.post(path + "/resubscribe", data=RESUBSCRIBE, headers=BROWSER)
    assert late.status_code == 409 and "24 hours only" in late.text
    assert site.state(contact).status == "opted_out" and _opted_in(site) == []
    assert "Resubscribe" not in site.client.get(path).text  # no longer offered
    # An API client hears the same as problem+json.
    problem = site.client.post(path + "/resubscribe", data=RESUBSCRIBE)
    assert problem.status_code == 409 and "24 hours only" in problem.json()["detail"]


def _store_elsewhere(site: Hooks, token: str) -> int:
    """A click another node accepted and has not processed yet (it stopped, or is slow)."""
    book = AddressBook.from_config(config_mod.load(site.path, env={}))
    intake = Intake(site.engine)
    intake.start()
    try:
        return intake.submit(Arrival(
            b"List-Unsubscribe=One-Click", "", (f"unsubscribe+{token}@{book.domain}",),
            protocol="http", provider=one_click.NAME,
            key=one_click.content_hash(token, datetime.now(UTC).date()))).result(10)
    finally:
        intake.stop()


def test_a_resubscribe_waits_for_the_click_still_being_processed(site):
    """The click is stored first and acted on after; a resubscribe arriving in between
    waits for it (and acts after it), or, when it takes too long, says to try again."""
    contact, path = _contact(site)
    token = path.removeprefix("/u/")
    message = _store_elsewhere(site, token)

    started = time.monotonic()
    busy = site.client.post(path + "/resubscribe", data=RESUBSCRIBE, headers=BROWSER)
    assert time.monotonic() - started >= 4.5  # it waited for the click
    assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
    assert "try again in a moment" in busy.text and "text/html" in busy.headers["content-type"]
    assert site.state(contact).mailable and _opted_in(site) == []

    # Processed while the next resubscribe waits: that one acts, after the click.
    book = AddressBook.from_config(config_mod.load(site.path, env={}))
    later = threading.Timer(1.0, process_one, (site.engine, book, message))
    later.start()
    back = site.client.post(path + "/resubscribe", data=RESUBSCRIBE)
    later.join()
    assert back.status_code == 200 and "You are subscribed again" in back.text
    [out] = site.events(names.CONTACT_OPTED_OUT)
    [in_] = _opted_in(site)
    assert out["id"] < in_["id"] and site.state(contact).mailable


def test_browsers_get_error_pages_and_api_clients_problem_json(site):
    contact, path = _contact(site)
    forged = f"/u/{contact}-{'a' * 16}"
    for method, url, data in (("GET", forged, None), ("POST", forged, CLICK),
                              ("GET", "/u/", None), ("GET", path + "/more/parts", None),
                              ("POST", forged + "/resubscribe", RESUBSCRIBE)):
        page = site.client.request(method, url, data=data, headers=BROWSER)
        assert page.status_code == 404, url
        assert page.headers["content-type"].startswith("text/html")
        assert "Link not recognised" in page.text and "whole link" in page.text
        problem = site.client.request(method, url, data=data)
        assert problem.status_code == 404
        assert problem.headers["content-type"] == "application/problem+json"
        assert problem.json()["status"] == 404
    bad = site.client.post(path, data={"List-Unsubscribe": "Maybe"}, headers=BROWSER)
    assert bad.status_code == 400 and "<h1>Not understood</h1>" in bad.text
    assert site.client.post(path, data={"List-Unsubscribe": "Maybe"}).json()["status"] == 400
    # Only the page's form resubscribes: not JSON, not a form without its field.
    as_json = site.client.post(path + "/resubscribe", json={"resubscribe": "yes"})
    assert as_json.status_code == 415
    assert as_json.headers["content-type"] == "application/problem+json"
    assert site.client.post(path + "/resubscribe", data={"x": "y"}).status_code == 400
    assert site.rows() == [] and site.state(contact).mailable


def test_unsubscribe_and_resubscribe_in_a_real_browser(site):
    """GET page -> Unsubscribe -> confirmation -> Resubscribe -> confirmation."""
    contact, path = _contact(site)
    with chromium_page() as page:
        assert page.goto(site.url + path).status == 200
        assert "Dealer One" in page.content() and "j***@people.test" in page.content()
        with page.expect_navigation():
            page.get_by_role("button", name="Unsubscribe").click()
        assert page.get_by_role("heading").inner_text() == "Unsubscribed"
        assert "You will not receive emails from Dealer One at j***@people.test" in \
            page.get_by_role("status").inner_text()
        with page.expect_navigation():
            page.get_by_role("button", name="Resubscribe").click()
        assert page.url == site.url + path + "/resubscribe"
        assert page.get_by_role("status").inner_text().startswith("You are subscribed again")
    site.done(1)
    assert site.state(contact).mailable and len(_opted_in(site)) == 1

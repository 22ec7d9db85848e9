"""Consent on record: how a contact came, pending until the person confirms, and what a
confirmation, a "no" and a deadline do (``actions.consent``), on a real database of each
engine. The paths that reach these actions (the command line, the API, the link, a reply,
the scheduler) are tested against the running service in their own modules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from feedback_mta import config as config_mod
from feedback_mta import events
from feedback_mta.actions import CLI, Conflict, Invalid, unit_of_work
from feedback_mta.actions.consent import ConsentIn, Evidence
from feedback_mta.store.models import Contact, Event, utcnow
from feedback_mta.store.states import ConfirmedVia, ConsentMethod, ContactStatus

CONFIRM = ("import", "social", "purchased")
WEEK = 7 * 86400.0


def _made(engine, method: str, *, email: str = "ann@people.test", new: bool = True) -> int:
    with unit_of_work(engine, CLI) as uow:
        account = uow.accounts.add("Dealer One")
        contact, created = uow.contacts.add(account.id, email, "Ann", "Lee")
        uow.consent.record(contact, ConsentIn(method, "linkedin export"), new=new and created,
                           confirm_methods=CONFIRM, confirm_within=WEEK)
        return contact.id


def _contact(engine, contact_id: int) -> Contact:
    with Session(engine) as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        return contact


def _actions(engine, contact_id: int) -> list[tuple[str, str | None]]:
    with Session(engine) as session:
        rows = session.exec(select(Event).where(
            Event.subject_type == "contact", Event.subject_id == contact_id).order_by(
                col(Event.id))).all()
        return [(e.action, e.reason) for e in rows]


def test_the_config_and_the_stored_names_of_the_methods_are_the_same():
    assert tuple(m.value for m in ConsentMethod) == config_mod.CONSENT_METHODS


@pytest.mark.parametrize(("method", "status", "mailable"), [
    ("social", ContactStatus.PENDING, False),
    ("import", ContactStatus.PENDING, False),
    ("purchased", ContactStatus.PENDING, False),
    ("form", ContactStatus.ACTIVE, True),
    ("api", ContactStatus.ACTIVE, True),
    ("unknown", ContactStatus.ACTIVE, True),
])
def test_a_new_contact_of_a_method_that_needs_confirming_waits(engine, method, status, mailable):
    contact = _contact(engine, _made(engine, method))
    assert (contact.status, contact.mailable) == (status, mailable)
    assert contact.consent_method == method and contact.consent_source == "linkedin export"
    assert (contact.confirm_by is not None) is (status == ContactStatus.PENDING)
    if not mailable:
        assert contact.not_mailable_reason == "unconfirmed"
    assert [a for a in _actions(engine, contact.id)
            if a[0] == events.CONTACT_CONSENT_RECORDED] == [(events.CONTACT_CONSENT_RECORDED, None)]


def test_an_existing_contact_is_never_made_pending_nor_its_record_overwritten(engine):
    contact_id = _made(engine, "form")
    with unit_of_work(engine, CLI) as uow:
        contact = uow.contacts.get(contact_id)
        assert not uow.consent.record(contact, ConsentIn("social"), new=False,
                                      confirm_methods=CONFIRM, confirm_within=WEEK)
    contact = _contact(engine, contact_id)
    assert (contact.status, contact.consent_method) == (ContactStatus.ACTIVE, "form")


@pytest.mark.parametrize(("field", "consent"), [
    ("method", ConsentIn("linkedin")),
    ("source", ConsentIn("form", "x" * 501)),
    ("source", ConsentIn("form", "list\x00")),
])
def test_a_bad_record_is_refused_naming_its_field(engine, field, consent):
    with pytest.raises(Invalid) as caught, unit_of_work(engine, CLI) as uow:
        account = uow.accounts.add("Dealer One")
        contact, _ = uow.contacts.add(account.id, "ann@people.test")
        uow.consent.record(contact, consent, new=True, confirm_methods=CONFIRM,
                           confirm_within=WEEK)
    assert caught.value.field == field


def test_a_confirmation_makes_the_contact_mailable_with_its_evidence(engine):
    contact_id = _made(engine, "social")
    evidence = Evidence(ConfirmedVia.REPLY, {"message_id": "<yes@people.test>",
                                             "inbound_message_id": 7})
    with unit_of_work(engine, CLI) as uow:
        assert uow.consent.confirm(uow.contacts.get(contact_id), evidence)
        assert not uow.consent.confirm(uow.contacts.get(contact_id), evidence)  # once
    contact = _contact(engine, contact_id)
    assert contact.mailable and contact.confirmed_via == "reply"
    assert contact.confirmation_evidence == {"message_id": "<yes@people.test>",
                                             "inbound_message_id": 7}
    assert contact.confirm_by is None
    assert (events.CONTACT_CONFIRMED, None) in _actions(engine, contact_id)


def test_a_no_opts_out_and_the_persons_later_yes_opts_in_again(engine):
    contact_id = _made(engine, "import")
    click = Evidence(ConfirmedVia.LINK, {"ip": "192.0.2.1", "user_agent": "Firefox"})
    with unit_of_work(engine, CLI) as uow:
        assert uow.consent.decline(uow.contacts.get(contact_id), click)
    contact = _contact(engine, contact_id)
    assert (contact.status, contact.opt_out_reason) == (ContactStatus.OPTED_OUT, "declined")
    with unit_of_work(engine, CLI) as uow:
        assert uow.consent.confirm(uow.contacts.get(contact_id), click)
    assert _contact(engine, contact_id).mailable


def test_a_complaint_stands_whatever_the_person_confirms_later(engine):
    contact_id = _made(engine, "social")
    with unit_of_work(engine, CLI) as uow:
        uow.contacts.opt_out(uow.contacts.get(contact_id), "complaint")
    with pytest.raises(Conflict), unit_of_work(engine, CLI) as uow:
        uow.consent.confirm(uow.contacts.get(contact_id), Evidence(ConfirmedVia.LINK))
    assert _contact(engine, contact_id).opt_out_reason == "complaint"


def test_the_deadline_opts_out_only_a_contact_still_pending_after_it(engine):
    contact_id = _made(engine, "purchased")
    with unit_of_work(engine, CLI) as uow:
        assert not uow.consent.expire(uow.contacts.get(contact_id))  # not yet
        assert uow.consent.expire(uow.contacts.get(contact_id), utcnow() + timedelta(days=8))
    contact = _contact(engine, contact_id)
    assert (contact.status, contact.opt_out_reason) == (ContactStatus.OPTED_OUT, "unconfirmed")
    confirmed = _made(engine, "social", email="bob@people.test")
    with unit_of_work(engine, CLI) as uow:
        uow.consent.confirm(uow.contacts.get(confirmed), Evidence(ConfirmedVia.LINK))
        assert not uow.consent.expire(uow.contacts.get(confirmed), utcnow() + timedelta(days=8))
    assert _contact(engine, confirmed).mailable


def test_an_opt_in_lifts_an_opt_out_but_not_the_need_for_the_persons_yes(engine):
    """A pending contact that unsubscribed and resubscribed (or an admin lifted it) waits
    for its confirmation again: mailable only by the person's own yes."""
    contact_id = _made(engine, "social")
    with unit_of_work(engine, CLI) as uow:
        contact = uow.contacts.get(contact_id)
        uow.contacts.opt_out(contact, "unsubscribe")
        assert uow.contacts.opt_in(contact, "resubscribed")
    contact = _contact(engine, contact_id)
    assert (contact.status, contact.mailable) == (ContactStatus.PENDING, False)
    confirmed = _made(engine, "form", email="bob@people.test")
    with unit_of_work(engine, CLI) as uow:
        contact = uow.contacts.get(confirmed)
        uow.contacts.opt_out(contact, "unsubscribe")
        uow.contacts.opt_in(contact, "resubscribed")
    assert _contact(engine, confirmed).mailable

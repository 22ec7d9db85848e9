"""Bot-created contacts end to end: the CLI adds them, the running server's scheduler keeps
the review deadline, a digest reply keeps a contact. Real server process, real SQLite file
and, where it is up, real PostgreSQL (two servers on one database)."""

from __future__ import annotations

import email
import json
import re
import time

import pytest
import sqlalchemy as sa

from feedback_mta.quality.verdict import INVALID_TAG, SUSPECTED_TAG
from tests.conftest import write_config
from tests.support import send, wait_until
from tests.test_cli import ok_json, run

FAST = {"review": {"period": "3s", "check_interval": "1s", "remind_before": "0s"}}


def _config(tmp_path, url, name="feedback-mta.toml", **sections):
    merged = {**FAST, **sections}
    merged["quality"] = {"allowed_domains": ["test"], "suspect_networks": ["198.51.100.0/24"],
                         **sections.get("quality", {})}
    return write_config(tmp_path / name, url, **merged)


def _account(cfg, name="Dealer"):
    account = ok_json(cfg, "account", "add", name)["id"]
    ok_json(cfg, "user", "add", "--account", str(account), "--email", "boss@dealer.test",
            "--role", "contact-admin")
    return account


def _contact(cfg, account, email_, first="Ann", last="Lee", ip=None):
    args = ["contact", "add", "--account", str(account), "--email", email_, "--first", first,
            "--last", last]
    return ok_json(cfg, *args, *(["--ip", ip] if ip else []))


def _show(cfg, contact_id):
    return ok_json(cfg, "contact", "show", str(contact_id))




def test_gibberish_is_opted_out_and_tagged_at_once_and_stays_so(tmp_path, database_url):
    cfg = _config(tmp_path, database_url, review={"period": "7d"})
    account = _account(cfg)
    lead = ok_json(cfg, "lead", "add", "--account", str(account), "--email", "bot@people.test",
                   "--first", "Jkhsdfk", "--last", "Qwzxrt", "--ip", "192.0.2.1")
    assert (lead["contact_status"], lead["quality"]) == ("opted_out", "invalid")
    shown = _show(cfg, lead["contact_id"])
    assert shown["status"] == "opted_out" and shown["opt_out_reason"] == "invalid_contact"
    assert shown["tags"] == [INVALID_TAG] and shown["review_deadline"] is None
    assert shown["quality_reasons"] == ["random letters"]
    # A later lead for the same address, even with a good name, never opts it back in.
    again = ok_json(cfg, "lead", "add", "--account", str(account), "--email", "bot@people.test",
                    "--first", "Ann", "--last", "Lee")
    assert again["contact_id"] == lead["contact_id"] and again["contact_status"] == "opted_out"
    assert _show(cfg, lead["contact_id"])["tags"] == [INVALID_TAG]
    # Real names of the same account are left alone.
    good = ok_json(cfg, "lead", "add", "--account", str(account), "--email", "ann@people.test",
                   "--first", "Siobhán", "--last", "Ní Bhriain")
    assert (good["contact_status"], good["quality"]) == ("active", "ok")


def test_suspects_are_tagged_with_a_deadline_and_listed(tmp_path, database_url):
    cfg = _config(tmp_path, database_url, review={"period": "7d"})
    account = _account(cfg)
    network = ok_json(cfg, "network", "add", "203.0.113.0/24", "--note", "form spam")
    assert network == {"cidr": "203.0.113.0/24", "note": "form spam", "created": True}
    listed = [json.loads(x) for x in run(cfg, "network", "list", "--json").stdout.splitlines()]
    assert {(r["cidr"], r["source"]) for r in listed} == {("198.51.100.0/24", "config"),
                                                          ("203.0.113.0/24", "database")}
    from_db_network = _contact(cfg, account, "a@people.test", ip="203.0.113.9")
    from_config_network = _contact(cfg, account, "b@people.test", ip="198.51.100.1")
    clean = _contact(cfg, account, "c@people.test", ip="192.0.2.1")
    for c in (from_db_network, from_config_network):
        assert c["tags"] == [SUSPECTED_TAG] and c["status"] == "active"
        assert c["review_deadline"] is not None
    assert clean["tags"] == [] and clean["review_deadline"] is None
    # The same address in 3 accounts under 3 names: all three are suspected.
    ids = [_contact(cfg, _account(cfg, f"D{i}"), "same@people.test", "Ann", f"Lee{'x' * i}")["id"]
           for i in range(3)]
    for contact_id in ids:
        shown = _show(cfg, contact_id)
        assert shown["tags"] == [SUSPECTED_TAG], shown
        assert "same address in several accounts under different names" in shown[
            "quality_reasons"]
    tagged = run(cfg, "contact", "list", "--tag", SUSPECTED_TAG, "--json")
    assert sorted(json.loads(x)["id"] for x in tagged.stdout.splitlines()) == sorted(
        [from_db_network["id"], from_config_network["id"], *ids])
    only_account = run(cfg, "contact", "list", "--tag", SUSPECTED_TAG, "--account",
                       str(account), "--json")
    assert len(only_account.stdout.splitlines()) == 2
    # Verified: the tag and deadline go, and the same reason does not tag it again.
    verified = ok_json(cfg, "contact", "verify", str(from_db_network["id"]))
    assert verified["tags"] == [] and verified["verified"] and verified["changed"]
    ok_json(cfg, "lead", "add", "--account", str(account), "--email", "a@people.test",
            "--ip", "203.0.113.10")
    assert _show(cfg, from_db_network["id"])["tags"] == []
    assert ok_json(cfg, "network", "remove", "203.0.113.0/24")["removed"] is True
    assert run(cfg, "network", "remove", "203.0.113.0/24").returncode == 1


def test_the_running_scheduler_opts_out_the_rest_at_the_deadline(tmp_path, database_url,
                                                                 server_factory):
    cfg = _config(tmp_path, database_url, review={"period": "6s", "check_interval": "1s"})
    account = _account(cfg)
    server = server_factory(cfg)
    # Deadlines added by another process while the server runs (each CLI call takes about a
    # second, so each contact is verified or engaged right after it is added).
    keep = _contact(cfg, account, "keep@people.test", ip="198.51.100.2")["id"]
    ok_json(cfg, "contact", "verify", str(keep))
    engaged = _contact(cfg, account, "buyer@people.test", ip="198.51.100.3")["id"]
    engage = ok_json(cfg, "contact", "engage", str(engaged), "--kind", "purchase")
    doomed = [_contact(cfg, account, f"bot{i}@people.test", ip="198.51.100.4")["id"]
              for i in range(3)]
    assert engage["engaged"] and engage["tags"] == [] and engage["review_deadline"] is None
    for contact_id in doomed:
        server.wait_for("contact.opted_out", timeout=20, contact_id=contact_id,
                        reason="suspected_invalid")
    for contact_id in doomed:
        shown = _show(cfg, contact_id)
        assert (shown["status"], shown["opt_out_reason"]) == ("opted_out", "suspected_invalid")
    for contact_id in (keep, engaged):
        assert _show(cfg, contact_id)["status"] == "active"
    # An engaged contact is never tagged again, whatever the network.
    ok_json(cfg, "lead", "add", "--account", str(account), "--email", "buyer@people.test",
            "--ip", "198.51.100.9")
    assert _show(cfg, engaged)["tags"] == []
    # Each was opted out once, with an audit event.
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        counts = dict(conn.execute(sa.text(
            "SELECT subject_id, count(*) FROM event WHERE action = 'contact.opted_out' "
            "AND reason = 'suspected_invalid' GROUP BY subject_id")).all())
    engine.dispose()
    assert counts == {contact_id: 1 for contact_id in doomed}


def test_a_deadline_missed_while_down_is_caught_up_on_start(tmp_path, database_url,
                                                           server_factory):
    cfg = _config(tmp_path, database_url, review={"period": "1s", "check_interval": "1h"})
    account = _account(cfg)
    contact = _contact(cfg, account, "late@people.test", ip="198.51.100.7")["id"]
    time.sleep(1.5)  # no server runs while the deadline passes
    server = server_factory(cfg)
    assert server.wait_for("server.started")["reviews_caught_up"] == 1
    assert _show(cfg, contact)["opt_out_reason"] == "suspected_invalid"


@pytest.mark.process
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_servers_on_one_postgresql_opt_each_contact_out_once(tmp_path, database_url,
                                                                 server_factory):
    cfg_a = _config(tmp_path, database_url, "a.toml",
                    review={"period": "3s", "check_interval": "0.2s"})
    cfg_b = _config(tmp_path, database_url, "b.toml",
                    review={"period": "3s", "check_interval": "0.2s"})
    account = _account(cfg_a)
    nodes = [server_factory(cfg_a), server_factory(cfg_b)]
    lines = "\n".join(json.dumps({"email": f"bot{i}@people.test", "first": "Ann",
                                  "last": "Lee", "ip": "198.51.100.8"}) for i in range(30))
    source = tmp_path / "bots.jsonl"
    source.write_text(lines + "\n")
    imported = ok_json(cfg_a, "contact", "import", str(source), "--account", str(account))
    assert (imported["created"], imported["suspected"]) == (30, 30)
    engine = sa.create_engine(database_url)

    def all_out():
        with engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT count(*) FROM contact WHERE opt_out_reason = 'suspected_invalid'")
            ).scalar() == 30

    wait_until(all_out, 30, "30 opted out")
    time.sleep(1)  # let both nodes run a few more checks
    with engine.connect() as conn:
        per_contact = conn.execute(sa.text(
            "SELECT subject_id, count(*) FROM event WHERE action = 'contact.opted_out' "
            "GROUP BY subject_id")).all()
    engine.dispose()
    assert len(per_contact) == 30 and {n for _, n in per_contact} == {1}
    logged = sum(node.count("contact.opted_out") for node in nodes)
    assert logged == 30


def test_digest_reply_keep_verifies_the_contact(tmp_path, database_url, server_factory, relay):
    cfg = _config(tmp_path, database_url,
                  review={"period": "5s", "remind_before": "5s", "check_interval": "0.5s"},
                  outbound={"relay": f"127.0.0.1:{relay.port}"})
    account = _account(cfg)
    ok_json(cfg, "user", "add", "--account", str(account), "--email", "clerk@dealer.test")
    source = tmp_path / "contacts.csv"
    source.write_text("email,first,last,ip\nkeep@people.test,Ann,Lee,198.51.100.2\n"
                      "drop@people.test,Bo,Li,198.51.100.2\n")
    # Form sign-ups (an import is otherwise pending until each person confirms).
    assert ok_json(cfg, "contact", "import", str(source), "--account", str(account),
                   "--consent-method", "form")["suspected"] == 2
    keep, drop = (c["id"] for c in map(json.loads, run(
        cfg, "contact", "list", "--tag", SUSPECTED_TAG, "--json").stdout.splitlines()))
    server = server_factory(cfg)
    mail_from, rcpts, raw = relay.wait(1)[0]
    digest = email.message_from_bytes(raw)
    assert rcpts == ["boss@dealer.test"] and mail_from == "<>"  # the contact admin only
    body = digest.get_payload(decode=True).decode()
    assert f"#{keep}" in body and f"#{drop}" in body and "KEEP <id>" in body
    review_box = re.search(r"<(review\+[^>]+)>", digest["From"]).group(1)
    reply = (f"From: boss@dealer.test\r\nTo: {review_box}\r\nSubject: Re: {digest['Subject']}"
             f"\r\nIn-Reply-To: {digest['Message-ID']}\r\nMessage-ID: <r1@dealer.test>\r\n\r\n"
             f"KEEP {keep}\r\n\r\n> KEEP {drop}\r\n").encode()
    # A user without the contact-admin role may not keep anything.
    forged = reply.replace(b"From: boss@", b"From: clerk@").replace(b"<r1@", b"<r0@")
    assert send(server.port, "clerk@dealer.test", [review_box], forged)[0] == 250
    server.wait_for("review.refused", account_id=account)
    assert send(server.port, "boss@dealer.test", [review_box], reply)[0] == 250
    server.wait_for("contact.verified", contact_id=keep)
    server.wait_for("contact.opted_out", contact_id=drop, reason="suspected_invalid", timeout=20)
    kept = _show(cfg, keep)
    assert (kept["status"], kept["tags"], kept["verified"]) == ("active", [], True)
    assert _show(cfg, drop)["status"] == "opted_out"
    acks = [email.message_from_bytes(m[2]) for m in relay.wait(2)[1:]]
    assert f"Kept: #{keep}." in acks[0].get_payload(decode=True).decode()
    # One digest for the account, not one per check.
    time.sleep(1.5)
    assert server.count("review.reminded") == 1

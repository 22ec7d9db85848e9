"""Feedback loops end to end: a real server, a real SMTP client, a real database.

Complaint reports opt the contact out (attributed by the token in the returned original,
whatever the provider redacted), not-spam reports only record, bounces make a contact
unmailable (hard at once, soft after the limit), unsubscribe mails opt out, and forged
reports (made-up or altered tokens, untrusted reporters) change nothing.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from feedback_mta import tokens
from feedback_mta.addresses import Box
from feedback_mta.store.models import Contact, Event
from tests.cli import run
from tests.conftest import FIXTURES, write_config
from tests.support import Seed, seed, send

REPORTS = FIXTURES / "reports"
TRUSTED = "fbl.trusted.test"
#: Tokens of contact 7 under the test secret, as written in the fixtures.
FIXTURE_TOKENS = {"feedback": "7-3texc33zrcd6gvpp", "bounce": "bounce+7-qsznkvryx2ejhtk5",
                  "unsubscribe": "unsubscribe+7-zx6n3itjcg7l4vgb"}


@dataclass
class Setup:
    server: object
    engine: object
    seed: Seed
    config: object

    def fbl(self) -> str:
        return f"fbl@{self.seed.book.domain}"


@pytest.fixture
def setup(tmp_path, database_url, server_factory) -> Setup:
    from feedback_mta import config as config_mod
    from feedback_mta.store import db

    path = write_config(tmp_path / "fbl.toml", database_url,
                        feedback={"trusted_reporters": [TRUSTED], "soft_bounce_limit": 2})
    cfg = config_mod.load(path, env={})
    engine = db.create_engine(cfg.database)
    db.upgrade(engine)
    s = seed(engine, cfg, contacts=4)
    server = server_factory(path)
    yield Setup(server, engine, s, path)
    engine.dispose()


def sample(st: Setup, file: str, contact_id: int, *, feedback_token: str | None = None) -> bytes:
    """A fixture with contact 7's tokens swapped for ``contact_id``'s (or a given token) and a
    fresh Message-ID, so every delivery is a distinct message."""
    book = st.seed.book
    raw = (REPORTS / file).read_bytes()
    raw = raw.replace(FIXTURE_TOKENS["feedback"].encode(), (feedback_token or tokens.make(
        book.secrets[0], tokens.Purpose.FEEDBACK, contact_id)).encode())
    for box in (Box.BOUNCE, Box.UNSUBSCRIBE):
        raw = raw.replace(FIXTURE_TOKENS[box.value].encode(),
                          book.address(box, contact_id).split("@")[0].encode())
    head, sep, body = raw.partition(b"\n\n")
    lines = [ln for ln in head.split(b"\n") if not ln.lower().startswith(b"message-id:")]
    lines.append(f"Message-ID: <{uuid.uuid4().hex}@reporter.test>".encode())
    return b"\n".join(lines) + sep + body


def deliver(st: Setup, raw: bytes, rcpt: str, mail_from: str = "") -> dict:
    # SMTP lines end in CRLF (smtplib sends bytes as they are); CR-only and LF files are
    # covered offline in test_formats.
    raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    code, text = send(st.server.port, mail_from, [rcpt], raw)
    assert code == 250, (code, text)
    stored = int(text.rsplit(b" ", 1)[1])
    return st.server.wait_for("message.processed", id=stored)


def contact(st: Setup, contact_id: int) -> dict:
    t = Contact.__table__
    with st.engine.connect() as conn:
        return dict(conn.execute(sa.select(t).where(t.c.id == contact_id)).one()._mapping)


def actions_of(st: Setup, contact_id: int) -> list[str]:
    t = Event.__table__
    with st.engine.connect() as conn:
        return list(conn.execute(sa.select(t.c.action).where(
            t.c.subject_type == "contact", t.c.subject_id == contact_id,
            t.c.action != "contact.created").order_by(t.c.id)).scalars())


def cli(st: Setup, *args: str) -> dict:
    done = run(st.config, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_redacted_abuse_report_opts_out_the_contact_named_by_the_token(setup):
    st = setup
    target, other = st.seed.contact_ids[1], st.seed.contact_ids[2]
    done = deliver(st, sample(st, "ours-yahoo-arf-redacted.eml", target), st.fbl())
    assert (done["kind"], done["state"], done["reason"]) == (
        "complaint", "processed", "opted out (complaint)")
    row = contact(st, target)
    assert (row["status"], row["opt_out_reason"]) == ("opted_out", "complaint")
    assert actions_of(st, target) == ["contact.complained", "contact.opted_out"]
    assert contact(st, other)["status"] == "active" and actions_of(st, other) == []
    st.server.wait_for("contact.complained", contact_id=target, attributed_by="token-header")

    # The complaint rate: per contact while sends are unknown, then per message sent.
    stats = cli(st, "stats")
    account = next(a for a in stats["accounts"] if a["id"] == st.seed.account_id)
    assert (account["complaints"], account["contacts"], account["rate_basis"]) == (
        1, 4, "contacts")
    assert account["complaint_rate"] == 0.25
    cli(st, "account", "sent", str(st.seed.account_id), "2000")
    account = next(a for a in cli(st, "stats")["accounts"] if a["id"] == st.seed.account_id)
    assert (account["sent"], account["rate_basis"], account["complaint_rate"]) == (
        2000, "sent", 0.0005)


def test_not_spam_report_is_recorded_only(setup):
    st = setup
    target = st.seed.contact_ids[1]
    done = deliver(st, sample(st, "ours-arf-not-spam.eml", target), st.fbl())
    assert (done["state"], done["reason"]) == ("processed", "recorded (not-spam)")
    assert contact(st, target)["status"] == "active"
    assert actions_of(st, target) == ["contact.feedback_recorded"]


def test_hard_bounce_makes_the_contact_unmailable_a_single_soft_one_does_not(setup):
    st = setup
    hard, soft = st.seed.contact_ids[1], st.seed.contact_ids[2]
    done = deliver(st, sample(st, "ours-gmail-dsn-nosuchuser.eml", hard), st.seed.bounce(hard))
    assert (done["kind"], done["state"], done["reason"]) == ("bounce", "processed",
                                                             "hard bounce")
    shown = cli(st, "contact", "show", str(hard))
    assert (shown["status"], shown["mailable"], shown["hard_bounces"]) == ("active", False, 1)
    assert shown["undeliverable_reason"] == "hard bounce: 5.1.1 userunknown"

    done = deliver(st, sample(st, "ours-dsn-mailbox-full.eml", soft), st.seed.bounce(soft))
    assert done["reason"] == "soft bounce 1 of 2"
    shown = cli(st, "contact", "show", str(soft))
    assert (shown["mailable"], shown["soft_bounces"]) == (True, 1)
    # The limit (2 here) within the window counts as hard.
    done = deliver(st, sample(st, "ours-dsn-delayed.eml", soft), st.seed.bounce(soft))
    assert done["reason"] == "soft bounce 2 of 2: undeliverable"
    assert contact(st, soft)["undeliverable_reason"].startswith("2 soft bounces within 30 days")
    # stats counts the bounces by reason.
    assert cli(st, "stats")["bounce_reasons"] == {"mailboxfull": 1, "userunknown": 1,
                                                  "expired": 1}
    # An admin who knows the mailbox works again makes it mailable; old soft bounces are gone.
    assert cli(st, "contact", "deliverable", str(soft))["changed"] is True
    done = deliver(st, sample(st, "ours-dsn-mailbox-full.eml", soft), st.seed.bounce(soft))
    assert done["reason"] == "soft bounce 1 of 2"


def test_delivery_reports_and_auto_replies_to_the_bounce_address_are_not_bounces(setup):
    st = setup
    target = st.seed.contact_ids[1]
    done = deliver(st, sample(st, "ours-dsn-delivered.eml", target), st.seed.bounce(target))
    assert (done["kind"], done["state"], done["reason"]) == (
        "auto_reply", "ignored", "delivery report")
    done = deliver(st, sample(st, "ours-out-of-office-to-bounce.eml", target),
                   st.seed.bounce(target), mail_from="pat.lee@example.com")
    assert (done["kind"], done["state"]) == ("auto_reply", "ignored")
    assert contact(st, target)["undeliverable_at"] is None and actions_of(st, target) == []


def test_unsubscribe_mail_opts_out_whatever_it_says(setup):
    st = setup
    target = st.seed.contact_ids[3]
    done = deliver(st, sample(st, "ours-unsubscribe-says-subscribe.eml", target),
                   st.seed.unsubscribe(target), mail_from="pat.lee@example.com")
    assert (done["kind"], done["reason"]) == ("unsubscribe", "opted out")
    assert contact(st, target)["opt_out_reason"] == "unsubscribe"


def test_opt_out_report_unsubscribes(setup):
    st = setup
    target = st.seed.contact_ids[1]
    raw = sample(st, "ours-arf-opt-out-removal-recipient.eml", target).replace(
        b"Message-ID: <news.2026.11@dealer.test>",
        f"X-Feedback-Token: {tokens.make(st.seed.book.secrets[0], tokens.Purpose.FEEDBACK, target)}"
        .encode())
    done = deliver(st, raw, st.fbl())
    assert (done["kind"], done["reason"]) == ("unsubscribe", "opted out")
    assert contact(st, target)["opt_out_reason"] == "unsubscribe"


def forged_variants(st: Setup, target: int) -> list[bytes]:
    genuine = tokens.make(st.seed.book.secrets[0], tokens.Purpose.FEEDBACK, target)
    other_id = st.seed.contact_ids[2]
    return [
        # made up: right shape, wrong MAC
        sample(st, "ours-yahoo-arf-redacted.eml", target,
               feedback_token=f"{target}-aaaaaaaaaaaaaaaa"),
        # altered: a genuine token's id changed to another contact
        sample(st, "ours-yahoo-arf-redacted.eml", target,
               feedback_token=f"{other_id}-{genuine.split('-')[1]}"),
        # a token of another purpose (the bounce address's) moved into the header
        sample(st, "ours-yahoo-arf-redacted.eml", target,
               feedback_token=st.seed.bounce(target).split("+")[1].split("@")[0]),
    ]


def test_forged_reports_change_nothing(setup):
    st = setup
    target = st.seed.contact_ids[1]
    for raw in forged_variants(st, target):
        # also strip the genuine unsubscribe address the sample's List-Unsubscribe carries
        raw = raw.replace(st.seed.unsubscribe(target).encode(), b"unsubscribe@dealer.test")
        raw = raw.replace(st.seed.bounce(target).encode(), b"news@dealer.test")
        done = deliver(st, raw, st.fbl())
        assert (done["kind"], done["state"], done["reason"]) == (
            "complaint", "ignored", "unattributed")
    for cid in st.seed.contact_ids:
        assert contact(st, cid)["status"] == "active" and actions_of(st, cid) == []
    # A forged bounce address is refused before any data.
    forged = f"bounce+{target}-aaaaaaaaaaaaaaaa@{st.seed.book.domain}"
    code, _ = send(st.server.port, "", [forged], b"Subject: x\r\n\r\nx\r\n")
    assert code == 550
    stats = cli(st, "stats")
    assert stats["unattributed"] == 3


def _by_address_only(st: Setup, target: int, reporter: str) -> bytes:
    """A report naming the contact only by address, its original carrying only the
    account header (no contact token)."""
    address = contact(st, target)["email"]
    account_token = tokens.make(st.seed.book.secrets[0], tokens.Purpose.ACCOUNT,
                                st.seed.account_id)
    return (f"From: {reporter}\nTo: fbl@fb.test\nSubject: report\n"
            f"Message-ID: <{uuid.uuid4().hex}@{reporter.split('@')[1]}>\nMIME-Version: 1.0\n"
            "Content-Type: multipart/report; report-type=feedback-report; boundary=b\n\n"
            "--b\nContent-Type: text/plain\n\nabuse\n\n"
            "--b\nContent-Type: message/feedback-report\n\n"
            f"Feedback-Type: abuse\nVersion: 1\nOriginal-Rcpt-To: {address}\n\n"
            f"--b\nContent-Type: text/rfc822-headers\n\nFrom: news@dealer.test\nTo: {address}\n"
            f"{tokens.ACCOUNT_HEADER}: {account_token}\n\n--b--\n").encode()


def test_address_match_acts_only_for_trusted_reporters(setup):
    st = setup
    target = st.seed.contact_ids[2]
    done = deliver(st, _by_address_only(st, target, "fbl@reporter.example"), st.fbl())
    assert (done["state"], done["reason"]) == ("ignored", "unattributed")
    assert contact(st, target)["status"] == "active"
    done = deliver(st, _by_address_only(st, target, f"feedback@{TRUSTED}"), st.fbl())
    assert (done["state"], done["reason"]) == ("processed", "opted out (complaint)")
    assert contact(st, target)["opt_out_reason"] == "complaint"
    st.server.wait_for("contact.complained", contact_id=target, attributed_by="recipient")

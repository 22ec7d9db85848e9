"""Postfix in front: a private Postfix instance delivers our domain to the LMTP listener.

The instance is the configuration docs/operating.md tells admins to use:
``transport_maps`` sends the domain to ``lmtp:inet:...``, and ``reject_unverified_recipient``
asks our LMTP listener about each recipient (an address verification probe, RCPT only)
before Postfix accepts it, so mail for a made-up address is refused during the SMTP
session instead of turning into a bounce to a possibly forged sender (backscatter).

It needs root and Debian's postfix package; it runs in its own directories on free ports
and is stopped at the end (no daemon is left behind). Without Postfix the LMTP path is
still driven by Postfix's ``smtp-source -L``; without that either, the tests skip.
"""

from __future__ import annotations

import os
import pwd
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from feedback_mta import config as config_mod
from feedback_mta.store import db
from feedback_mta.store.models import Contact
from tests.conftest import write_config
from tests.support import free_port, message, seed, wait_all_done, wait_until
from tests.test_feedback_loops import FIXTURE_TOKENS, REPORTS

POSTFIX = shutil.which("postfix") or ("/usr/sbin/postfix" if Path("/usr/sbin/postfix").exists()
                                      else None)
SMTP_SOURCE = shutil.which("smtp-source") or (
    "/usr/sbin/smtp-source" if Path("/usr/sbin/smtp-source").exists() else None)

# The services a relay-only Postfix needs; no chroot (the private queue has no copies of
# /etc files), smtpd on a loopback port of our choosing.
MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {base}/queue
data_directory = {base}/data
maillog_file_prefixes = {base}
maillog_file = {base}/maillog
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.test
myorigin = mx.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
smtputf8_enable = no
# --- what docs/operating.md tells admins to add: our domain to the LMTP listener ---
relay_domains = {domain}
transport_maps = inline:{{ {domain}=lmtp:inet:127.0.0.1:{lmtp_port} }}
smtpd_recipient_restrictions = reject_unauth_destination, reject_unverified_recipient
unverified_recipient_reject_code = 550
address_verify_poll_delay = 1s
"""




class PrivatePostfix:
    """``postfix -c DIR start`` with its own config, queue and log; ``stop`` ends it."""

    def __init__(self, domain: str, lmtp_port: int) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="fbmta-postfix-", dir="/tmp"))
        self.base.chmod(0o755)  # the postfix user must reach its queue inside
        self.conf = self.base / "conf"
        self.port = free_port()
        for sub in ("conf", "queue", "data"):
            (self.base / sub).mkdir()
        uid = pwd.getpwnam("postfix").pw_uid
        os.chown(self.base / "data", uid, -1)
        (self.conf / "main.cf").write_text(MAIN_CF.format(
            base=self.base, domain=domain, lmtp_port=lmtp_port))
        (self.conf / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([POSTFIX, "-c", str(self.conf), *args], capture_output=True,
                              text=True, timeout=60)

    def start(self) -> PrivatePostfix:
        done = self.run("start")
        if done.returncode != 0:
            raise RuntimeError(f"postfix start failed: {done.stderr}{self.log()}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"postfix did not listen on {self.port}: {self.log()}")

    def stop(self) -> None:
        pid_file = self.base / "queue" / "pid" / "master.pid"
        pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        self.run("stop")
        deadline = time.monotonic() + 20
        while pid is not None and _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid is not None and _running(pid):  # never leave a daemon behind
            self.run("abort")
        shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        path = self.base / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def queue_empty(self) -> bool:
        done = subprocess.run(["postqueue", "-c", str(self.conf), "-j"], capture_output=True,
                              text=True, timeout=30)
        return done.returncode == 0 and done.stdout.strip() == ""


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (master's reaper here may be slow)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _postfix_problem() -> str | None:
    if POSTFIX is None:
        return "postfix not installed (Debian: postfix)"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "no postfix user (install Debian's postfix package)"
    return None


@pytest.fixture
def lmtp_server(tmp_path, database_url, server_factory):
    path = write_config(tmp_path / "lmtp.toml", database_url, smtp={"lmtp": True})
    cfg = config_mod.load(path, env={})
    engine = db.create_engine(cfg.database)
    db.upgrade(engine)
    s = seed(engine, cfg, contacts=3)
    server = server_factory(path)
    yield server, engine, s
    engine.dispose()


@pytest.fixture
def postfix(lmtp_server) -> Iterator[PrivatePostfix]:
    problem = _postfix_problem()
    if problem:
        pytest.skip(problem)
    server, _, s = lmtp_server
    instance = PrivatePostfix(s.book.domain, server.port)
    try:
        yield instance.start()
    finally:
        instance.stop()


def _complaint(s, contact_id: int) -> bytes:
    from feedback_mta import tokens

    raw = (REPORTS / "ours-yahoo-arf-redacted.eml").read_bytes()
    raw = raw.replace(FIXTURE_TOKENS["feedback"].encode(), tokens.make(
        s.book.secrets[0], tokens.Purpose.FEEDBACK, contact_id).encode())
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")




def test_postfix_delivers_our_domain_over_lmtp(postfix, lmtp_server):
    server, engine, s = lmtp_server
    unsub = s.unsubscribe(s.contact_ids[1])
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as client:
        client.ehlo("sender.test")
        # One recipient: an unsubscribe by its signed address.
        client.sendmail("someone@people.test", [unsub], message(subject="unsubscribe"))
        # A complaint report to fbl@ and, in the same mail, a second box: one LMTP
        # transaction, one reply per recipient.
        refused = client.sendmail("reports@fbl.test", [f"fbl@{s.book.domain}", s.reply],
                                  _complaint(s, s.contact_ids[2]))
        assert refused == {}
        # A made-up address is refused by Postfix during the session (verified against
        # our LMTP listener), not accepted and bounced later.
        client.mail("someone@people.test")
        code, text = client.rcpt(f"nobody@{s.book.domain}")
        assert code == 550, (code, text)
        assert b"Recipient address rejected" in text
        client.rset()

    rows = wait_all_done(engine, 2, 60)  # both delivered over LMTP and processed
    assert [r["rcpt_tos"] for r in rows] == [
        [unsub], [f"fbl@{s.book.domain}", s.reply]]
    assert [r["kind"] for r in rows] == ["unsubscribe", "complaint"]
    t = Contact.__table__
    with engine.connect() as conn:
        reasons = dict(conn.execute(sa.select(t.c.id, t.c.opt_out_reason)).all())
    assert reasons[s.contact_ids[1]] == "unsubscribe"
    assert reasons[s.contact_ids[2]] == "complaint"
    assert reasons[s.contact_ids[0]] is None
    wait_until(postfix.queue_empty, 20, "Postfix queue empty", postfix.log)
    log = postfix.log()
    assert "relay=127.0.0.1" in log and "status=sent (250 2.0.0 Ok: stored as" in log
    assert server.count("smtp.rcpt_refused") >= 1  # the verification probe


def test_smtp_source_over_lmtp(lmtp_server):
    if SMTP_SOURCE is None:
        pytest.skip("smtp-source not installed (Debian: postfix)")
    server, engine, s = lmtp_server
    done = subprocess.run([SMTP_SOURCE, "-L", "-s", "5", "-m", "50", "-c",
                           "-f", "sender@people.test", "-t", f"fbl@{s.book.domain}",
                           f"127.0.0.1:{server.port}"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    rows = wait_all_done(engine, 50, 60)
    assert {(r["state"], r["kind"]) for r in rows} == {("ignored", "unknown")}
    assert len({r["message_id"] for r in rows}) == 50
    assert server.count("message.accepted") == 50

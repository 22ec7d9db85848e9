"""Several nodes on one database: two ``serve`` processes on different ports, standing in
for two hosts behind MX records, share one PostgreSQL database (and, on one host, one
SQLite file). Every message is acted on once, whichever node took it and whichever node's
sweep found it; scheduled work is run once (``test_review`` shows it for review deadlines).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from feedback_mta import config as config_mod
from feedback_mta.actions import CLI, unit_of_work
from feedback_mta.addresses import AddressBook, Box
from feedback_mta.edge.intake import Arrival, Intake
from feedback_mta.store import db
from tests.conftest import ROOT, write_config
from tests.support import message, send, wait_all_done


def _nodes(tmp_path, database_url, **sections):
    paths = [write_config(tmp_path / f"node-{name}.toml", database_url,
                          processing={"workers": 2, "sweep_interval": "0.5s"}, **sections)
             for name in "ab"]
    cfg = config_mod.load(paths[0], env={})
    engine = db.create_engine(cfg.database)
    db.upgrade(engine)
    return paths, cfg, engine


def _contacts(engine, cfg, n: int) -> tuple[AddressBook, list[int]]:
    book = AddressBook.from_config(cfg)
    with unit_of_work(engine, CLI) as uow:
        account = uow.accounts.add("Dealer")
        ids = [uow.contacts.add(account.id, f"c{i}@people.test", "Ann", "Lee")[0].id
               for i in range(n)]
    return book, ids


def _opt_outs(engine) -> dict[int, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(
            "SELECT subject_id, count(*) FROM event WHERE action = 'contact.opted_out' "
            "GROUP BY subject_id")).all())




@pytest.mark.process
def test_mail_through_both_nodes_is_acted_on_once(tmp_path, database_url, server_factory):
    paths, cfg, engine = _nodes(tmp_path, database_url)
    book, ids = _contacts(engine, cfg, 60)
    nodes = [server_factory(path) for path in paths]

    def deliver(i: int) -> int:
        node = nodes[i % 2]
        rcpt = book.address(Box.UNSUBSCRIBE, ids[i])
        code, text = send(node.port, "someone@people.test", [rcpt],
                          message(subject="unsubscribe"))
        assert code == 250, (code, text)
        return i % 2

    with ThreadPoolExecutor(12) as pool:
        sent_to = list(pool.map(deliver, range(len(ids))))
    assert sent_to.count(0) == sent_to.count(1) == 30
    wait_all_done(engine, len(ids))
    time.sleep(1.2)  # two more sweeps on each node: nothing is taken again
    assert _opt_outs(engine) == {contact_id: 1 for contact_id in ids}
    assert sum(node.count("message.processed") for node in nodes) == len(ids)
    assert [node.count("message.accepted") for node in nodes] == [30, 30]
    engine.dispose()


@pytest.mark.process
def test_both_nodes_sweeping_the_same_backlog_act_once(tmp_path, database_url,
                                                       server_factory):
    """A backlog left ``received`` (a node died, or the database was away) is found by
    every node's sweep at once; the conditional claim lets exactly one act on each."""
    paths, cfg, engine = _nodes(tmp_path, database_url)
    book, ids = _contacts(engine, cfg, 150)
    intake = Intake(engine)
    intake.start()
    futures = [intake.submit(Arrival(raw=message(subject="unsubscribe"),
                                     mail_from="someone@people.test",
                                     rcpt_tos=(book.address(Box.UNSUBSCRIBE, cid),)))
               for cid in ids]
    stored = [f.result(30) for f in futures]
    intake.stop()
    assert len(set(stored)) == len(ids)

    with ThreadPoolExecutor(2) as pool:  # start both at once: both recover the backlog
        nodes = list(pool.map(server_factory, paths))
    wait_all_done(engine, len(ids))
    time.sleep(1.2)
    assert _opt_outs(engine) == {contact_id: 1 for contact_id in ids}
    per_node = [node.count("message.processed") for node in nodes]
    assert sum(per_node) == len(ids), per_node
    recovered = [node.wait_for("server.started")["recovered"] for node in nodes]
    assert max(recovered) > 0  # the backlog was there for the taking
    engine.dispose()


@pytest.mark.process
@pytest.mark.empty_database
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_nodes_upgrading_a_fresh_database_at_once_both_succeed(tmp_path, database_url):
    """Each node's one-shot ``db upgrade`` may start at the same moment on a new database;
    an advisory lock makes the second wait for the first instead of failing halfway."""
    paths = [write_config(tmp_path / f"up-{n}.toml", database_url) for n in range(3)]
    procs = [subprocess.Popen([sys.executable, "-m", "feedback_mta", "db", "upgrade", "--json",
                               "--config", str(p)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for p in paths]
    results = [(proc.wait(120), *proc.communicate()) for proc in procs]
    assert [code for code, _, _ in results] == [0, 0, 0], results
    changed = [json.loads(out)["changed"] for _, out, _ in results]
    assert changed.count(True) == 1, changed  # one migrated, the others found it done
    engine = sa.create_engine(database_url)
    assert db.current_revision(engine) == db.head_revision()
    engine.dispose()

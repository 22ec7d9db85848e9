"""``serve --workers N``: several processes on one port (SO_REUSEPORT), one database."""

from __future__ import annotations

import os
import signal

import pytest

from tests.support import inbound_rows, message, seed, send, wait_all_done, wait_until


@pytest.mark.process
def test_two_workers_share_the_port_and_the_work(server_factory, config_file, engine, cfg):
    s = seed(engine, cfg, contacts=3)
    server = server_factory(config_file, args=("--workers", "2"))
    started = server.wait_for("server.workers_started")
    assert started["workers"] == 2 and started["port"] == server.port
    workers = {server.wait_for("server.started", worker=i)["pid"] for i in (0, 1)}
    assert workers == set(started["pids"]) and len(workers) == 2

    # Each message on its own connection: the kernel spreads connections over the workers.
    for i in range(40):
        raw = message(subject="unsubscribe", message_id=f"w{i}@client.test")
        assert send(server.port, "", [s.unsubscribe(s.contact_ids[i % 3])], raw)[0] == 250
    rows = wait_all_done(engine, 40)
    assert sorted(r["reason"] for r in rows) == ["already opted out"] * 37 + ["opted out"] * 3
    wait_until(lambda: server.count("message.processed") == 40, what="40 processed lines")
    accepted_by = {e["worker"] for e in server.events if e.get("event") == "message.accepted"}
    assert accepted_by == {0, 1}
    # The scheduler runs once, in worker 0.
    assert [e["worker"] for e in server.events if e.get("event") == "scheduler.started"] == [0]

    assert server.stop() == 0
    stopped = [e for e in server.events if e.get("event") == "server.stopped"]
    assert sorted(e["worker"] for e in stopped) == [0, 1]
    assert sum(e["stored"] for e in stopped) == 40


@pytest.mark.process
def test_a_dead_worker_stops_the_service_for_systemd_to_restart(server_factory, config_file,
                                                                  engine, cfg):
    s = seed(engine, cfg, contacts=1)
    server = server_factory(config_file, args=("--workers", "2"))
    server.wait_for("server.workers_started")
    pids = {i: server.wait_for("server.started", worker=i)["pid"] for i in (0, 1)}
    assert send(server.port, "", [s.unsubscribe(s.contact_ids[0])], message())[0] == 250

    os.kill(pids[1], signal.SIGKILL)
    exited = server.wait_for("server.worker_exited", worker=1)
    assert (exited["pid"], exited["code"]) == (pids[1], -signal.SIGKILL)
    assert server.proc.wait(30) == 1  # systemd's Restart=on-failure takes it from here
    # The other worker drained and stopped; nothing acknowledged was lost.
    assert server.wait_for("server.stopped", worker=0)["drained"] is True
    assert len(inbound_rows(engine)) == 1


@pytest.mark.process
def test_two_workers_share_the_http_port_too(server_factory, tmp_path, database_url, engine):
    import httpx

    from tests.conftest import write_config

    path = write_config(tmp_path / "workers-http.toml", database_url,
                        http={"listen": "127.0.0.1:0"})
    server = server_factory(path, args=("--workers", "2"))
    server.wait_for("server.workers_started")
    ports = {server.wait_for("http.started", worker=i)["port"] for i in (0, 1)}
    assert len(ports) == 1
    [port] = ports
    for _ in range(20):  # a new connection each: the kernel spreads them
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    wait_until(lambda: server.count("http.request") == 20, what="20 request lines")
    served_by = {e["worker"] for e in server.events if e.get("event") == "http.request"}
    assert served_by == {0, 1}
    assert server.stop() == 0

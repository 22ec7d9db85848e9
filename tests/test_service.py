"""The service as one assembly: started in order, stopped in reverse, in this process."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest

from feedback_mta import config as config_mod
from feedback_mta.service.serve import Controller, ListenError
from tests import logroute
from tests.conftest import write_config
from tests.support import wait_until


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


def test_a_start_that_fails_half_way_stops_what_had_started(tmp_path, database_url, engine):
    """The SMTP port is taken: everything before it (senders, outbox, processors, intake,
    scheduler, HTTP) had started, and is stopped again before start() raises."""
    heard: list[dict] = []
    before = _threads()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        path = write_config(tmp_path / "c.toml", database_url,
                            smtp={"port": taken.getsockname()[1]},
                            http={"listen": "127.0.0.1:0"},
                            processing={"own_process": False})
        logroute.SERVERS.add(heard.append)
        try:
            with pytest.raises(ListenError, match=r"\[smtp\] host, port"):
                Controller(config_mod.load(path, env={})).start()
        finally:
            logroute.SERVERS.remove(heard.append)
    started = [e["event"] for e in heard]
    assert "scheduler.started" in started and "http.started" in started
    assert "server.started" not in started
    http_port = next(e["port"] for e in heard if e["event"] == "http.started")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=5)
    wait_until(lambda: _threads() <= before, timeout=15,
               what="every thread the start made to end",
               log=lambda: str(sorted(t.name for t in _threads() - before)))


def test_a_controller_serves_and_stops_again(tmp_path, database_url, engine):
    path = write_config(tmp_path / "c.toml", database_url, http={"listen": "127.0.0.1:0"},
                        processing={"own_process": False})
    before = _threads()
    for _ in range(2):  # the same config, twice in one process
        controller = Controller(config_mod.load(path, env={})).start()
        service = controller.service
        assert service.smtp_address is not None and service.http_address is not None
        with socket.create_connection(service.smtp_address, timeout=5) as sock:
            assert sock.recv(100).startswith(b"220 ")
        answer = httpx.get(f"http://127.0.0.1:{service.http_address[1]}/healthz", timeout=5)
        assert answer.status_code == 200
        controller.stop()
        with pytest.raises(OSError):
            socket.create_connection(service.smtp_address, timeout=5)
    wait_until(lambda: _threads() <= before, timeout=15, what="every thread to end",
               log=lambda: str(sorted(t.name for t in _threads() - before)))


def test_the_service_runs_on_the_callers_event_loop(tmp_path, database_url, engine):
    """``async with Service(config)``: the same assembly on a loop the caller owns."""
    import asyncio

    from feedback_mta.service.serve import Service

    path = write_config(tmp_path / "c.toml", database_url, processing={"own_process": False})

    async def session() -> bytes:
        async with Service(config_mod.load(path, env={})) as service:
            assert service.smtp_address is not None
            reader, writer = await asyncio.open_connection(*service.smtp_address)
            greeting = await reader.readline()
            writer.write(b"QUIT\r\n")
            await reader.readline()
            writer.close()
            await writer.wait_closed()
            return greeting

    assert asyncio.run(session()).startswith(b"220 ")

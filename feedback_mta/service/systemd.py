"""systemd's notify protocol and watchdog, without a dependency (sd_notify(3)).

``serve`` says READY=1 once it listens and STOPPING=1 on SIGTERM; with ``WatchdogSec=`` it
pings WATCHDOG=1 only while the event loop turns and the intake writer and processors live.
Under ``--workers`` the supervisor speaks for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
from collections.abc import Callable
from typing import Protocol

from feedback_mta import logs

log = logs.get(__name__)


class _Alive(Protocol):
    @property
    def alive(self) -> bool: ...


def watchdog_interval(any_pid: bool = False) -> float | None:
    """Seconds between watchdog pings (half of ``WatchdogSec``), or None without one.

    ``WATCHDOG_PID`` names the process systemd watches; a worker of ``--workers`` pings
    its supervisor instead, at the same pace (``any_pid``)."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid()) and not any_pid):
        return None
    return int(usec) / 1e6 / 2


def start_watchdog(intake: _Alive, processor: _Alive, ping: Callable[[], object],
                    interval: float | None) -> asyncio.Task | None:
    """``ping`` (``WATCHDOG=1``) every ``interval`` while the loop turns and the threads live.

    A ping proves the event loop still runs (it is sent from it) and that the intake writer
    and the processors are alive; if one of them died, the pings stop and systemd restarts
    the service, and what was stored is recovered on start.
    """
    if interval is None:
        return None

    async def pings() -> None:
        while True:
            if intake.alive and processor.alive:
                ping()
            else:
                log.error("systemd.watchdog_withheld", intake=intake.alive,
                          processors=processor.alive)
            await asyncio.sleep(interval)

    return asyncio.get_running_loop().create_task(pings())


def notify_systemd(state: str) -> None:
    """sd_notify(3) without a dependency: one datagram to $NOTIFY_SOCKET, if set."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        log.warning("systemd.notify_failed", state=state)


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Linux: ``sig`` for this process when its parent dies, even by SIGKILL, so no worker
    (or processing process) is left holding the port and the database (prctl
    PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, sig)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # already gone before the prctl took effect
        os._exit(1)

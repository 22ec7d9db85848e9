"""The systemd units, checked by systemd's own tools, and the notify protocol, spoken by the
real server to a real ``$NOTIFY_SOCKET`` the way PID 1 would receive it.

``systemd-analyze`` comes from Debian's systemd package (``.ci/run`` installs it); without
it the unit checks skip with that reason. The notify test needs nothing but the server.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, write_config

UNITS = ROOT / "systemd"
SERVICE = "feedback-mta.service"
UPGRADE = "feedback-mta-db-upgrade.service"
#: The exposure score (0 safest .. 10) the units must stay under; the docs state the figures.
MAX_EXPOSURE = 2.0

analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(analyze is None,
                                   reason="systemd-analyze not installed (Debian: systemd)")


@pytest.fixture
def installed_units(tmp_path) -> Path:
    """The units as installed, their ExecStart pointing at this checkout's entry point (verify
    checks that the binary exists and is executable)."""
    entry = Path(sys.executable).parent / "feedback-mta"
    assert entry.exists(), entry
    for name in (SERVICE, UPGRADE):
        text = (UNITS / name).read_text().replace("/usr/local/bin/feedback-mta", str(entry))
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.process
@needs_analyze
def test_units_verify_cleanly(installed_units):
    done = subprocess.run([analyze, "verify", "--man=no", SERVICE, UPGRADE],
                          cwd=installed_units, capture_output=True, text=True, timeout=60)
    # verify exits 0 even for unknown keys; any line it prints is a finding.
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


@pytest.mark.process
@needs_analyze
def test_a_typo_in_a_unit_is_caught(installed_units):
    """The check above can fail: a misspelt hardening key is reported, not ignored."""
    unit = installed_units / SERVICE
    unit.write_text(unit.read_text().replace("ProtectClock=yes", "ProtectClok=yes"))
    done = subprocess.run([analyze, "verify", "--man=no", SERVICE], cwd=installed_units,
                          capture_output=True, text=True, timeout=60)
    assert "Unknown key 'ProtectClok'" in done.stderr


@pytest.mark.process
@needs_analyze
@pytest.mark.parametrize("name", [SERVICE, UPGRADE])
def test_exposure_score(installed_units, name):
    # --threshold is in tenths (systemd keeps the score as 0..100): 20 is 2.0.
    done = subprocess.run([analyze, "security", "--offline=yes",
                           f"--threshold={round(MAX_EXPOSURE * 10)}", name],
                          cwd=installed_units, capture_output=True, text=True, timeout=60)
    score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout).group(1))
    print(f"{name}: exposure {score}")
    assert done.returncode == 0 and score <= MAX_EXPOSURE, done.stdout[-2000:]


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(UNITS / name)
    return parser


@pytest.mark.process
def test_the_service_has_what_the_design_asks():
    service = _unit(SERVICE)["Service"]
    assert service["Type"] == "notify"
    assert service["User"] == service["Group"] == "feedback-mta"
    assert service["StateDirectory"] == service["ConfigurationDirectory"] == "feedback-mta"
    assert service["ExecStart"].endswith("feedback-mta serve")
    assert service["AmbientCapabilities"] == service["CapabilityBoundingSet"] \
        == "CAP_NET_BIND_SERVICE"
    for key, value in {"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                       "PrivateDevices": "yes", "NoNewPrivileges": "yes"}.items():
        assert service[key] == value, key
    assert "@system-service" in (UNITS / SERVICE).read_text()
    unit = _unit(SERVICE)["Unit"]
    assert UPGRADE in unit["Requires"] and UPGRADE in unit["After"]
    upgrade = _unit(UPGRADE)["Service"]
    assert (upgrade["Type"], upgrade["ExecStart"].split()[-2:]) == ("oneshot", ["db", "upgrade"])
    assert upgrade["CapabilityBoundingSet"] == ""


@pytest.mark.process
def test_sysusers_creates_the_service_user(tmp_path):
    sysusers = shutil.which("systemd-sysusers")
    if sysusers is None:
        pytest.skip("systemd-sysusers not installed (Debian: systemd)")
    (tmp_path / "etc").mkdir()
    subprocess.run([sysusers, f"--root={tmp_path}", str(UNITS / "feedback-mta.sysusers.conf")],
                   check=True, capture_output=True, timeout=60)
    user = (tmp_path / "etc" / "passwd").read_text().split(":")
    assert (user[0], user[5], user[6].strip()) == ("feedback-mta", "/var/lib/feedback-mta",
                                                   "/usr/sbin/nologin")


def _datagrams(sock: socket.socket, until: str, timeout: float) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if until in got[-1]:
            break
    return got


def _serve_notifying(tmp_path, url: str, **env: str
                     ) -> tuple[subprocess.Popen, socket.socket]:
    """``serve`` with ``$NOTIFY_SOCKET`` bound here, as PID 1 would have it."""
    path = write_config(tmp_path / "n.toml", url)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "feedback_mta", "serve", "--config", str(path)], cwd=ROOT,
        env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, sock


@pytest.mark.process
def test_notify_ready_watchdog_and_stopping(tmp_path, sqlite_url):
    """READY=1 only once the port answers; WATCHDOG=1 at half of WatchdogSec; STOPPING=1 on
    SIGTERM, then a clean exit."""
    proc, sock = _serve_notifying(tmp_path, sqlite_url, WATCHDOG_USEC="400000")
    try:
        ready = _datagrams(sock, "READY=1", 60)
        assert ready and "READY=1" in ready[-1], ready
        port = int(re.search(r"STATUS=listening on 127\.0\.0\.1:(\d+)", ready[-1]).group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            assert client.makefile("rb").readline().startswith(b"220 ")
        pings = _datagrams(sock, "never", 1.1)
        assert 3 <= pings.count("WATCHDOG=1") <= 7, pings  # every 0.2 s
        proc.send_signal(signal.SIGTERM)
        stopping = _datagrams(sock, "STOPPING=1", 30)
        assert any(d.startswith("STOPPING=1") for d in stopping), stopping
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()


@pytest.mark.process
def test_no_watchdog_pings_for_another_pid(tmp_path, sqlite_url):
    """WATCHDOG_PID names the process systemd watches; a child that inherited it is quiet."""
    proc, sock = _serve_notifying(tmp_path, sqlite_url, WATCHDOG_USEC="200000",
                                  WATCHDOG_PID="1")
    try:
        assert "READY=1" in _datagrams(sock, "READY=1", 60)[-1]
        assert "WATCHDOG=1" not in _datagrams(sock, "never", 0.6)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        sock.close()

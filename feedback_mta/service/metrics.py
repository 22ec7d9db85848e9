"""What Prometheus scrapes (``/metrics``) and what a load balancer or systemd asks (``/healthz``).

The counters live in this process (one registry, ``REGISTRY``); the flow's stages bump them
as messages pass: ``smtp`` (accepted, store failures, time to 250), ``process`` (per kind and
final state), ``actions`` (committed audit events: complaints per account), ``scheduler``
(job runs), ``outbound`` (delivery results); the session gauge reads ``smtp.Sessions``.
Two numbers come from the database at scrape time instead, because they are facts about the
shared queue, not about this process: how many stored messages are still ``received``, and
how old the oldest is.

The HTTP side is the standard library's threading server on its own thread: a scrape or a
health check never runs on the SMTP event loop, and a slow database only slows the scrape.
Keep ``[metrics] listen`` on loopback or a management network: it is not authenticated.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.engine import Engine

from feedback_mta import events, logs
from feedback_mta.actions import listen
from feedback_mta.counters import COMPLAINTS, GUARD, REGISTRY
from feedback_mta.logs import error_line
from feedback_mta.queries.health import health
from feedback_mta.store import db
from feedback_mta.store.models import InboundMessage, MessageState, table_of, utcnow

log = logs.get(__name__)


def count_event(action: str, fields: dict) -> None:
    """Count an audit event once it is committed (an ``actions`` listener): complaints per
    account come from ``contact.complained``, whichever path recorded it; the account
    guard's changes by the state they lead to."""
    if action == events.CONTACT_COMPLAINED:
        COMPLAINTS.labels(str(fields.get("account_id"))).inc()
    elif action in _GUARD:
        GUARD.labels(_GUARD[action]).inc()


_GUARD = {events.ACCOUNT_WARNED: "warned", events.ACCOUNT_PAUSED: "paused",
          events.ACCOUNT_RECOVERED: "ok", events.ACCOUNT_RESUMED: "ok"}


listen(count_event)


_T = table_of(InboundMessage)


class QueueCollector:
    """``received`` messages in the shared database, read at scrape time (indexed on state)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("feedback_mta_queue_received",
                                  "Stored messages still waiting to be processed (all nodes).")
        oldest = GaugeMetricFamily("feedback_mta_queue_oldest_seconds",
                                   "Age of the oldest message still waiting (0: none).")
        try:
            with db.reader(self._engine).connect() as conn:
                count, first = conn.execute(
                    sa.select(sa.func.count(), sa.func.min(_T.c.received_at))
                    .where(_T.c.state == MessageState.RECEIVED)).one()
        except sa.exc.SQLAlchemyError as exc:
            log.warning("metrics.queue_unreadable", error=error_line(exc))
            return  # no sample beats a wrong one; /healthz says why
        depth.add_metric([], count)
        age = (utcnow() - db.aware(first)).total_seconds() if first is not None else 0.0
        oldest.add_metric([], max(0.0, age))
        yield depth
        yield oldest


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # http.server calls it by this name
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
        elif path == "/healthz":
            ok, details = health(self.server.engine)
            if not ok:
                log.warning("health.failed", database=details["database"])
            self._send(200 if ok else 503, "application/json",
                       json.dumps(details).encode() + b"\n")
        else:
            self._send(404, "text/plain", b"not found: try /metrics or /healthz\n")

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # scrapes are not news
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    engine: Engine


class Endpoint:
    """The HTTP endpoint on its own thread; ``address`` is where it is bound."""

    def __init__(self, host: str, port: int, engine: Engine) -> None:
        self._collector = QueueCollector(engine)
        REGISTRY.register(self._collector)
        self._server = _Server((host, port), _Handler)
        self._server.engine = engine
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics",
                                        daemon=True)
        self.address = self._server.server_address[:2]

    def start(self) -> Endpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        REGISTRY.unregister(self._collector)

"""The process's metric instruments: counters, histograms and the session gauge.

A leaf, like ``logs``: every stage bumps its own instruments as messages pass (``edge``
accepted, refused, time to 250; the processor per kind and final state; the outbox per
delivery result; the scheduler per job run). ``service.metrics`` serves them, with two
gauges it reads from the shared database at scrape time, and counts complaints per account
from committed audit events.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

# The ``*_created`` series double the output and no dashboard of ours reads them.
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)

ACCEPTED = Counter("feedback_mta_messages_accepted", "Messages committed and answered 250.",
                   ["protocol"], registry=REGISTRY)
STORE_FAILED = Counter("feedback_mta_messages_store_failed",
                       "Messages answered 451 because they could not be committed.",
                       registry=REGISTRY)
RCPT_REFUSED = Counter("feedback_mta_rcpt_refused", "RCPT TO refused with 550 5.1.1.",
                       registry=REGISTRY)
SESSIONS_REFUSED = Counter("feedback_mta_sessions_refused",
                           "Connections answered 421 past [smtp] max_sessions.",
                           registry=REGISTRY)
INTAKE_SECONDS = Histogram(
    "feedback_mta_intake_seconds",
    "End of DATA to the 250 (or 451): the durable commit of the raw message.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY)
PROCESSED = Counter("feedback_mta_messages_processed",
                    "Stored messages finished, by kind and final state.",
                    ["kind", "state"], registry=REGISTRY)
PROCESS_SECONDS = Histogram(
    "feedback_mta_process_seconds", "Parse, classify and act on one stored message.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
    registry=REGISTRY)
COMPLAINTS = Counter("feedback_mta_complaints",
                     "Feedback-loop complaints attributed to a contact, by account id.",
                     ["account"], registry=REGISTRY)
SCHEDULER_RUNS = Counter("feedback_mta_scheduler_runs",
                         "Scheduled job runs, by job id and result (ok, error, missed).",
                         ["job", "result"], registry=REGISTRY)
OUTBOUND = Counter("feedback_mta_outbound", "Outbound delivery attempts, by result.",
                   ["result"], registry=REGISTRY)
WEBHOOKS = Counter("feedback_mta_webhooks",
                   "Webhook delivery attempts, by outcome (delivered, retrying, failed).",
                   ["outcome"], registry=REGISTRY)
HTTP_REQUESTS = Counter("feedback_mta_http_requests",
                        "HTTP API requests answered, by route and status code.",
                        ["route", "status"], registry=REGISTRY)
SESSIONS = Gauge("feedback_mta_sessions", "SMTP/LMTP sessions open now.", registry=REGISTRY)
HTTP_CONNECTIONS = Gauge("feedback_mta_http_connections",
                         "HTTP connections open now (counted against [http] max_connections).",
                         registry=REGISTRY)
HTTP_CLOSED = Counter(
    "feedback_mta_http_connections_closed",
    "HTTP connections refused or closed by the server's own limits, by reason "
    "(max_connections, max_connections_per_ip, header_timeout, idle_timeout).",
    ["reason"], registry=REGISTRY)
HOOKS = Counter("feedback_mta_hooks",
                "Requests to /u/TOKEN and /hooks/PROVIDER, by provider and outcome (stored, "
                "refused: a bad signature, token or replay; malformed; off).",
                ["provider", "outcome"], registry=REGISTRY)
GUARD = Counter("feedback_mta_account_guard",
                "Account guard changes (account.warned, .paused, .recovered, .resumed), by the "
                "state the account went to.", ["state"], registry=REGISTRY)

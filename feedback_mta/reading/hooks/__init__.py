"""Feedback posted over HTTPS: one module per provider, each citing its documentation,
each offering what ``base.Provider`` lists (``NAME``, ``enabled``, ``verify``, ``split``,
``read``), in one registry, the way ``formats.REGISTRY`` lists mail formats. The registry
is typed by the protocol, so mypy checks every module against it (a provider's settings
are its own ``[webhooks.<name>]`` table, hence ``Provider[Any]`` here). ``decide`` is what
processing asks of a stored HTTP arrival, where ``reading.classify`` is asked of a stored
mail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedback_mta.addresses import Box, Recipient
from feedback_mta.kinds import Kind
from feedback_mta.reading.classify import Classification
from feedback_mta.reading.hooks import mailgun, one_click, postmark, sendgrid, ses
from feedback_mta.reading.hooks.base import Provider, synthetic
from feedback_mta.reading.parse import ParsedMessage


def _by_name(*providers: Provider[Any]) -> dict[str, Provider[Any]]:
    """Each provider by its name; mypy names the member a module lacks or gets wrong."""
    return {p.NAME: p for p in providers}


#: ``/hooks/<name>`` -> its module.
PROVIDERS: dict[str, Provider[Any]] = _by_name(ses, sendgrid, mailgun, postmark)


def decide(provider: str, raw: bytes, recipients: Sequence[Recipient]
           ) -> tuple[ParsedMessage, Classification]:
    """(parsed, classification) of one stored HTTP arrival, as ``classify`` gives for mail.

    A one-click unsubscribe was stored to the contact's ``unsubscribe+TOKEN`` address, so
    it is the unsubscribe box's, exactly as the mailto. A provider's event is what its
    module reads, or ``unknown`` (stored, no action) when it is not feedback.
    """
    parsed = synthetic(raw)
    if provider == one_click.NAME:
        box = next((r for r in recipients if r.box is Box.UNSUBSCRIBE), None)
        kind = Kind.UNSUBSCRIBE if box is not None else Kind.UNKNOWN
        return parsed, Classification(kind, box, why="one-click (RFC 8058)",
                                      ours=tuple(recipients), provider=provider)
    module = PROVIDERS.get(provider)
    if module is None:
        return parsed, Classification(Kind.UNKNOWN, why=f"no provider {provider!r}",
                                      provider=provider)
    report = module.read(raw)
    if report is None:
        return parsed, Classification(Kind.UNKNOWN, why=f"{provider}: not feedback",
                                      provider=provider)
    return parsed, Classification(report.kind, why=report.why, report=report,
                                  provider=provider)

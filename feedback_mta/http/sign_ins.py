"""The review page's sign-in requests, worked out after their answer.

``POST /review/sign-in`` answers the same, in the same time, for an admin and for anyone
else (the timing must not tell who may review); whether the address may review, its link
and the mail are worked out here afterwards, on a ``Runner`` thread that the HTTP server
starts and stops with itself. One at a time, so that an address's unused links are counted
before the next is made; at most ``MAX_WAITING`` wait, and a flood of them queues no more
work (the answer is the same; whoever asked can ask again). Without ``[outbound] relay``
no link is made (it could not be sent): the answer is still the same, and a warning
(``review.link_unsent``) tells the operator.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from feedback_mta import logs
from feedback_mta.actions import Actor, unit_of_work
from feedback_mta.addresses import AddressBook, Box
from feedback_mta.config import Config
from feedback_mta.runner import Runner

log = logs.get(__name__)

#: Sign-in requests waiting to be worked out, at the most.
MAX_WAITING = 32


class SignIns(Runner[tuple[str, str]]):
    """(address, the page's base URL) in; a sign-in link mailed, if the address may review."""

    name = "review-sign-in"

    def __init__(self, config: Config, engine: Engine, book: AddressBook,
                 on_mail: Callable[[list[int]], None]) -> None:
        super().__init__(threads=1, max_batch=1)
        self.config, self.engine, self.book, self.on_mail = config, engine, book, on_mail

    def offer(self, address: str, base: str) -> bool:
        """Queue a request; False (and nothing queued) when too many wait already."""
        if self._queue.qsize() >= MAX_WAITING:
            log.warning("review.link_refused", reason="too many sign-ins at once")
            return False
        self.put((address, base))
        return True

    def run_batch(self, batch: list[tuple[str, str]]) -> None:
        config, book = self.config, self.book
        for address, base in batch:
            with unit_of_work(self.engine, Actor("web", "web")) as uow:
                uow.review.send_sign_in_link(address, base, config.review.link_lifetime,
                                             from_name=config.outbound.from_name,
                                             sender=f"{Box.POSTMASTER.value}@{book.domain}",
                                             domain=book.domain,
                                             deliverable=config.outbound.relay_address
                                             is not None)
                queued = list(uow.recorder.queued_mail)
            self.on_mail(queued)

    def failed(self, batch: list[tuple[str, str]], exc: Exception) -> None:
        log.error("review.link_failed", error=logs.error_line(exc))

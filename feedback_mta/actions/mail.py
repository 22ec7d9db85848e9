"""Mail we send (acknowledgements, digests): composed here, queued in the transaction of
the change it reports (a transactional outbox), delivered after the commit by the service.

What we send follows RFC 3834: ``Auto-Submitted: auto-replied``, the null envelope sender
(so no bounce or vacation reply ever comes back to us), threaded to the mail it answers
with In-Reply-To / References.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from feedback_mta import events
from feedback_mta.actions.audit import Recorder
from feedback_mta.store.models import Lead, OutboundMessage, utcnow


def compose(*, to: str, reply_address: str, from_name: str, domain: str, subject: str,
            in_reply_to: str | None, text: str, references: tuple[str, ...] = ()) -> bytes:
    """An answer as bytes, ready for the relay. Pure."""
    msg = EmailMessage()
    msg["From"] = formataddr((from_name, reply_address))
    msg["To"] = to
    subject = " ".join(subject.split())  # never a line break in a header we write
    msg["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}".strip()
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = make_msgid("ack", domain=domain)
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        refs = [*references, in_reply_to][-10:]
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["Precedence"] = "auto_reply"
    msg.set_content(text + "\n")
    return bytes(msg)


def digest(*, to: str, reply_address: str, from_name: str, subject: str, message_id: str,
           text: str, headers: Mapping[str, str] | None = None) -> bytes:
    """A digest (not an answer: ``auto-generated``) as bytes, ready for the relay; with
    ``headers`` of our own besides. Pure."""
    msg = EmailMessage()
    for name, value in (headers or {}).items():
        msg[name] = value
    msg["From"] = formataddr((from_name, reply_address))
    msg["To"] = to
    msg["Subject"] = " ".join(subject.split())
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    msg.set_content(text)
    return bytes(msg)


class Mail:
    """The outbox: mail queued in the transaction of the change it reports."""

    __slots__ = ("recorder", "session")

    def __init__(self, recorder: Recorder) -> None:
        self.recorder, self.session = recorder, recorder.session

    def queue(self, purpose: str, rcpt_to: str, raw: bytes,
                   lead: Lead | None = None, mail_from: str = "") -> OutboundMessage:
        """Queue a mail in this transaction; the service sends it after the commit.
        ``mail_from`` is the envelope sender: the null sender (no bounce comes back) unless
        a bounce is worth hearing (a confirmation request's ``bounce+TOKEN``)."""
        mail = OutboundMessage(inbound_message_id=self.recorder.inbound_message_id,
                               lead_id=lead.id if lead else None, purpose=purpose,
                               mail_from=mail_from, rcpt_to=rcpt_to, raw=raw)
        self.session.add(mail)
        self.session.flush()
        assert mail.id is not None
        self.recorder.queued_mail.append(mail.id)
        self.recorder.note(events.MAIL_QUEUED, outbound_id=mail.id, purpose=purpose,
                           lead_id=lead.id if lead else None,
                           inbound_message_id=self.recorder.inbound_message_id)
        return mail

"""Bounces that are not RFC 3464 DSNs: qmail's "failure notice", Exim's "Mail delivery
failed", old Sendmail, Exchange, Yahoo, AOL and the rest. flufl.bounce (Mailman's bounce
detectors) finds the failed addresses and whether the failure is permanent; where it knows
no detector for the mailer (DragonFly Mail Agent, Amazon WorkMail, ...), the addresses the
notice itself names, when it says delivery failed or a family we know wrote it
(``mtas``). We add the reason (and hard or soft) from the words next to each address, or
what its family says of it (``dsn.hardness``), and the quoted copy of the original, which
carries our token.

Only mail that looks like a bounce is scanned (null sender, a MAILER-DAEMON/postmaster
From, a bounce subject, ``X-Failed-Recipients`` or a known family's headers), so a
person's mail that happens to quote an address is never read as one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.message import Message

from feedback_mta.kinds import Kind
from feedback_mta.reading import mtas
from feedback_mta.reading.formats.dsn import hardness, status_of
from feedback_mta.reading.formats.report import (
    Bounced,
    Report,
    address_in,
    headers_only,
    original,
    unique,
)
from feedback_mta.reading.parse import ParsedMessage

_SUBJECT = re.compile(r"undeliver|undelivered|delivery (?:status notification|failure|failed)|"
                      r"failure notice|returned mail|mail delivery (?:failed|failure|system)|"
                      r"delivery has failed|could not be delivered|non[- ]?delivery|"
                      r"unzustellbar|non remis|no se puede entregar|"
                      r"エラー通知|メールエラー|配信エラー|不達", re.IGNORECASE)
_DAEMON = re.compile(r"^(?:mailer-daemon|postmaster|post_master|mail-daemon|mdaemon|"
                     r"mail\.?delivery)[@.]",
                     re.IGNORECASE)
_COPY = re.compile(r"^[ \t>]*(?:-{2,}\s*)?(?:this is a copy of (?:the|your) message|below "
                   r"this line is a copy of the message|original message follows|the original "
                   r"message (?:was(?! received)|follows)|copy of the original|"
                   r"unsent message (?:below|follows)|message headers follow|"
                   r"-+ ?original message ?-+|below is a copy "
                   r"of the original message|-+ ?returned message ?-+|-+ ?original message|"
                   r"original mail as follows|-+ ?the header of the original message|"
                   r"original message headers:?)[^\n]*\n",
                   re.IGNORECASE | re.MULTILINE)
#: A notice that says delivery failed, in words: where flufl.bounce knows no detector for
#: the mailer, the addresses such a notice names (other than its own) are the failed ones.
_FAILED = re.compile(r"error delivering|could not be delivered|couldn'?t be delivered|"
                     r"delivery (?:to the following .{0,40})?(?:has )?failed|undeliver|"
                     r"permanent(?:ly)? (?:error|fatal|failure)|was not delivered|"
                     r"unable to deliver|not (?:be )?delivered|failed to deliver|"
                     r"(?:user|mailbox|recipient|address) (?:unknown|not found)|"
                     r"returned to sender|did not like our|"
                     r"error (?:has )?occurred while (?:trying|attempting) to deliver|"
                     r"had (?:permanent )?(?:fatal|delivery) errors|failure reasons|"
                     r"rejected by (?:a )?remote mail server|transcript of (?:the )?session|"
                     r"incorrectly constructed|cannot send message|deferred:|"
                     r"送信に失敗|送信できません|配信できません|届けることができません",
                     re.IGNORECASE)
_FAILED_TO = re.compile(r"(?:delivering your (?:mail|message) to|could not be delivered "
                        r"to|failed to deliver to):? <?([\w.+=-]+@[\w-]+(?:\.[\w-]+)+)",
                        re.IGNORECASE | re.ASCII)
_REPORTING = re.compile(r"(?:generating server|reporting-mta):\s*(?:dns;\s*)?([\w.-]+)",
                        re.IGNORECASE)
_ANY_ADDRESS = re.compile(r"[\w.+=-]+@[\w-]+(?:\.[\w-]+)+", re.ASCII)
_NOT_RECIPIENTS = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|root|noreply|"
                             r"no-reply|double-bounce)@", re.IGNORECASE)
#: The sender's own address, wherever a transcript or a header names it.
_SENDER = re.compile(r"(?:mail from:?|envelope-from|^from:)\s*<?([\w.+=-]+@[\w.-]+)",
                     re.IGNORECASE | re.MULTILINE)


def looks_like_bounce(msg: ParsedMessage) -> bool:
    return (msg.mail_from == "" or bool(_DAEMON.match(msg.from_address or ""))
            or bool(_SUBJECT.search(msg.subject or ""))
            or msg.header("x-failed-recipients") is not None
            or mtas.bounce_family(msg) is not None)


def _from_a_mailer_we_know(msg: ParsedMessage) -> bool:
    """A family we know wrote this bounce, and it can be no person's mail: the family is
    known only by bounces, or the message comes from a mailer (null sender, a
    MAILER-DAEMON or postmaster From). Then its notice names the failed addresses even in
    words we do not know."""
    if mtas.bounce_family(msg) is not None:
        return True
    return mtas.family(msg) is not None and (
        msg.mail_from == "" or bool(_DAEMON.match(msg.from_address or "")))


def _position(lowered_text: str, raw: object) -> tuple[int, str]:
    address = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    at = lowered_text.find(address.lower())
    return (at if at >= 0 else len(lowered_text), address)


def _context(text: str, address: str, others: Iterable[str] = ()) -> str:
    """The words about ``address``: from each place it is named (up to three) to the next
    blank line, or to the line that names another failed address (a transcript, one line
    per recipient). Office 365 names the address twice: the second time with the server's
    answer."""
    lowered = text.lower()
    pieces: list[str] = []
    at = lowered.find(address)
    while at >= 0 and len(pieces) < 3:
        end = text.find("\n\n", at)
        end = end if end > 0 else at + 600
        line_end = text.find("\n", at)
        for other in others:
            there = lowered.find(other, line_end if line_end > 0 else at + len(address))
            if at < there < end and other != address:
                end = text.rfind("\n", at, there) + 1 or there
        pieces.append(text[at:end][:600])
        at = lowered.find(address, max(end, at + len(address)))
    return " ".join(pieces)[:1200]


def _named(msg: ParsedMessage, notice: str) -> list[str]:
    """Addresses the human-readable notice (up to the returned copy) names, when it says
    delivery failed (or a family we know wrote it): not the notice's own sender or
    recipient, not a mailer's box unless the failure names it ("error delivering your
    mail to <postmaster@...>")."""
    if not _FAILED.search(notice) and not _from_a_mailer_we_know(msg):
        return []
    own = {a.lower() for value in (msg.from_address, *msg.headers.get("to", ()))
           for a in _ANY_ADDRESS.findall(value or "")}
    own.update(a.lower().strip(".") for a in _SENDER.findall(notice))
    named = (a.lower().strip(".") for a in _ANY_ADDRESS.findall(notice))
    failed_to = {a.lower() for a in _FAILED_TO.findall(notice)}
    return list(dict.fromkeys(a for a in named if a not in own and (
        a in failed_to or not _NOT_RECIPIENTS.match(a))))[:20]


def _original_recipient(copy: Message | None) -> list[str]:
    """The returned original's one recipient, where the notice names none (old Sendmail
    quotes only the transcript and the unsent message)."""
    if copy is None:
        return []
    addresses = [a.lower() for value in copy.get_all("To", []) + copy.get_all("Cc", [])
                 for a in _ANY_ADDRESS.findall(str(value))]
    return addresses if len(set(addresses)) == 1 else []


def _quoted_original(text: str, copy: re.Match[str] | None) -> Message | None:
    """The quoted copy's headers (all that is read of an original: our token, our return
    path), without parsing its body."""
    if not copy:
        return None
    rest = text[copy.end():].lstrip("\r\n")
    end = rest.find("\n\n")
    quoted = headers_only(rest[:end + 1] if end >= 0 else rest)
    return quoted if len(quoted) else None


def _unsplit(msg: ParsedMessage) -> str:
    """The text of multiparts no parser could split (a boundary parameter folded onto a
    line of its own, so it is no header): where a broken notice keeps its words."""
    return "\n".join(str(part.get_payload()) for ctype, part in msg.tree
                      if ctype.startswith("multipart/") and not part.is_multipart()
                      ).replace("\r\n", "\n")


def _failed(msg: ParsedMessage, text: str, notice: str,
            copy: re.Match[str] | None) -> dict[str, bool]:
    """The failed addresses, in the order the bounce names them, each permanent or not:
    flufl.bounce's detectors first; else what the notice names; else the returned
    original's one recipient; and ``X-Failed-Recipients``."""
    from feedback_mta.reading.formats.flufl_scan import all_failures

    temporary, permanent = all_failures(msg.message)
    found: dict[str, bool] = {}
    lowered = text.lower()
    failures = [(a, True) for a in permanent] + [(a, False) for a in temporary]
    failures.sort(key=lambda pair: _position(lowered, pair[0]))  # flufl gives sets
    for raw, is_permanent in failures:
        address = address_in(raw.decode("utf-8", "replace") if isinstance(raw, bytes)
                             else str(raw))
        if address:
            found.setdefault(address, is_permanent)
    if not found:  # no detector knows this mailer: where its family names them
        found.update((a, True) for a in mtas.failed(msg, notice))
    if not found:  # or what the notice itself names
        found.update((a, True) for a in _named(msg, notice if copy else text[:3000]))
    if not found and _FAILED.search(notice):  # or the returned original's one recipient
        found.update((a, True) for a in _original_recipient(_quoted_original(text, copy)))
    for value in msg.headers.get("x-failed-recipients", ()):
        for piece in value.split(","):
            address = address_in(piece)
            if address:
                found.setdefault(address, True)
    return found


def detect(msg: ParsedMessage) -> Report | None:
    if not looks_like_bounce(msg):
        return None
    text = msg.plain or _unsplit(msg)
    copy = _COPY.search(text)  # where the returned copy starts, if the bounce quotes it
    notice = text[:copy.start()] if copy else text
    found = _failed(msg, text, notice, copy)
    if not found:
        return None
    server = _REPORTING.search(notice)  # the server that wrote it (Office 365 names it)
    reporting = server.group(1) if server else None
    bounces = []
    for address, is_permanent in found.items():
        context = _context(text, address, found)
        sent = ""
        own = mtas.recipient(msg, address)
        if own is not None and own[0]:
            context, sent = own
        elif len(found) == 1 and not (context and mtas.per_recipient(msg)):
            # One recipient: the whole notice (up to the returned copy) speaks of it: the
            # lines next to its address often say little (Gmail, Exchange, Notes, ...).
            context = " ".join(notice.split())[:2000]
        status = status_of(context)
        if not is_permanent:
            status = status if status and status.startswith("4") else "4.0.0"
        hard, reason = hardness(status, context, hint=mtas.hint(msg, context),
                                command=sent or mtas.command(msg, context),
                                recipient=address, reporting=reporting)
        bounces.append(Bounced(address, hard, status, reason, " ".join(context.split())[:500]))
    return Report(Kind.BOUNCE, "legacy_bounce", recipients=unique(found),
                  bounces=tuple(bounces),
                  original=original(msg) or _quoted_original(text, copy),
                  why="non-standard bounce (flufl.bounce)")

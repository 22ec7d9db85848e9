"""RFC 8058 one-click unsubscribe, ``POST /u/TOKEN`` (https://www.rfc-editor.org/rfc/rfc8058).

The mail's ``List-Unsubscribe`` names ``PUBLIC_URL/u/TOKEN`` beside the mailto, and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` says a POST of exactly that body
unsubscribes: no cookie, no redirect, no page to click through (section 3.1). TOKEN is the
contact's signed unsubscribe token, the one in ``unsubscribe+TOKEN@``; the request is
stored as if mailed to that address, so the same handler (``handlers.unsubscribe``) and
the same events act on it. A GET only shows a page whose button posts (link scanners
follow GETs).
"""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import parse_qs

from feedback_mta.reading.hooks.base import Malformed, dedupe_key

NAME = "one-click"
BODY = "List-Unsubscribe=One-Click"


_MULTIPART_FIELD = re.compile(
    rb'name="?List-Unsubscribe"?\r?\n(?:[^\r\n]+\r?\n)*\r?\nOne-Click\r?\n')


def check_body(body: bytes, content_type: str = "") -> None:
    """The form body must carry ``List-Unsubscribe=One-Click`` (RFC 8058 section 3.1), as
    a urlencoded form or (section 3.2 allows it) a multipart one."""
    if "multipart/form-data" in content_type:
        if not _MULTIPART_FIELD.search(body):
            raise Malformed(f"the body must carry {BODY}")
        return
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise Malformed("the body is not a form") from None
    if "One-Click" not in fields.get("List-Unsubscribe", []):
        raise Malformed(f"the body must be {BODY} (RFC 8058)")


def event_id(token: str, day: date, resubscriptions: int = 0) -> str:
    """What makes a click one event: one click per link and day acts, its copies (a
    client's retry) are duplicates. After each resubscription a click acts again, so the
    count of them is part of it (left out while there is none, as before there were)."""
    base = f"{token.lower()}:{day.isoformat()}"
    return f"{base}:{resubscriptions}" if resubscriptions else base


def content_hash(token: str, day: date, resubscriptions: int = 0) -> str:
    """The stored click's content hash (``inbound_message.content_hash``)."""
    return dedupe_key(NAME, event_id(token, day, resubscriptions))

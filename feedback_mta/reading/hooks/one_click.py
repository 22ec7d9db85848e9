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

from urllib.parse import parse_qs

from feedback_mta.reading.hooks.base import Malformed

NAME = "one-click"
BODY = "List-Unsubscribe=One-Click"


def check_body(body: bytes) -> None:
    """The form body must carry ``List-Unsubscribe=One-Click`` (RFC 8058 section 3.1)."""
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise Malformed("the body is not a form") from None
    if "One-Click" not in fields.get("List-Unsubscribe", []):
        raise Malformed(f"the body must be {BODY} (RFC 8058)")

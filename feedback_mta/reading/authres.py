"""DMARC verdicts from ``Authentication-Results`` (RFC 8601), trusted only from our own MTAs.

Anyone can write an ``Authentication-Results`` header into a message, so only headers whose
authserv-id is listed in ``[security] trusted_authserv_ids`` count (RFC 8601 section 5: the
border MTA removes or renames foreign ones with its id). The topmost trusted header is the one
our upstream added last, so it wins.

Pure: header values in, a verdict out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_COMMENT = re.compile(r"\([^()]*\)")


def _strip_comments(value: str) -> str:
    previous = None
    while previous != value:  # nested comments: peel from the inside
        previous, value = value, _COMMENT.sub(" ", value)
    return value


@dataclass(frozen=True)
class MethodResult:
    method: str
    result: str
    properties: tuple[tuple[str, str], ...] = ()

    def prop(self, name: str) -> str | None:
        return next((v for k, v in self.properties if k == name), None)


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str
    results: tuple[MethodResult, ...]


def parse(value: str) -> AuthResults | None:
    """One ``Authentication-Results`` value, or None when it has no authserv-id."""
    value = _strip_comments(" ".join(value.split()))
    head, _, rest = value.partition(";")
    words = head.split()
    if not words:
        return None
    results = []
    for resinfo in rest.split(";"):
        tokens = resinfo.split()
        if not tokens or "=" not in tokens[0]:
            continue  # "none", or garbage
        method, _, result = tokens[0].partition("=")
        props = []
        for token in tokens[1:]:
            name, eq, prop_value = token.partition("=")
            if eq and "." in name:
                props.append((name.lower(), prop_value.strip('"').lower()))
        results.append(MethodResult(method.split("/")[0].lower(), result.lower(), tuple(props)))
    return AuthResults(words[0].lower().rstrip("."), tuple(results))


def dmarc(values: Iterable[str], trusted: Sequence[str], from_domain: str | None) -> str | None:
    """The DMARC result (``pass``, ``fail``, ``none``, ...) a trusted server gave the From
    domain, or None when no trusted header says anything about DMARC for it."""
    trusted_ids = {t.lower().rstrip(".") for t in trusted}
    domain = (from_domain or "").lower().rstrip(".")
    for value in values:
        parsed = parse(value)
        if parsed is None or parsed.authserv_id not in trusted_ids:
            continue
        for result in parsed.results:
            if result.method != "dmarc":
                continue
            header_from = result.prop("header.from")
            if header_from is None or header_from.rstrip(".") == domain:
                return result.result
    return None


#: Why a reply's From domain does not count as authenticated (``refusal``).
NO_DMARC = "no DMARC result from a trusted server"
DMARC_FAIL = "DMARC fail"


def refusal(values: Iterable[str], trusted: Sequence[str], sender: str) -> str | None:
    """Why a reply from ``sender`` may not act, as far as DMARC goes (``NO_DMARC``,
    ``DMARC_FAIL``), or None. Without trusted servers configured, nothing is checked."""
    if not trusted:
        return None
    verdict = dmarc(values, trusted, sender.rpartition("@")[2])
    if verdict is None:
        return NO_DMARC
    return DMARC_FAIL if verdict == "fail" else None

"""HCL (IBM Lotus) Domino: the reasons its notices name in its own words.

Source: go-sisimai ``lhost/via-domino.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

BOUNCE_ONLY = True  # its detect matches bounces only: a bounce signal (``mtas``)

PHRASES: dict[str, tuple[str, ...]] = {
    "filtered": ("cannot route mail to user",),
    "systemerror": ("several matches found in domino directory",),
    "userunknown": (
        "not listed in domino directory",
        "not listed in public name & address book",
        "no se encuentra en el directorio de domino",
        "non répertorié dans l'annuaire domino",
        "domino ディレクトリには見つかりません",
    ),
}


def detect(msg: ParsedMessage) -> bool:
    return (msg.subject or "").startswith(("DELIVERY FAILURE:", "DELIVERY_FAILURE:"))

"""Measure reply trimming: feedback_mta.reply_text against reply-parsing libraries.

    python3 -m pip install mail-parser-reply email-reply-parser     # the candidates
    python3 bench/replies.py [--talon DIR]                           # DIR: talon's sdist

Corpora:
* ours: ``tests/fixtures/replies`` with the table in ``tests/test_reply_text.py`` (new text and
  intent per message; clients, languages, HTML-only, the notification's own "Reply SPAM").
* talon (``--talon``, an unpacked ``pip download --no-binary :all: talon`` sdist):
  ``tests/fixtures/standard_replies/*.eml`` with the reply text its own tests expect, and
  ``tests/fixtures/html_replies/*.html`` (HTML-only replies from nine webmails and Outlooks).

For each trimmer it prints how many new texts match exactly (blank lines collapsed) and, on our
table, how many intents come out right when our intent reader is run on its output. Libraries
get the text/plain part, or for HTML-only mail the HTML with its tags stripped, as a caller
of those libraries would do.
"""

from __future__ import annotations

import argparse
import email
import email.iterators
import html
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from feedback_mta.reading.commands import VOCABULARY  # noqa: E402
from feedback_mta.reading.parse import parse  # noqa: E402
from feedback_mta.reading.reply_text import intent, new_text  # noqa: E402
from tests.test_reply_text import REPLIES, REPLIES_DIR  # noqa: E402


def _norm(text: str, *, loose: bool = False) -> str:
    if loose:  # talon's HTML expectations ignore all whitespace
        return re.sub(r"\s+", "", text or "")
    return re.sub(r"\n{2,}", "\n\n", (text or "").strip())


def _plain(text: str, body_html: str) -> str:
    if text.strip():
        return text
    return html.unescape(re.sub(r"<[^>]+>", "\n", body_html))


def trimmers() -> dict:
    found = {"feedback_mta.reply_text": lambda text, body_html: new_text(text, body_html)}
    try:
        from mailparser_reply import EmailReplyParser as MPR
        mpr = MPR(languages=["en", "de", "fr", "es"])
        found["mail-parser-reply"] = lambda t, h: mpr.parse_reply(_plain(t, h)) or ""
    except ImportError:
        print("(mail-parser-reply not installed: skipped)")
    try:
        from email_reply_parser import EmailReplyParser as ERP
        found["email-reply-parser"] = lambda t, h: ERP.parse_reply(_plain(t, h)) or ""
    except ImportError:
        print("(email-reply-parser not installed: skipped)")
    return found


def ours_corpus():
    for name, expected_text, expected_intent in REPLIES:
        parsed = parse((REPLIES_DIR / f"{name}.eml").read_bytes())
        yield name, parsed.text, parsed.html, parsed.subject, expected_text, expected_intent


def talon_corpus(root: Path):
    folder = root / "tests" / "fixtures" / "standard_replies"
    for eml in sorted(folder.glob("*.eml")):
        message = email.message_from_bytes(eml.read_bytes())
        body = next(email.iterators.typed_subpart_iterator(message, "text", "plain"))
        payload = body.get_payload(decode=True) or b""
        text = payload.decode(body.get_content_charset() or "utf-8", "replace")
        expected_file = folder / f"{eml.stem}_reply_text"
        expected = expected_file.read_text().strip() if expected_file.exists() else "Hello"
        yield eml.stem, text, "", "", expected, "n/a"


def talon_html_corpus(root: Path):
    for page in sorted((root / "tests" / "fixtures" / "html_replies").glob("*.html")):
        yield (page.stem, "", page.read_text("utf-8", "replace"), "",
               "Hi. I am fine.\n\nThanks,\nAlex", "n/a")


def run(corpus_name: str, rows: list, found: dict, loose: bool = False) -> None:
    print(f"\n== {corpus_name}: {len(rows)} messages ==")
    for label, trim in found.items():
        text_ok = intent_ok = intent_n = 0
        misses = []
        started = time.perf_counter()
        for name, text, body_html, subject, expected_text, expected_intent in rows:
            try:
                got = trim(text, body_html)
            except Exception as exc:  # a library crashing is a miss, not the end of the run
                got = f"<{type(exc).__name__}>"
            if _norm(got, loose=loose) == _norm(expected_text, loose=loose):
                text_ok += 1
            else:
                misses.append(name)
            if expected_intent != "n/a":
                intent_n += 1
                intent_ok += intent(got, VOCABULARY, subject) == expected_intent
        ms = (time.perf_counter() - started) * 1000 / max(1, len(rows))
        line = f"{label:24} new text {text_ok}/{len(rows)} ({100 * text_ok / len(rows):.0f}%)"
        if intent_n:
            line += f"   intent {intent_ok}/{intent_n} ({100 * intent_ok / intent_n:.0f}%)"
        print(f"{line}   {ms:.2f} ms/msg")
        print(f"{'':24} misses: {', '.join(misses) or '-'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--talon", type=Path, help="unpacked talon sdist (its fixtures)")
    args = ap.parse_args()
    found = trimmers()
    run("feedback-mta fixture table", list(ours_corpus()), found)
    if args.talon:
        run("talon standard_replies", list(talon_corpus(args.talon)), found)
        run("talon html_replies (HTML only)", list(talon_html_corpus(args.talon)), found,
            loose=True)


if __name__ == "__main__":
    main()

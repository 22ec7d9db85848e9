"""The new text of a dealer's reply to a lead notification, and the command in it (pure).

Pure steps, kept apart so each can be tested on a table of real-world bodies:

``new_text(text, html)``
    Only what the dealer typed: the quoted history (``>`` lines, "On ... wrote:" and its
    translations, Outlook's ``From:/Sent:`` block, "-----Original Message-----", Gmail's and
    Outlook's HTML quote containers), the signature (``-- ``) and "Sent from my iPhone"
    footers are cut. HTML-only replies are turned into text first, with quote containers
    marked so the same cut applies. Replies written below the quote (bottom-posting) keep
    the unquoted lines.

``intent(new_text, subject)``
    ``FLAG``, ``RESTORE`` or None. A command is a short first line (after a greeting) made
    only of command words and filler: ``SPAM``, ``Spam!``, ``this is spam``, ``fake lead``,
    ``NOT SPAM``, ``undo``, and the same in Spanish, French, German and Portuguese. A
    question (``is this spam?``) or a sentence that merely mentions spam is not one. The
    notification's own instruction ("Reply SPAM to flag this lead") ends the new text
    wherever it shows up, so a client that quotes without ``>`` cannot make it count.

``answers(new_text, vocabulary)``
    A contact's answer to a confirmation request: every clause of the first lines read with
    the consent words (``YES``, ``Yes please!``, ``no thanks``, ``remove me``, ``ja``,
    ``non merci``, ...), so "Hi, yes" answers; the caller takes both answers for none.

Why not a library: mail-parser-reply and email-reply-parser were measured on the same
tables (``bench/replies.py``); both missed quote headers we must cut (Russian/Android,
Thunderbird with a wrapped header, HTML-only replies) and neither reads HTML, so a wrong
cut there means a false flag. The rules here are the ones those libraries and Discourse's
email_reply_trimmer use, plus the HTML containers and our own notification marker.
"""

from __future__ import annotations

import html as html_lib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING

from feedback_mta.markers import NOTIFICATION_MARKERS

if TYPE_CHECKING:  # parse pulls in mail-parser
    from feedback_mta.reading.parse import ParsedMessage

__all__ = ["DIGEST_MARKERS", "NOTIFICATION_MARKERS", "SPAM_DIGEST_MARKER", "Vocabulary",
           "answers", "command", "html_to_text", "intent", "keep_ids", "new_text", "read",
           "read_answers"]

#: Phrases of the review digests' own instructions (contacts, spam leads): where one shows
#: up in a reply, the quoted digest starts, so its "KEEP <id>" example never counts.
#: The spam digest's instruction (``jobs.spam_digest``): quoted, it says what a reply is to.
SPAM_DIGEST_MARKER = "to put a lead back among your leads"
DIGEST_MARKERS = ("to keep a contact, reply", "contacts you do not name",
                  SPAM_DIGEST_MARKER, "leads you do not name stay")

# --- quote boundaries ----------------------------------------------------------------------

_VERBS = (r"wrote|writes|escribi[oó]|a [ée]crit|schrieb|escreveu|ha scritto|scrisse|schreef|"
          r"skrev|napisa[lł]|написал[а]?|kirjoitti|kirjutas|yazd[ıi]|írta|geschreven")
#: "On Mon, 1 Jan 2024 John <j@x> wrote:", "Le 2 janv. 2024 à 10:00, Jean a écrit :",
#: "Am 01.01.2024 um 10:00 schrieb Hans:", "El lun, 1 ene 2024, Juan escribió:",
#: "Em seg., 1 de jan. de 2024, João escreveu:", "02.04.2012 14:20 пользователь ... написал:".
_WROTE = re.compile(rf"^.{{0,300}}\b(?:{_VERBS})\b.{{0,80}}:\s*$", re.IGNORECASE)
_WROTE_START = re.compile(
    r"^\s*(on|le|am|el|em|il|op|den|dnia|w dniu|\d{1,4}[./-]\d{1,2}[./-]\d{1,4})\b",
    re.IGNORECASE)
_SEPARATOR = re.compile(
    r"^\s*(-{2,}|_{2,})?\s*("
    r"original message|ursprüngliche nachricht|mensaje original|message d'origine|"
    r"mensagem original|messaggio originale|oorspronkelijk bericht|originalmeddelande|"
    r"forwarded message|message transféré|weitergeleitete nachricht|mensaje reenviado|"
    r"mensagem encaminhada|begin forwarded message:|inicio del mensaje reenviado:|"
    r"début du message réexpédié :|anfang der weitergeleiteten nachricht:"
    r")\s*(-{2,}|_{2,})?\s*$", re.IGNORECASE)
_RULE = re.compile(r"^\s*(_{20,}|-{20,}|={20,})\s*$")
_HEADER_NAMES = (r"from|de|von|van|från|fra|od|da|от|отправлено|кому|тема|sent|date|datum|"
                 r"fecha|envoyé|gesendet|enviado|enviada|data|inviato|verzonden|to|à|a|an|para|aan|till|cc|"
                 r"subject|objet|betreff|asunto|assunto|oggetto|onderwerp|ämne|temat")
_HEADER_LINE = re.compile(rf"^\s*\*?\s*({_HEADER_NAMES})\s*\*?\s*:\s*\*?\s*\S", re.IGNORECASE)
_FROM_LINE = re.compile(r"^\s*\*?\s*(from|de|von|van|från|fra|od|da|от)\s*\*?\s*:",
                        re.IGNORECASE)
_SIGNATURE = re.compile(r"^(--|__|-- )\s*$")
_SENT_FROM = re.compile(
    r"^\s*(sent from|sent with|sent via|get outlook for|envoy[ée] de|envoy[ée] depuis|"
    r"enviado desde|enviado de|enviado do|von meinem|gesendet von|inviato da|"
    r"verzonden vanaf|skickat från|(get|obter|obtener|holen sie sich|t[ée]l[ée]charger) "
    r"(o |el )?outlook)\b", re.IGNORECASE)
_QUOTED = re.compile(r"^\s*>")

#: What the HTML conversion writes where a quote container starts.
QUOTE_MARK = "\x00quote\x00"


def _fold(text: str) -> str:
    """Lower-case with accents removed: ``Não É`` -> ``nao e``, ``Müll`` -> ``mull``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _clean(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u00a0", " ").replace("\u202f", " ")
    text = re.sub("[\u200b-\u200f\ufeff]", "", text)
    return [line.rstrip() for line in text.split("\n")]


def _is_wrote_header(lines: list[str], i: int) -> int:
    """How many lines the "On ... wrote:" header at ``i`` spans (0: none). Gmail wraps it."""
    for span in (1, 2, 3):
        part = lines[i:i + span]
        if len(part) < span or not all(line.strip() for line in part):
            return 0
        joined = " ".join(line.strip() for line in part)
        if len(joined) > 400:
            return 0
        first = part[0]
        if _WROTE.match(joined) and (_WROTE_START.match(first) or "@" in first
                                     or (span == 1 and re.search(r"\d", first))):
            return span
        if joined.endswith(":"):
            return 0
    return 0


def _is_header_block(lines: list[str], i: int) -> bool:
    """Outlook's "From: / Sent: / To: / Subject:" block (in any language) starts at ``i``."""
    if not _FROM_LINE.match(lines[i]):
        return False
    following = [line for line in lines[i + 1:i + 6] if line.strip()]
    return sum(1 for line in following[:4] if _HEADER_LINE.match(line)) >= 1


def _is_marker(line: str, markers: tuple[str, ...]) -> bool:
    folded = _fold(line)
    return any(marker in folded for marker in markers)


def _boundary(lines: list[str], i: int, markers: tuple[str, ...]) -> int:
    """Lines the quote boundary at ``i`` spans; 0 when line ``i`` is not one."""
    line = lines[i]
    if line.startswith(QUOTE_MARK):
        return 1
    if _QUOTED.match(line):
        return 1
    if _SEPARATOR.match(line) or _RULE.match(line) or _is_marker(line, markers):
        return 1
    if _is_header_block(lines, i):
        return 1
    if _is_attribution(lines, i):
        return 1
    return _is_wrote_header(lines, i)


_DATE = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\d{1,2}:\d{2}|\b(19|20)\d{2}\b")


def _is_attribution(lines: list[str], i: int) -> bool:
    """A quote attribution without a known verb ("26.06.2014, 14:41, "Alex" <a@x>:",
    mail.ru's "Thu, 26 Jun 2014 ... от Alex <a@x>:"): a line ending in a colon, naming an
    address and a date, right before quoted text."""
    line = lines[i].strip()
    if not line.endswith(":") or "@" not in line or not _DATE.search(line) or len(line) > 300:
        return False
    following = next((ln for ln in lines[i + 1:i + 4] if ln.strip()), "")
    return following.startswith(QUOTE_MARK) or bool(_QUOTED.match(following))


def _strip_footer(lines: list[str]) -> list[str]:
    """Cut the signature (``-- ``) and "Sent from my ..." footers."""
    for j, line in enumerate(lines):
        if _SIGNATURE.match(line) or _SENT_FROM.match(line):
            return lines[:j]
    return lines


def _tidy(lines: list[str]) -> str:
    return "\n".join(lines).strip()


def new_text(text: str, html: str = "",
             markers: tuple[str, ...] = NOTIFICATION_MARKERS) -> str:
    """The text the sender wrote, without quoted history, signature or mobile footer."""
    if not text.strip() and html.strip():
        text = html_to_text(html)
    markers = tuple(_fold(m) for m in markers)
    lines = _clean(text)
    for i in range(len(lines)):
        if not _boundary(lines, i, markers):
            continue
        above = _tidy(_strip_footer(lines[:i]))
        if above:
            return above
        return _below_quote(lines[i:], markers)
    return _tidy(_strip_footer(lines))


def _below_quote(lines: list[str], markers: tuple[str, ...]) -> str:
    """Bottom-posting: the sender's lines are the unquoted ones after ``>``-quoted text.

    Only ``>``-quoted history can be told apart this way; after an Outlook block or an
    HTML quote container everything is history, so nothing is taken from there.
    """
    if not any(_QUOTED.match(line) for line in lines):
        return ""
    kept: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _QUOTED.match(line):
            i += 1
            continue
        span = _is_wrote_header(lines, i)  # a nested attribution: part of the history
        if span:
            i += span
            continue
        if _boundary(lines, i, markers):
            break
        kept.append(line)
        i += 1
    return _tidy(_strip_footer(kept))


# --- HTML ----------------------------------------------------------------------------------

_QUOTE_IDS = {"divrplyfwdmsg", "appendonsend", "mail-editor-reference-message-container",
              "stopspelling", "originalmessage", "yahoo_quoted", "ydp"}
_QUOTE_CLASSES = {"gmail_quote", "gmail_attr", "moz-cite-prefix", "yahoo_quoted",
                  "protonmail_quote", "zmail_extra", "afternoon-quote", "quote",
                  "outlook_quote", "ms-outlook-mobile-reference-message", "reply-quote"}
_BLOCK = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table",
          "blockquote", "hr", "pre", "section", "article", "header", "footer", "ul", "ol"}
_SKIP = {"style", "script", "head", "title"}


class _TextMaker(HTMLParser):
    """HTML -> text lines, writing ``QUOTE_MARK`` where a quote container starts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def _mark(self) -> None:
        self.out.append(f"\n{QUOTE_MARK}\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
            return
        values = dict(attrs)
        ident = (values.get("id") or "").lower()
        classes = set((values.get("class") or "").lower().split())
        style = (values.get("style") or "").lower().replace(" ", "")
        if (tag in ("blockquote", "hr") or ident in _QUOTE_IDS or classes & _QUOTE_CLASSES
                or any(ident.startswith(p) for p in ("divrplyfwdmsg", "yiv", "ymail_"))
                # Outlook desktop: the header block sits under a thin top border.
                or (tag == "div" and "border-top:solid" in style and "padding:3" in style)):
            self._mark()
        elif tag in _BLOCK:
            self.out.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(re.sub(r"[ \t\r\n]+", " ", data))


def html_to_text(html: str) -> str:
    """Visible text of an HTML body, one block per line, quote containers marked."""
    maker = _TextMaker()
    try:
        maker.feed(html)
        maker.close()
    except Exception:  # malformed beyond the lenient parser: fall back to stripping tags
        return html_lib.unescape(re.sub(r"<[^>]+>", "\n", html))
    lines = [line.strip() for line in "".join(maker.out).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


# --- intent --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Vocabulary:
    """The reply commands' words, as ``reading.commands`` declares them.

    ``words``: command name -> the words that alone make it (``spam``, ``junk``, ``basura``);
    ``negated``: command name -> the command its words make after a negation (``NOT SPAM``
    restores what ``SPAM`` flags). Words are matched folded (lower case, no accents).
    """

    words: Mapping[str, frozenset[str]]
    negated: Mapping[str, str]
    #: command name -> how many of its words a line may have at most (3 when not named).
    max_words: Mapping[str, int]
    #: Words that may surround these commands besides the common ones (``me`` in "keep me",
    #: "remove me").
    filler: frozenset[str] = frozenset()
    #: The command a negation alone makes ("no", "no thanks", "non merci"), if any.
    bare_negation: str | None = None
    #: Phrases read as one word: folded words joined by spaces -> the word (``opt out`` ->
    #: ``optout``), declared as ``opt_out``.
    phrases: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, words: Mapping[str, Iterable[str]], negated: Mapping[str, str],
           max_words: Mapping[str, int] | None = None, *, filler: Iterable[str] = (),
           bare_negation: str | None = None) -> Vocabulary:
        folded = {name: [_fold(w) for w in ws] for name, ws in words.items()}
        phrases = {w.replace("_", " "): w.replace("_", "")
                   for ws in folded.values() for w in ws if "_" in w}
        return cls({name: frozenset(w.replace("_", "") for w in ws)
                    for name, ws in folded.items()},
                   dict(negated), dict(max_words or {}), frozenset(map(_fold, filler)),
                   bare_negation, tuple(sorted(phrases.items(), key=lambda p: -len(p[0]))))


_NEGATIONS = frozenset("not no non pas nicht kein keine keinen nao ne n isn isnt aint don dont "
                       "doesn doesnt".split())
#: Words that may surround a command without changing it ("this is spam", "c'est du spam",
#: "das ist Spam", "isso é spam", "mark as spam please", "fake lead").
_FILLER = frozenset("""
    this that it its s is a an the lead leads mail email e message mark marked as please pls
    plz just totally definitely clearly obviously pure looks look like seems to be all t
    i think very really also one here thanks thank you thx again sorry oops
    es esto eso este esta un una el la lo correo mensaje por favor marcar como
    ce c cela ca est du de une le les merci svp sil vous plait marquer comme courrier
    das dies ist ein eine der die bitte als markieren nachricht danke machen mach
    isso isto o um uma mensagem obrigado obrigada
""".split())
_GREETING = re.compile(r"^\s*(hi|hello|hey|dear|hallo|hola|bonjour|salut|ola|olá|oi|"
                       r"guten tag|moin|buenos d[ií]as|bom dia)\b[^.!?]{0,30}[,!.:]?\s*$",
                       re.IGNORECASE)
_SUBJECT_PREFIX = re.compile(r"^\s*((re|aw|sv|vs|ref|rif|res|wg|fw|fwd|tr)\s*(\[\d+\])?\s*:\s*)+",
                             re.IGNORECASE)
_MAX_WORDS = 8


def _words(line: str, phrases: tuple[tuple[str, str], ...] = ()) -> list[str]:
    folded = _fold(line).replace("no deseado", "nodeseado")
    words = re.findall(r"[a-z0-9]+|[^\W\d_]+", folded)
    if not phrases:
        return words
    joined = f" {' '.join(words)} "
    for phrase, word in phrases:
        joined = joined.replace(f" {phrase} ", f" {word} ")
    return joined.split()


def command(line: str, vocabulary: Vocabulary) -> str | None:
    """The command (its name) a single line is, or None."""
    if "?" in line:
        return None  # "Is this spam?" asks; it does not tell
    words = _words(line, vocabulary.phrases)
    if not words or len(words) > _MAX_WORDS:
        return None
    core: list[str] = []
    for word in words:
        if word in _NEGATIONS:
            if not core or core[-1] != "NOT":
                core.append("NOT")
        elif word not in _FILLER and word not in vocabulary.filler:
            core.append(word)
    if not core:
        return None
    negated = core[0] == "NOT"
    rest = core[1:] if negated else core
    if not rest and negated:
        return vocabulary.bare_negation
    if not rest or len(rest) > 3:
        return None
    for name, known in vocabulary.words.items():
        if all(w in known for w in rest):
            if negated:
                return vocabulary.negated.get(name)
            return name if len(rest) <= vocabulary.max_words.get(name, 3) else None
    return None


def read(parsed: ParsedMessage, vocabulary: Vocabulary,
         markers: tuple[str, ...] = NOTIFICATION_MARKERS) -> str | None:
    """The command in a parsed reply: ``intent`` of its ``new_text``. The one way both the
    reply handler and ``feedback-mta parse`` read a reply, so they cannot disagree."""
    return intent(new_text(parsed.text, parsed.html, markers), vocabulary, parsed.subject)


def intent(text: str, vocabulary: Vocabulary, subject: str = "") -> str | None:
    """The command in the new text of a reply (its first line after a greeting), or None.

    When the sender wrote nothing but changed the subject (``SPAM``), the subject counts.
    """
    lines = [line.strip() for line in _clean(text) if line.strip()]
    if (lines and _GREETING.match(lines[0]) and len(lines) > 1
            and not command(lines[0], vocabulary)):
        lines = lines[1:]
    if lines:
        return command(lines[0], vocabulary)
    return command(_SUBJECT_PREFIX.sub("", subject or ""), vocabulary)


#: An answer to a confirmation request is read from this many lines of its new text: a
#: "yes" and a sign-off fit; a stray "ok" deep in a letter does not count.
ANSWER_LINES = 5
#: A clause: up to its end mark; a question keeps its "?" (and so answers nothing).
_MARKS = ".!?;:,/\u3001\u3002\uff01\uff0c\uff1f"  # and the CJK comma, stop, "!", ",", "?"
_CLAUSE = re.compile(f"[^{_MARKS}\n]+[{_MARKS}]*")
_CONJUNCTION = re.compile(r"\s(?:and|but|or|und|aber|oder|et|mais|ou|pero|mas|en|maar)\s",
                          re.IGNORECASE)


def answers(text: str, vocabulary: Vocabulary) -> frozenset[str]:
    """The commands the new text of a reply gives, clause by clause, in its first
    ``ANSWER_LINES`` lines: ``{"confirm"}`` for "Yes please!", ``{"decline"}`` for "No,
    remove me", both for "Yes. No, actually remove me" (which the caller takes for no
    answer), none for an empty reply, a question, or prose. Unlike ``intent``, the subject
    never counts: a reply's subject is the request's own ("Please confirm")."""
    lines = [line for line in _clean(text) if line.strip()][:ANSWER_LINES]
    found: set[str] = set()
    for line in lines:
        for clause in _CLAUSE.findall(line):
            for part in _CONJUNCTION.split(f" {clause} "):
                said = command(part, vocabulary)
                if said is not None:
                    found.add(said)
    return frozenset(found)


def read_answers(parsed: ParsedMessage, vocabulary: Vocabulary,
                 markers: tuple[str, ...]) -> frozenset[str]:
    """``answers`` in the new text of a parsed reply: the one way the confirmation handler
    and ``feedback-mta parse`` read it."""
    return answers(new_text(parsed.text, parsed.html, markers), vocabulary)


def keep_ids(text: str, words: Iterable[str]) -> list[int]:
    """Contact ids from ``<word> <id>`` lines of a reply's new text, in order, once each:
    with ``keep`` and ``not spam``, ``KEEP 12``, ``keep #12, #15``, ``Not spam: 12 and 15``.
    A line with anything else on it is not a command, so prose that happens to say "keep"
    is not."""
    alternatives = "|".join(r"\s*-?\s*".join(map(re.escape, w.split())) for w in words)
    pattern = re.compile(rf"^[^\w>]*(?:{alternatives})\b[\s:#.-]*"
                         r"(#?\d+(?:[\s,;&#]+(?:and\s+)?#?\d+)*)\s*[.!]?\s*$", re.IGNORECASE)
    ids: list[int] = []
    for line in _clean(text):
        match = pattern.match(line.strip())
        if match:
            for number in re.findall(r"\d+", match.group(1)):
                if int(number) not in ids and len(number) <= 18:
                    ids.append(int(number))
    return ids

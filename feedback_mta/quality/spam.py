"""Is a new lead spam? Rules over what the lead says and who sent it (pure).

Each signal is a stable reason a person can read and a probability that a lead showing it
is spam; the score combines them as a noisy OR (``1 - prod(1 - p)``), so one weak signal
(a link, an address in the text) never flags a lead alone, and several together do. A lead
whose contact is known bad (``verdict.Level.INVALID``) scores 1: it is always flagged.

Precision first: a real lead hidden from a dealer costs more than a spam lead shown, so the
signals are the ones form spam shows and buyers' questions do not (a phone number in the
comments is how buyers ask to be called: not a signal).
"""

from __future__ import annotations

import math
import re
import unicodedata
import zlib
from dataclasses import dataclass, replace

from feedback_mta.quality import campaigns

KNOWN_BAD = "known bad contact"
SUSPECTED = "suspected contact"

_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
_BARE_IP_URL = re.compile(r"\bhttps?://\d{1,3}(?:\.\d{1,3}){3}\b", re.IGNORECASE)
_SHORTENERS = re.compile(
    r"\b(?:https?://)?(?:bit\.ly|tinyurl\.com|t\.co|goo\.gl|ow\.ly|is\.gd|buff\.ly|cutt\.ly|"
    r"rb\.gy|shorturl\.at|tiny\.cc|rebrand\.ly|t\.ly|s\.id|shorte\.st)/", re.IGNORECASE)
#: An address in the text. A match starts only where a run of local-part characters
#: starts (the lookbehind): tried from every character of a long run, the greedy local part
#: made a megabyte of letters or digits cost minutes (quadratic); now each run is read once.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+\.[\w.-]+")
_ROLE = frozenset({"info", "admin", "sales", "marketing", "noreply", "no-reply", "webmaster",
                   "support", "contact", "office", "hello", "postmaster", "abuse", "seo"})

#: (reason, probability, pattern) for the language of form spam.
_LANGUAGE: tuple[tuple[str, float, re.Pattern[str]], ...] = tuple(
    (reason, p, re.compile(pattern, re.IGNORECASE)) for reason, p, pattern in (
        ("seo pitch", 0.7,
         r"\b(?:seo|search engine optimi[sz]ation|backlinks?|first page of google|rank(?:ing)? "
         r"(?:your|on) (?:website|google)|google rankings?|domain authority|organic traffic|"
         r"website traffic)\b"),
        ("marketing pitch", 0.5,
         r"\b(?:digital marketing|lead generation|grow your business|more customers|"
         r"marketing services|web ?design services|social media marketing|increase (?:your )?"
         r"sales|special offer|limited time offer|free trial|click here|unsubscribe here)\b"),
        ("crypto", 0.7,
         r"\b(?:crypto(?:currency)?|bitcoin|btc|ethereum|usdt|forex|binance|nft|airdrop|"
         r"trading bot|passive income)\b"),
        ("loan offer", 0.7,
         r"\b(?:loan offer|business loans?|fast cash|payday|credit repair|guaranteed "
         r"(?:approval|loan)|funding for your business|merchant cash advance)\b"),
        ("channel promotion", 0.8,
         r"\b(?:subscribe to (?:my|our) (?:youtube )?channel|youtube\.com/(?:c/|channel/|@)|"
         r"follow (?:me|us) on (?:instagram|tiktok|telegram)|join (?:my|our) telegram|"
         r"t\.me/)"),
        ("adult or gambling", 0.8,
         r"\b(?:casino|betting|slots?|porn|xxx|sexy (?:girls|singles)|dating site|viagra|"
         r"cialis)\b"),
    ))

#: How far back the behaviour signals look (seconds).
VELOCITY_WINDOW = 3600
CAMPAIGN_WINDOW = 86400
#: Leads an account must have seen before a script can be unusual for it.
MIN_SCRIPT_LEADS = 30

_SCRIPTS = (("cyrillic", "CYRILLIC"), ("greek", "GREEK"), ("arabic", "ARABIC"),
            ("hebrew", "HEBREW"), ("han", "CJK"), ("kana", "HIRAGANA"), ("kana", "KATAKANA"),
            ("hangul", "HANGUL"), ("thai", "THAI"), ("devanagari", "DEVANAGARI"),
            ("latin", "LATIN"))


def script(text: str) -> str:
    """The script most of the comments' letters are written in (``latin``, ``cyrillic``,
    ``han``, ...; ``other``), or "" when there are too few letters to say."""
    found: dict[str, int] = {}
    letters = 0
    for c in text or "":
        if not c.isalpha():
            continue
        letters += 1
        if c.isascii():
            found["latin"] = found.get("latin", 0) + 1
            continue
        name = unicodedata.name(c, "")
        kind = next((k for k, marker in _SCRIPTS if marker in name), "other")
        found[kind] = found.get(kind, 0) + 1
    if letters < 10:
        return ""
    return max(found.items(), key=lambda kv: kv[1])[0]


_VOWELS = set("aeiouyàáâãäåèéêëìíîïòóôõöùúûüý")


@dataclass(frozen=True)
class LeadFacts:
    """What the score looks at: the lead's words, its contact, the contact's verdict."""

    comments: str = ""
    email: str = ""
    #: The contact's verdict level (``ok``, ``suspected``, ``invalid``) and reasons.
    contact_level: str = "ok"
    contact_reasons: tuple[str, ...] = ()
    #: The contact's name as the form gave it (for ``address unlike the name``).
    first: str = ""
    last: str = ""
    #: Behaviour: other leads from the same source address, and from its network (IPv4
    #: /24, IPv6 /64), within ``VELOCITY_WINDOW`` (counted up to ``MANY_LEADS_FROM_*``).
    ip_leads: int = 0
    net_leads: int = 0
    #: Other senders whose leads' comments were nearly these (``quality.campaigns``)
    #: within ``CAMPAIGN_WINDOW``, in any account.
    campaign_senders: int = 0
    #: The share of the account's leads written in this lead's script (``script``), or
    #: None while the account has seen too few leads to say.
    script_share: float | None = None


@dataclass(frozen=True)
class SpamScore:
    #: 0 (nothing against it) to 1 (known bad contact).
    score: float
    #: Why, in stable words, strongest first.
    reasons: tuple[str, ...] = ()

    def flagged(self, threshold: float) -> bool:
        return self.score >= threshold


def _gibberish(text: str) -> bool:
    """Most longer words have no vowel, or the text is one long run without spaces."""
    words = [w for w in re.findall(r"[^\W\d_]{5,}", text.lower())
             if all(unicodedata.category(c).startswith("L") and c.isascii() for c in w)]
    if len(words) < 2:
        return bool(words) and len(words[0]) >= 25
    voweless = sum(1 for w in words if not _VOWELS & set(w))
    return voweless / len(words) >= 0.5


def _unlike_name(local: str, first: str, last: str) -> bool:
    """The address's local part shows nothing of the name and looks made up: no three
    letters of either name in it, and mostly digits or no vowel. (Plenty of people write
    from ``carlover77@``: that alone is no signal, only with the rest.)"""
    names = [n for n in (_fold(first), _fold(last)) if len(n) >= 3]
    letters = _fold(local)
    if not names or not local:
        return False
    if any(n[i:i + 3] in letters for n in names for i in range(len(n) - 2)):
        return False
    digits = sum(c.isdigit() for c in local)
    return (digits >= 4 and digits * 2 >= len(local)) or (
        len(letters) >= 6 and not _VOWELS & set(letters))


def _fold(text: str) -> str:
    """Lower-case ASCII letters only (accents dropped)."""
    decomposed = unicodedata.normalize("NFKD", text or "").lower()
    return "".join(c for c in decomposed if "a" <= c <= "z")


def _shouting(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= 20 and sum(c.isupper() for c in letters) / len(letters) >= 0.7


def signals(facts: LeadFacts) -> list[tuple[str, float]]:
    """Every signal the lead shows, as (reason, probability of spam)."""
    return content_signals(facts) + behaviour(facts)


@dataclass(frozen=True)
class Comments:
    """What a lead's comments say, read once (``read``): the part of the score whose cost
    grows with the text, linear in it, done before the lead's transaction opens so that no
    lock is held meanwhile. The rest of the score (the address, the name, the behaviour,
    the model) is small and runs in the transaction."""

    text: str = ""
    #: The text's own signals (links, the language of form spam), then its style's
    #: (shouting, gibberish); the address signal goes between (it needs the sender).
    said: tuple[tuple[str, float], ...] = ()
    style: tuple[tuple[str, float], ...] = ()
    #: Addresses written in the text, lower case.
    addresses: frozenset[str] = frozenset()
    #: ``script(text)``, and the model's features of the text (``features``).
    script: str = ""
    features: tuple[str, ...] = ()
    #: The campaign band keys (``campaigns.bands``).
    bands: tuple[int, ...] = ()


def read(text: str) -> Comments:
    """Read a lead's comments once: every regex and hash over the text runs here."""
    text = text or ""
    said: list[tuple[str, float]] = []
    urls = _URL.findall(text)
    if len(urls) >= 2:
        said.append(("several links", 0.6))
    elif urls:
        said.append(("a link", 0.3))
    if _SHORTENERS.search(text):
        said.append(("shortened link", 0.6))
    if _BARE_IP_URL.search(text):
        said.append(("link to a bare IP address", 0.7))
    said += [(reason, p) for reason, p, pattern in _LANGUAGE if pattern.search(text)]
    style: list[tuple[str, float]] = []
    if _shouting(text):
        style.append(("shouting", 0.3))
    if _gibberish(text):
        style.append(("gibberish comments", 0.6))
    written = script(text)
    return Comments(text, tuple(said), tuple(style),
                    frozenset(a.lower() for a in _EMAIL.findall(text)), written,
                    _text_features(text, written), tuple(campaigns.bands(text)))


def content_signals(facts: LeadFacts, comments: Comments | None = None
                    ) -> list[tuple[str, float]]:
    """The signals of what the lead says and who sent it (the behaviour aside);
    ``comments``: ``read(facts.comments)`` done already."""
    text = comments if comments is not None else read(facts.comments)
    found = list(text.said)
    own = (facts.email or "").lower()
    if any(address != own for address in text.addresses):
        found.append(("an email address in the comments", 0.3))
    found += text.style
    local = own.partition("@")[0]
    if local in _ROLE:
        found.append(("role address", 0.2))
    elif _unlike_name(local, facts.first, facts.last):
        found.append(("address unlike the name", 0.2))
    if facts.contact_level == "suspected":
        found.append((SUSPECTED, 0.4))
    return found


MANY_FROM_ADDRESS = "many leads from one address"
SEVERAL_FROM_ADDRESS = "several leads from one address"
MANY_FROM_NETWORK = "many leads from one network"
CAMPAIGN_MANY = "campaign: the same comments from many senders"
CAMPAIGN_SEVERAL = "campaign: the same comments from several senders"
UNUSUAL_SCRIPT = "a script the account's leads are not written in"
#: Reasons of how a lead came, not of what it is: not features the model learns from.
BEHAVIOUR = frozenset({MANY_FROM_ADDRESS, SEVERAL_FROM_ADDRESS, MANY_FROM_NETWORK,
                       CAMPAIGN_MANY, CAMPAIGN_SEVERAL, UNUSUAL_SCRIPT})


#: From how many other leads (of an address, of a network, within ``VELOCITY_WINDOW``) or
#: other senders (of nearly the same comments, within ``CAMPAIGN_WINDOW``) each behaviour
#: signal speaks. The highest of each is also where ``actions.behaviour`` stops counting:
#: past it the signal says no more, and a flood's count would grow with every lead.
MANY_LEADS_FROM_ADDRESS = 20
SEVERAL_LEADS_FROM_ADDRESS = 5
MANY_LEADS_FROM_NETWORK = 50
MANY_SENDERS = 10
SEVERAL_SENDERS = 3


def behaviour(facts: LeadFacts) -> list[tuple[str, float]]:
    """The signals of how the lead came rather than what it says. None flags a lead alone:
    a showroom's kiosk sends many leads from one address, platforms prefill comments."""
    found: list[tuple[str, float]] = []
    if facts.ip_leads >= MANY_LEADS_FROM_ADDRESS:
        found.append((MANY_FROM_ADDRESS, 0.6))
    elif facts.ip_leads >= SEVERAL_LEADS_FROM_ADDRESS:
        found.append((SEVERAL_FROM_ADDRESS, 0.3))
    if facts.net_leads >= MANY_LEADS_FROM_NETWORK:
        found.append((MANY_FROM_NETWORK, 0.4))
    if facts.campaign_senders >= MANY_SENDERS:
        found.append((CAMPAIGN_MANY, 0.7))
    elif facts.campaign_senders >= SEVERAL_SENDERS:
        found.append((CAMPAIGN_SEVERAL, 0.5))
    if facts.script_share is not None and facts.script_share < 0.02:
        found.append((UNUSUAL_SCRIPT, 0.5))
    return found


def script_share(account: dict[str, Counts], written: str) -> float | None:
    """The share of the account's leads written in this script, from the model's counts
    (``s:<script>`` seen against all); None while the account has seen too few."""
    total = account.get(LABELS, Counts()).seen
    if not written or total < MIN_SCRIPT_LEADS:
        return None
    return account.get(f"s:{written}", Counts()).seen / total


def score(facts: LeadFacts, content: list[tuple[str, float]] | None = None) -> SpamScore:
    """The lead's spam score and reasons (noisy OR of its signals); ``content``, when
    given, is ``content_signals(facts)`` found already (the behaviour is added here)."""
    if facts.contact_level == "invalid":
        return SpamScore(1.0, (KNOWN_BAD, *facts.contact_reasons))
    said = content_signals(facts) if content is None else content
    found = sorted([*said, *behaviour(facts)], key=lambda s: -s[1])
    keep = 1.0
    for _, p in found:
        keep *= 1.0 - p
    return SpamScore(round(1.0 - keep, 4), tuple(reason for reason, _ in found))


# --- learned from people ------------------------------------------------------------------------
#
# Every flag and every restore by a person is a label; so is, until a person restores it, a
# lead the system flagged (it is not shown, so nobody flags it: without counting it, what
# the model stops showing it would stop learning). The model is a table of counts per
# feature of a lead (``features``): in how many new leads it was seen, how many of those
# people flagged (``spam``), the system flagged (``auto``), people restored (``ham``).
#
# A feature's spam probability is Graham's ("A Plan for Spam", 2002): its share of the spam
# against its share of the rest, the rest counted twice and a restore ``RESTORE_WEIGHT``
# times (precision first), pulled towards 1/2 by Robinson's strength for features seen
# few times ("A Statistical Approach to the Spam Problem", 2003). The ``INTERESTING``
# features farthest from 1/2 are combined by Bayes' rule, the way SpamBayes and
# bogofilter do; nothing is learned before the platform has seen ``MIN_LEADS`` leads and
# ``MIN_FLAGS`` flags. Each account's own probability for a feature counts beside the
# platform's once it has flagged or restored a lead with it (one model, adjusted per
# account).

#: The feature that counts the labels (and, in ``seen``, every lead scored).
LABELS = "*labels*"
MIN_FLAGS = 2
MIN_LEADS = 30
RESTORE_WEIGHT = 4
HAM_WEIGHT = 2
STRENGTH = 3.0
INTERESTING = 15
#: Character n-grams of the text's words: their length, and how many a lead counts (0:
#: none; see docs/benchmarks.md for what 40 did across corpora).
GRAM = 4
GRAMS = 0
MAX_FEATURES = 48
LEARNED = "like leads people flagged"
#: Below this the features say "more likely a real lead": no reason, nothing added.
LEARNED_MIN = 0.5

_WORD = re.compile(r"[^\W\d_]{3,24}")
#: Words that carry grammar, not meaning: never counted.
FUNCTION_WORDS = frozenset((
    "the", "and", "for", "you", "your", "are", "with", "this", "that", "have", "has", "had",
    "not", "but", "can", "will", "would", "could", "should", "our", "out", "any", "all", "was",
    "were", "been", "from", "they", "them", "their", "there", "then", "than", "what", "when",
    "where", "which", "who", "why", "how", "about", "into", "just", "also", "more", "some",
    "such", "only", "very", "much", "many", "here", "its", "it's", "i'm",
))
#: Words nearly every lead says, whatever it is (greetings, asking, the car): a prior from
#: the domain rather than something learned.
LEAD_WORDS = frozenset((
    "please", "thanks", "thank", "hello", "dear", "call", "phone", "email", "contact",
    "interested", "information", "info", "like", "want", "need", "know", "let", "get", "got",
    "see", "look", "looking", "car", "cars", "vehicle", "price", "available",
))
#: The words the model does not count (``features``); ``bench/lead_spam.py`` chooses among
#: these lists on the corpora it leaves out of a run.
STOPWORDS = FUNCTION_WORDS | LEAD_WORDS


_LONG_NUMBER = re.compile(r"\d{5,}")
_MONEY = re.compile(r"[£$€]\s?\d|\d\s?(?:usd|eur|gbp|pounds?|dollars?)\b", re.IGNORECASE)


def features(comments: str | Comments, email: str,
             reasons: tuple[str, ...] | list[str] = ()) -> list[str]:
    """What the model counts of a lead: its script, its distinct words (not the commonest),
    the shapes of its numbers (a run of five digits or more: premium numbers and short
    codes; an amount of money), the rules' reasons, its address's domain. Sorted, at most
    48. Whether a shape speaks for spam is learned, not ruled: buyers write numbers too.
    ``comments``: the text, or ``read`` of it."""
    own = (comments.features if isinstance(comments, Comments)
           else _text_features(comments or "", script(comments or "")))
    found = set(own)
    found |= {f"r:{r}" for r in reasons
              if r != KNOWN_BAD and r not in BEHAVIOUR and not r.startswith(LEARNED)}
    domain = (email or "").rpartition("@")[2].lower()
    if domain:
        found.add(f"d:{domain}")
    return sorted(found)[:MAX_FEATURES]


def _text_features(comments: str, written: str) -> tuple[str, ...]:
    """The features of the text alone (``features``: words, script, number shapes)."""
    words = {w for w in (m.lower() for m in _WORD.findall(comments)) if w not in STOPWORDS}
    found = {f"w:{w}" for w in sorted(words)[:40]}
    if written:
        found.add(f"s:{written}")
    if _LONG_NUMBER.search(comments):
        found.add("n:long number")
    if _MONEY.search(comments):
        found.add("n:money")
    found |= {f"u:{host}" for host in _hosts(comments)}
    if GRAMS:
        found |= set(grams(comments, GRAMS))
    return tuple(sorted(found))


_HOST = re.compile(r"\b(?:https?://|www\.)(?:www\.)?([\w-]+(?:\.[\w-]+)+)", re.IGNORECASE)
_GRAM_WORD = re.compile(r"[^\W_]+")


def _hosts(comments: str) -> set[str]:
    """The registered part of every link's host (``bit.ly``, ``example.com``): a domain
    spam repeats, whatever the path."""
    return {".".join(h.lower().split(".")[-2:]) for h in _HOST.findall(comments)[:8]}


def grams(comments: str, limit: int) -> list[str]:
    """Character ``GRAM``-grams of the words (a word shorter whole, with its edges): what
    survives obfuscation (``fr33``, ``c.a.s.i.n.o``) and needs no spaces between words
    (Chinese, Thai). Of a long text, the ``limit`` whose hashes are smallest: the same
    text always gives the same ones."""
    found: set[str] = set()
    for word in _GRAM_WORD.findall(comments.lower()):
        padded = f" {word} "
        found.update(padded[i:i + GRAM] for i in range(max(1, len(padded) - GRAM + 1)))
    kept = sorted(found, key=lambda g: (zlib.crc32(g.encode()), g))[:limit]
    return sorted(f"c:{g}" for g in kept)


@dataclass(frozen=True)
class Counts:
    seen: int = 0
    #: Flagged by people, by the system (until restored), restored by people.
    spam: int = 0
    ham: int = 0
    auto: int = 0

    @property
    def flagged(self) -> int:
        return max(self.spam + self.auto, 0)

    @property
    def kept(self) -> int:
        """The leads with it not flagged, a restore weighing ``RESTORE_WEIGHT``."""
        return max(self.seen - self.flagged, 0) + (RESTORE_WEIGHT - 1) * max(self.ham, 0)


def probability(feature: Counts, totals: Counts) -> float:
    """How likely a lead with this feature is spam (Graham's, with Robinson's pull to 1/2
    for features seen few times), within 0.01-0.99."""
    return _probability(feature, max(totals.flagged, 1), max(totals.kept, 1))


def _probability(feature: Counts, all_flagged: int, all_kept: int) -> float:
    """``probability``, the totals' flagged and kept (at least 1) worked out already: a
    lead's 40-odd features are rated against the same totals."""
    flagged, kept = feature.flagged, feature.kept
    spam_share = min(1.0, flagged / all_flagged)
    ham_share = min(1.0, HAM_WEIGHT * kept / all_kept)
    if spam_share + ham_share == 0:
        return 0.5
    p = spam_share / (spam_share + ham_share)
    n = flagged + kept
    return min(0.99, max(0.01, (STRENGTH * 0.5 + n * p) / (STRENGTH + n)))


def learned(platform: dict[str, Counts], account: dict[str, Counts]
            ) -> tuple[float, tuple[str, ...]]:
    """(probability, the two features most like spam) from the counts of a lead's
    features; (0, ()) until the platform has learned enough."""
    totals = platform.get(LABELS, Counts())
    if totals.seen < MIN_LEADS or totals.flagged < MIN_FLAGS:
        return 0.0, ()
    own_totals = account.get(LABELS)
    all_flagged, all_kept = max(totals.flagged, 1), max(totals.kept, 1)
    if own_totals is not None:
        own_flagged, own_kept = max(own_totals.flagged, 1), max(own_totals.kept, 1)
    rated = []
    for feature, counts in platform.items():
        if feature in COUNTERS:
            continue
        p = _probability(counts, all_flagged, all_kept)
        own = account.get(feature)
        if own is not None and own_totals is not None and own.spam + own.auto + own.ham:
            # the account's own view beside
            p = (p + _probability(own, own_flagged, own_kept)) / 2
        rated.append((abs(p - 0.5), p, feature))
    top = [(p, f) for distance, p, f in sorted(rated, reverse=True)[:INTERESTING]
           if distance >= 0.1]
    if not top:
        return 0.0, ()
    log_spam = sum(math.log(p) for p, _ in top)
    log_ham = sum(math.log(1.0 - p) for p, _ in top)
    combined = 1.0 / (1.0 + math.exp(max(-700.0, min(700.0, log_ham - log_spam))))
    strongest = tuple(f for p, f in sorted(top, reverse=True)[:2] if p > 0.5)
    return round(combined, 4), strongest


def with_learned(rules: SpamScore, learned_p: float, strongest: tuple[str, ...]
                 ) -> SpamScore:
    """The rules' score joined with what was learned (noisy OR), its reason last; under
    ``LEARNED_MIN`` the features speak for a real lead, and add nothing."""
    if learned_p < LEARNED_MIN or rules.score >= 1.0 or not strongest:
        return rules
    words = ", ".join(f.partition(":")[2] for f in strongest)
    score = 1.0 - (1.0 - rules.score) * (1.0 - learned_p)
    return SpamScore(round(score, 4), (*rules.reasons, f"{LEARNED} ({words})"))


# --- the threshold ------------------------------------------------------------------------------
#
# A fixed threshold flags what it flags whatever the model has become; the false flags it
# costs differ between platforms by several times (docs/benchmarks.md). The threshold is
# chosen instead for a false-flag budget: a share of the real leads that may be flagged.
# The evidence of a false flag is a person's restore of a lead the system flagged
# (``AUTO_RESTORED``: undoing one's own flag is not one), and people restore only some of
# what was hidden wrongly (``restored_share``), so ``budget * restored_share`` such
# restores per real lead are expected at the budget. The threshold's odds are the
# configured threshold's times (restores + 1) / (expected + 1), to the power
# ``THRESHOLD_GAIN``: as many restores as the budget expects leave it where it was
# configured, four times as many (and one more) raise 0.9 to about 0.99. A ratio of the
# lifetime counts, not a sum: a burst of restores weighs less as real leads follow it, and
# nothing winds up however long a platform runs. Bounds: never more than
# ``THRESHOLD_DROP`` below the configured threshold (a platform whose people never restore
# does not slide towards flagging everything), never above ``THRESHOLD_MAX`` (or the
# configured threshold, when that is higher). An account's own counts weigh in as its real
# leads grow: half at ``OWN_THRESHOLD_LEADS``, the platform's the other half.

#: The feature whose ``ham`` counts a person's restores of leads the system flagged.
AUTO_RESTORED = "*restored from the system*"
#: Not features of a lead: the model's own counters.
COUNTERS = frozenset({LABELS, AUTO_RESTORED})
THRESHOLD_GAIN = 2.0
THRESHOLD_DROP = 1.0
THRESHOLD_MAX = 0.999
OWN_THRESHOLD_LEADS = 1000


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1.0 - 1e-9)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class Flagging:
    """From which score a new lead is flagged (``[leads]``): ``start``, moved by the
    restores against a false-flag ``budget`` (0: fixed at ``start``; ``start`` 1: only
    known-bad contacts' leads, never moved)."""

    start: float = 0.9
    budget: float = 0.005
    restored_share: float = 0.5

    def threshold(self, platform: dict[str, Counts], account: dict[str, Counts]) -> float:
        """The threshold now, from the counts of real leads (``LABELS``) and of the
        system's flags people restored (``AUTO_RESTORED``), the platform's and, as it
        grows, the account's."""
        if self.start >= 1.0 or self.budget <= 0:
            return self.start
        x = self._odds(platform)
        if x is None:
            return self.start
        own = self._odds(account)
        if own is not None:
            weight = _real(account) / (_real(account) + OWN_THRESHOLD_LEADS)
            x = weight * own + (1.0 - weight) * x
        return 1.0 / (1.0 + math.exp(-x))

    def _odds(self, counts: dict[str, Counts]) -> float | None:
        """The threshold in log-odds from these counts; None without labels."""
        if LABELS not in counts:
            return None
        restored = max(counts.get(AUTO_RESTORED, Counts()).ham, 0)
        expected = self.budget * self.restored_share * _real(counts)
        start = _logit(self.start)
        x = start + THRESHOLD_GAIN * math.log((restored + 1.0) / (expected + 1.0))
        return min(max(_logit(THRESHOLD_MAX), start), max(start - THRESHOLD_DROP, x))


def _real(counts: dict[str, Counts]) -> int:
    """Leads not flagged now (a restored one among them: its flag was taken back)."""
    labels = counts.get(LABELS, Counts())
    return max(labels.seen - labels.flagged, 0)


# --- calibration -------------------------------------------------------------------------------

#: The score bands ``calibration`` reports: lower bounds, each up to the next (the last to 1).
BANDS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99)


def band(score: float) -> float:
    """The lower bound of the ``BANDS`` band a score falls in."""
    return max(b for b in BANDS if score >= b) if score >= 0 else 0.0


@dataclass(frozen=True)
class Band:
    """Leads scored within [low, high): how many, their mean score (the spam rate the
    scores expect) and the share that is spam now (flagged by a person, or by the system
    and not restored: the rate observed)."""

    low: float
    high: float
    leads: int
    expected: float
    observed: float


def calibration(rows: list[tuple[float, int, float, int]]) -> list[Band]:
    """Bands from (band's lower bound, leads, sum of their scores, spam among them): does a
    score of 0.8 mean that 8 leads in 10 like it are spam? Bands without leads are left
    out."""
    found = []
    for low, leads, total, spam_leads in sorted(rows):
        if not leads:
            continue
        high = next((b for b in BANDS if b > low), 1.0)
        found.append(Band(low, high, leads, round(total / leads, 4),
                          round(spam_leads / leads, 4)))
    return found


# --- one lead judged ----------------------------------------------------------------------------


def what_it_says(facts: LeadFacts, text: Comments) -> tuple[list[tuple[str, float]], list[str]]:
    """(the content signals, the model's features) of a lead: what it says and who sent
    it, how it came aside (the features are read from the first, never from the
    behaviour)."""
    said = content_signals(facts, text)
    return said, features(text, facts.email, score(facts, said).reasons)


def judge(facts: LeadFacts, text: Comments, said: list[tuple[str, float]],
          platform: dict[str, Counts], account: dict[str, Counts]) -> SpamScore:
    """The lead's score: the rules (with the behaviour in ``facts``) joined with what the
    counts of its features (``what_it_says``) taught. The one function the service
    (``actions.registration``) and the in-process bench both call."""
    rules = score(replace(facts, script_share=script_share(account, text.script)), said)
    return with_learned(rules, *learned(platform, account))

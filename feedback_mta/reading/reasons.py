"""Why a recipient bounced, in Sisimai's vocabulary (pure).

Sisimai (https://libsisimai.org/en/reason/) names some thirty reasons; mail operators,
Mautic, Postmark and SES speak of bounces the same way, so we do too. A reason comes from
the server's own words first (``Diagnostic-Code``, or the lines next to the address in a
bounce that is no DSN), because the enhanced status is often generic (``5.0.0``) or wrong
(``5.1.1`` for a blocked sender); the RFC 3463 status decides when the words say nothing
we know; ``undefined`` when neither does.

Hard or soft follows from the reason by one table (``bounces.HARD``, ``[feedback]
hard_reasons``): only a reason that says the address itself is gone is hard (Sisimai's
choice too, and a 4.x.x status never is); the rest are soft, counted, and turn hard after
``[feedback] soft_bounce_limit``. Calling a live address dead loses a contact for good.

The patterns are ours, written from the corpus of bounces Sisimai publishes
(sisimai/set-of-emails) and its reason documentation.
"""

from __future__ import annotations

import re

from feedback_mta import bounces

# (reason, pattern over the lower-cased, unfolded diagnostic), most specific first.
_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern)) for reason, pattern in (
        ("notaccept", r"couldn'?t find a mail exchanger|no mx record|null mx|"
                      r"does not accept (?:any )?mail|not accepting (?:any )?mail|"
                      r"accepts no mail"),
        ("networkerror", r"name service error.{0,80}(?:try again|malformed|unexpected)|"
                         r"dns (?:timeout|servfail)|servfail|temporary dns"),
        ("policyviolation", r"blocked because (?:its|of its|of the) content|"
                            r"policy violation|violat(?:es|ion of) (?:our )?polic|"
                            r"not accepted for policy reasons"),
        ("authfailure", r"\bspf (?:check )?fail|dmarc (?:policy|check|validation)|"
                        r"\bdkim (?:fail|signature)|sender policy framework|"
                        r"authentication (?:failure|failed|required)|"
                        r"not (?:pass|authenticated) (?:dmarc|spf|dkim)|unauthenticated email"),
        ("requireptr", r"reverse (?:dns|lookup|hostname)|\bptr\b|no rdns|rdns|"
                       r"client host .* (?:not found|unknown)|cannot find your hostname|"
                       r"hostname does not resolve|"
                       r"ip name (?:lookup )?(?:possibly forged|unknown)"),
        ("virusdetected", r"virus|malware|infected|trojan|worm detected"),
        ("spamdetected", r"\bspam\b|\bube\b|unsolicited (?:bulk|commercial)|junk mail|"
                         r"bulk mail|message (?:content )?rejected as spam|"
                         r"classified as spam|spam score|spamassassin|"
                         r"looks like spam|probable spam|content filter.*spam"),
        ("badreputation", r"\breputation\b|temporarily rate limited due to ip|"
                          r"low reputation|sender score"),
        ("blocked", r"block ?list|black ?list|blocked|\bdnsbl\b|\brbl\b|spamhaus|"
                    r"spamcop|barracuda ?(?:central|reputation)|sorbs|listed (?:at|in|on)|"
                    r"access denied.*\bip\b|your (?:ip|network|host).{0,40}(?:rejected|denied|"
                    r"banned|not allowed)|poor reputation|connection refused by|"
                    r"client host .{0,60}rejected|refused to talk to me|banned"),
        ("norelaying", r"relay(?:ing)? (?:access )?(?:denied|not permitted|not allowed|"
                       r"prohibited)|not permitted to relay|unable to relay|"
                       r"we do not relay|no relaying|relaying denied|relay not permitted"),
        ("securityerror", r"tls (?:required|is required)|must issue a starttls|encryption "
                          r"required|secure connection required|certificate|"
                          r"authentication required"),
        ("failedstarttls", r"starttls (?:failed|error)|tls handshake"),
        ("notcompliantrfc", r"rfc ?(?:5322|2822|822|5321)|not (?:rfc|standard)[- ]compliant|"
                            r"duplicate (?:header|message-id)|multiple (?:from|date|subject|"
                            r"message-id)|malformed (?:header|message)|message is not rfc|"
                            r"bare (?:lf|cr)|header (?:is )?(?:missing|invalid)"),
        ("policyviolation", r"polic(?:y|ies)|not (?:allowed|permitted) by|prohibited|"
                            r"content (?:filter|policy)|attachment|not accepted for policy|"
                            r"administrative prohibition|denied by"),
        ("contenterror", r"content (?:error|rejected)|message (?:content|body) (?:rejected|"
                         r"invalid)|charset|encoding (?:error|not supported)|"
                         r"illegal (?:characters|attachment)"),
        ("mesgtoobig", r"(?:message|mail) (?:size )?(?:is )?(?:too (?:large|big)|exceeds)|"
                       r"size (?:limit|exceeds)|message length exceeds|exceeds (?:the )?"
                       r"(?:maximum|max) (?:message )?size|too large"),
        ("mailboxfull", r"mailbox (?:is )?full|over ?quota|quota (?:exceeded|full)|"
                        r"exceeded (?:storage|quota)|insufficient (?:storage|disk|space)|"
                        r"mailbox (?:size|storage) (?:limit )?exceeded|disk quota|"
                        r"(?:out of|no) (?:disk )?space|full mailbox|mailfolder is full|"
                        r"account is full|user is over|storage (?:quota|allocation)|"
                        r"too much mail"),
        ("exceedlimit", r"exceed(?:s|ed)? .{0,30}limit|limit exceeded|too many (?:recipients|"
                        r"messages)"),
        ("suspend", r"(?:account|mailbox|user) (?:has been |is )?(?:disabled|suspended|"
                    r"inactive|deactivated|expired|locked|frozen|on hold|not active)|"
                    r"currently suspended|temporarily disabled|been disabled|"
                    r"is not active|service (?:is )?suspended|boite du destinataire archivee"),
        ("hasmoved", r"has moved|address (?:has )?changed|no longer (?:valid|available|"
                     r"with|at)|forwarding address"),
        ("userunknown", r"user ?(?:unknown|not found|doesn'?t exist|does not exist|"
                        r"not exist)|unknown (?:user|recipient|local ?part|mailbox|address|"
                        r"alias)|no such (?:user|mailbox|recipient|address|person|account)|"
                        r"(?:mailbox|account|address|recipient|user|addressee)(?: name)? "
                        r"(?:does not exist|doesn'?t exist|not found|unknown|is unknown|"
                        r"unavailable|is (?:not valid|invalid)|invalid|not listed|"
                        r"not (?:known|recognized))|recipient ?not ?found|"
                        r"invalid (?:recipient|mailbox|address|user)|"
                        r"is not a (?:known|valid) (?:user|mailbox|recipient)|"
                        r"(?:account|address) (?:that )?you tried to reach does not exist|"
                        r"no mail ?box (?:here|available)|mailbox unavailable|"
                        r"doesn'?t have an? [\w.-]+ account|bad[_ ]recipient|"
                        r"addressee unknown|not our customer|"
                        r"undeliverable address|"
                        r"no (?:such )?(?:local )?user|unrouteable address|"
                        r"destination address (?:is )?(?:invalid|unknown)|"
                        r"mailbox not (?:found|available)|name service error for name=.*? "
                        r"type=a: host not found"),
        ("hostunknown", r"(?:host|domain)(?: name)? (?:not found|unknown|does not exist|"
                        r"lookup failed|not resolved)|unknown (?:host|domain)|"
                        r"no such (?:host|domain)|nxdomain|no mx|null mx|"
                        r"domain (?:is )?(?:invalid|not valid)|unrouteable mail domain|"
                        r"name or service not known"),
        ("toomanyconn", r"too many (?:connections|concurrent|sessions|smtp sessions)|"
                        r"connection (?:limit|rate)|maximum (?:number of )?connections|"
                        r"too many simultaneous"),
        ("ratelimited", r"rate ?limit|too many (?:requests|attempts)|slow down|throttl|"
                        r"sending (?:rate|limit)"),
        ("systemfull", r"(?:system|disk|server) (?:is )?full|insufficient system storage"),
        ("syntaxerror", r"syntax error|command unrecognized|unrecognized command|"
                        r"bad sequence of commands"),
        ("networkerror", r"network (?:is )?unreachable|no route to host|connection (?:timed "
                         r"out|refused|reset)|routing loop|mail (?:loops|loop) back|"
                         r"loop detected|too many hops|hop count|dns (?:error|failure)|"
                         r"lookup (?:failure|error)|host (?:is )?unreachable|"
                         r"lost connection"),
        ("expired", r"(?:time|timed) ?out|deadline|delivery (?:time )?expired|expired|"
                    r"retry time|could not be delivered (?:for|within)|"
                    r"too long in (?:the )?queue|message (?:is )?delayed|"
                    r"failing for a long time|retry timeout exceeded|giving up"),
        ("systemerror", r"system error|internal (?:server )?error|server error|"
                        r"local error|temporary (?:local )?(?:problem|failure)|"
                        r"configuration error|misconfigur|transaction failed|"
                        r"service (?:is )?(?:currently |temporarily )?unavailable"),
        ("mailererror", r"(?:mailer|program|pipe|command) (?:error|failed)|"
                        r"unknown mailer|exit (?:code|status)|\bx-unix\b|\bsh: "),
        ("rejected", r"sender (?:address )?(?:rejected|denied|refused|blocked)|"
                     r"address rejected|rejected|refused|domain of sender|"
                     r"sender (?:is )?(?:not allowed|invalid)|"
                     r"permission to post|not (?:allowed|authorized) to post"),
        ("notaccept", r"does not accept (?:any )?mail|not accepting (?:any )?mail|"
                      r"null mx|accepts no mail"),
    ))

# The status when the words said nothing we know: RFC 3463 class.subject.detail.
_STATUS = {
    "5.1.0": "userunknown", "5.1.1": "userunknown", "5.1.2": "hostunknown",
    "5.1.3": "userunknown", "5.1.4": "userunknown", "5.1.6": "hasmoved",
    "5.1.7": "rejected", "5.1.8": "rejected", "5.1.9": "rejected", "5.1.10": "notaccept",
    "5.2.0": "filtered", "5.2.1": "suspend", "5.2.2": "mailboxfull", "5.2.3": "exceedlimit",
    "5.2.4": "systemerror", "5.3.0": "systemerror", "5.3.1": "systemfull",
    "5.3.2": "notaccept", "5.3.3": "systemerror", "5.3.4": "mesgtoobig",
    "5.3.5": "systemerror", "5.4.0": "networkerror", "5.4.1": "userunknown",
    "5.4.2": "networkerror", "5.4.3": "systemerror", "5.4.4": "hostunknown",
    "5.4.5": "networkerror", "5.4.6": "networkerror", "5.4.7": "expired",
    "5.5.0": "syntaxerror", "5.5.1": "syntaxerror", "5.5.2": "syntaxerror",
    "5.5.3": "toomanyconn", "5.5.4": "syntaxerror", "5.5.5": "syntaxerror",
    "5.6.0": "contenterror", "5.6.1": "contenterror", "5.6.2": "contenterror",
    "5.6.3": "contenterror", "5.6.4": "contenterror", "5.6.5": "contenterror",
    "5.7.0": "securityerror", "5.7.1": "rejected", "5.7.2": "rejected",
    "5.7.3": "securityerror", "5.7.4": "securityerror", "5.7.5": "securityerror",
    "5.7.6": "securityerror", "5.7.7": "securityerror", "5.7.8": "securityerror",
    "5.7.9": "securityerror", "5.7.10": "securityerror", "5.7.11": "securityerror",
    "5.7.13": "suspend", "5.7.14": "securityerror", "5.7.15": "securityerror",
    "5.7.16": "securityerror", "5.7.17": "suspend", "5.7.18": "suspend",
    "5.7.20": "authfailure", "5.7.21": "authfailure", "5.7.22": "authfailure",
    "5.7.23": "authfailure", "5.7.24": "authfailure", "5.7.25": "requireptr",
    "5.7.26": "authfailure", "5.7.27": "notaccept",
    "4.2.2": "mailboxfull", "4.3.2": "toomanyconn", "4.4.1": "expired", "4.4.7": "expired",
    "4.7.1": "blocked",
}
_SUBJECTS = {"1": "userunknown", "2": "filtered", "3": "systemerror", "4": "networkerror",
             "5": "syntaxerror", "6": "contenterror", "7": "securityerror"}


#: Where in the SMTP dialogue the server refused, when the bounce says: a refusal of the
#: sender (after MAIL FROM) says nothing of the recipient; "user unknown" after the whole
#: message was sent is a content filter speaking (the address was accepted at RCPT).
_AFTER_MAIL = re.compile(r"after mail from|in reply to mail from|mail from:? command")
_AFTER_DATA = re.compile(r"after end of data|after data|in reply to (?:end of )?data")


def reason(status: str | None, diagnostic: str | None = None) -> str:
    """The reason of one failed recipient from its enhanced status (``5.1.1``) and the
    server's words."""
    text = " ".join((diagnostic or "").lower().split())
    if status in ("4.4.1", "4.4.7", "5.4.7"):
        return "expired"  # the queue gave up; the words say what the last try met
    if text:
        for name, pattern in _WORDS:
            if pattern.search(text):
                if name == "rejected" and _STATUS.get(status or "", name) != name:
                    return _STATUS[status or ""]  # "rejected" says little; 5.1.1 says more
                if name in ("userunknown", "hostunknown") and _AFTER_MAIL.search(text):
                    return "rejected"
                if name == "userunknown" and _AFTER_DATA.search(text):
                    return "filtered"
                return name
        if _AFTER_MAIL.search(text):
            return "rejected"
    if status:
        if status in _STATUS:
            return _STATUS[status]
        if status.startswith("4."):
            return "expired" if status.startswith("4.4.") else "onhold"
        subject = status.split(".")[1] if status.count(".") == 2 else ""
        if status.startswith("5.") and subject in _SUBJECTS:
            return _SUBJECTS[subject]
    return "undefined" if text else "onhold"


def is_hard(name: str, status: str | None = None,
            hard_reasons: frozenset[str] = bounces.HARD) -> bool:
    """Is a bounce for this reason hard? Never when the failure was temporary (a 4.x.x
    status: the server itself says to try again, whatever its words)."""
    return name in hard_reasons and not (status or "").startswith("4")

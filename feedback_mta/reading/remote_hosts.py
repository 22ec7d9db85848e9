"""What the big receiving servers mean by their own words (pure data and one lookup).

A refusal from Gmail, Microsoft 365, Yahoo, KDDI (au), NTT docomo, Tencent (QQ) or
Orange says its reason in phrases of its own that the general tables (``reason_words``)
place wrongly: KDDI's ``550 : User unknown`` (no address) is its content filter, while
``550 <user@ezweb.ne.jp>: User unknown`` is a real unknown user. The server is known by
the ``Remote-MTA`` the bounce names, else by the recipient's domain. Sisimai's ``rhost``
tables (go-sisimai ``rhost/for-*.go``), lower-cased; where a server also publishes error
codes, only its phrases are kept.

Copyright (c) 2020-2025, azumakuniyuki and sisimai development team, under the BSD
2-Clause License (its text is in ``reason_words``).
"""

from __future__ import annotations

import re

#: Server -> the host-name suffixes it answers from.
HOSTS: dict[str, tuple[str, ...]] = {
    "aol": (".mail.aol.com", ".mx.aol.com"),
    "apple": (".mail.icloud.com", ".apple.com", ".me.com"),
    "cox": ("cox.net",),
    "facebook": (".facebook.com",),
    "spectrum": ("charter.net",),
    "franceptt": (".laposte.net", ".orange.fr", ".wanadoo.fr"),
    "godaddy": ("smtp.secureserver.net", "mailstore1.secureserver.net"),
    "google": ("aspmx.l.google.com", "gmail-smtp-in.l.google.com"),
    "gsuite": ("googlemail.com",),
    "kddi": (".ezweb.ne.jp", "msmx.au.com"),
    "messagelabs": (".messagelabs.com",),
    "microsoft": (".prod.outlook.com", ".protection.outlook.com", ".onmicrosoft.com",
                  ".exchangelabs.com"),
    "mimecast": (".mimecast.com",),
    "nttdocomo": ("mfsmax.docomo.ne.jp",),
    "outlook": (".hotmail.com",),
    "tencent": (".qq.com",),
    "yahooinc": (".yahoodns.net",),
}

#: Server -> reason -> its phrases.
PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
# skip Facebook
# skip Google
# skip IUA
# skip Microsoft
# skip Mimecast
# skip Spectrum
    'aol': {
        'hostunknown': (
            'host or domain name not found',
        ),
        'notaccept': (
            'type=mx: malformed or unexpected name server reply',
        ),
    },
    'apple': {
        'authfailure': (
            's dmarc policy',
            'blocked for failing both spf and dkim autentication checks',
        ),
        'blocked': (
            'rejected due to having a domain present in the spamhaus',
            'rejected due to listing in spamhaus',
            'blocked - see https://support.proofpoint.com/dnsbl-lookup',
            'not accepting connections',
        ),
        'hasmoved': (
            'recipient no longer on server',
        ),
        'mailboxfull': (
            'user is over quota',
        ),
        'norelaying': (
            'relay access denied',
        ),
        'notaccept': (
            'host/domain does not accept mail',
        ),
        'policyviolation': (
            'due to local policy',
        ),
        'rejected': (
            'sender address rejected',
        ),
        'speeding': (
            'due to excessive volume',
        ),
        'userunknown': (
            'inactive email address',
            'user does not exist',
            'unknown or illegal alias',
        ),
    },
    'cox': {
        'blocked': (
            'cox too many bad commands from',
            'too many invalid recipients',
        ),
        'requireptr': (
            'dns check failure - try again later',
            'rejected - no rdns',
        ),
        'policyviolation': (
            'esmtp no data before greeting',
            'attachment extension is forbidden',
        ),
        'rejected': (
            'sender rejected',
        ),
        'systemerror': (
            'esmtp server temporarily not available',
        ),
        'toomanyconn': (
            'too many sessions from',
            'requested action aborted: try again later',
            'message threshold exceeded',
        ),
        'userunknown': (
            'recipient rejected',
        ),
    },
    'franceptt': {
        'authfailure': (
            'spf/dns de votre nom de domaine',
        ),
    },
    'godaddy': {
        'blocked': (
            'rbl reject',
            'www.spamhaus.org/query/bl?ip=',
        ),
        'expired': (
            'has been in the queue too long',
            'delivery timeout',
        ),
        'mailboxfull': (
            'account storage limit',
        ),
        'spamdetected': (
            'message rejected for spam or virus content',
        ),
        'suspend': (
            'account disabled',
        ),
        'systemerror': (
            'message is looping',
        ),
        'userunknown': (
            'recipient not found',
            'account does not exist',
        ),
    },
    'gsuite': {
        'hostunknown': (
            ' responded with code nxdomain',
            'domain name not found',
        ),
        'networkerror': (
            ' had no relevant answers.',
            'responded with code nxdomain',
            'domain name not found',
        ),
        'notaccept': (
            'null mx',
        ),
        'userunknown': (
            "because the address couldn't be found. check for typos or unnecessary spaces and try again.",
        ),
    },
    'kddi': {
        'filtered': (
            '550 : user unknown',
        ),
        'userunknown': (
            '>: user unknown',
        ),
    },
    'messagelabs': {
        'securityerror': (
            'please turn on smtp authentication in your mail client',
        ),
        'userunknown': (
            '542 ',
            ' rejected',
            'no such user',
        ),
    },
    'nttdocomo': {
        'mailboxfull': (
            '552 too much mail data',
        ),
        'toomanyconn': (
            '552 too many recipients',
        ),
        'syntaxerror': (
            '503 bad sequence of commands',
            '504 command parameter not implemented',
        ),
    },
    'outlook': {
        'hostunknown': (
            'the mail could not be delivered to the recipient because the domain is not reachable',
        ),
        'userunknown': (
            'requested action not taken: mailbox unavailable',
        ),
    },
    'tencent': {
        'authfailure': (
            'spf check failed',
            'dmarc check failed',
        ),
        'blocked': (
            'suspected bounce attacks',
            'suspected spam ip',
            'connection denied',
        ),
        'mesgtoobig': (
            'message too large',
        ),
        'rejected': (
            'suspected spam',
            'mail is rejected by recipients',
        ),
        'spandetected': (
            'spam is embedded in the email',
            'mail content denied',
        ),
        'speeding': (
            'mailbox unavailable or access denined',
        ),
        'suspend': (
            'is a deactivated mailbox',
        ),
        'syntaxerror': (
            'bad address syntax',
        ),
        'toomanyconn': (
            'ip frequency limited',
            'domain frequency limited',
            'sender frequency limited',
            'connection frequency limited',
        ),
        'userunknown': (
            'mailbox not found',
        ),
    },
    'yahooinc': {
        'authfailure': (
            'yahoo requires all senders to authenticate with either spf or dkim',
        ),
        'blocked': (
            " because the ip is in spamhaus's list;",
            'not accepted from ip addresses on spamhaus xbl',
        ),
        'norelaying': (
            'relaying denied for ',
        ),
        'notcompliantrfc': (
            'headers are not rfc compliant',
        ),
        'policyviolation': (
            'not accepted for policy reasons',
        ),
        'rejected': (
            'temporarily deferred due to unexpected volume or user complaints',
            'due to unresolvable rfc.5321 domain',
            ' will be permanently deferred',
        ),
        'speeding': (
            'user is receiving mail too quickly',
        ),
        'suspend': (
            ' is no longer valid.',
            'this mailbox is disabled',
        ),
        'syntaxerror': (
            'syntax error in parameters or arguments',
        ),
        'toomanyconn': (
            'max message per connection reached',
        ),
        'userunknown': (
            "dd this user doesn't have a ",
            'mailbox not found',
        ),
    },
}

#: Servers whose phrases count only beside their codes, per reason: Google's (reply code,
#: status, phrase), Microsoft's (status, lowest and highest detail, phrase) and Mimecast's
#: (reply code, phrase).
CODED: dict[str, tuple[tuple[str, ...], ...]] = {
    'google': (
        ('authfailure', '451', '4.7.24', 'the spf record of the sending domain'),
        ('authfailure', '550', '5.7.24', 'the spf record of the sending domain'),
        ('authfailure', '421', '4.7.26', 'senders to authenticate with either spf or dkim'),
        ('authfailure', '550', '5.7.26', 'senders to authenticate with either spf or dkim'),
        ('authfailure', '550', '5.7.26', 'fails to pass spf checks for an spf record with a hard fail'),
        ('authfailure', '550', '5.7.26', 'has an spf record with a hard fail policy'),
        ('authfailure', '451', '4.7.26', "is not accepted due to domain's dmarc policy"),
        ('authfailure', '550', '5.7.26', "is not accepted due to domain's dmarc policy"),
        ('authfailure', '550', '5.7.26', "is not accepted due to domain's dmarc policy"),
        ('authfailure', '550', '5.7.1', 'fails to pass authentication checks'),
        ('authfailure', '550', '5.7.26', 'fails to pass authentication checks'),
        ('authfailure', '421', '4.7.27', 'senders to authenticate with spf'),
        ('authfailure', '421', '4.7.27', 'senders to authenticate their email with spf'),
        ('authfailure', '550', '5.7.27', 'senders to authenticate with spf'),
        ('authfailure', '421', '4.7.30', 'senders to authenticate their email with dkim'),
        ('authfailure', '550', '5.7.30', 'senders to authenticate with dkim'),
        ('authfailure', '421', '4.7.32', 'aligned with either the authenticated spf or dkim'),
        ('badreputation', '421', '4.7.0', 'very low reputation of the sending ip address'),
        ('badreputation', '421', '4.7.0', 'very low reputation of the sending domain'),
        ('badreputation', '550', '5.7.1', 'due to the very low reputation of the sending ip address'),
        ('badreputation', '550', '5.7.1', 'due to the very low reputation of the sending domain'),
        ('blocked', '421', '4.7.0', 'ip not in whitelist for rcpt domain'),
        ('blocked', '421', '4.7.0', 'try again later, closing connection.'),
        ('blocked', '501', '5.5.4', 'empty helo/ehlo argument not allowed'),
        ('blocked', '501', '5.5.4', 'helo/ehlo argument is invalid'),
        ('blocked', '421', '4.7.0', 'an unusual rate of unsolicited mail'),
        ('blocked', '421', '4.7.28', 'an unusual rate of mail'),
        ('blocked', '550', '5.7.1', 'an unusual rate of unsolicited mail'),
        ('blocked', '550', '5.7.28', 'an unusual rate of unsolicited mail'),
        ('exceedlimit', '552', '5.2.3', "exceeded google's message size limits"),
        ('exceedlimit', '552', '5.3.4', "exceeds google's limit of limit attachments."),
        ('exceedlimit', '552', '5.3.4', "your message exceeded google's message header size limits"),
        ('exceedlimit', '552', '5.3.4', 'bytes per individual header size'),
        ('exceedlimit', '552', '5.3.4', "exceeds google's header name limit of"),
        ('exceedlimit', '552', '5.3.4', "exceeds google's message header size limit"),
        ('expired', '421', '4.7.0', 'connection expired'),
        ('expired', '451', '4.4.2', 'timeout - closing connection'),
        ('failedstarttls', '530', '5.7.0', 'must issue a starttls command first'),
        ('failedstarttls', '454', '5.5.1', 'starttls may not be repeated'),
        ('failedstarttls', '421', '4.7.0', 'tls required for rcpt domain'),
        ('failedstarttls', '421', '4.7.29', 'senders to use tls/ssl for smtp'),
        ('failedstarttls', '550', '5.7.29', 'senders to use tls/ssl for smtp'),
        ('mailboxfull', '452', '4.2.2', 'inbox is out of storage space'),
        ('mailboxfull', '552', '5.2.2', 'inbox is out of storage space and inactive'),
        ('mailboxfull', '452', '4.2.2', 'is over quota'),
        ('mailboxfull', '552', '5.2.2', 'is over quota'),
        ('mailboxfull', '550', '5.7.1', 'email quota exceeded'),
        ('mesgtoobig', '552', '5.3.4', "exceeded google's message size limits"),
        ('mesgtoobig', '552', '5.3.4', "exceeds google's message size limit of"),
        ('networkerror', '554', '5.4.6', 'message exceeded 50 hops'),
        ('networkerror', '554', '5.6.0', 'message exceeded 50 hops'),
        ('norelaying', '550', '5.7.0', 'mail relay denied'),
        ('norelaying', '550', '5.7.1', 'invalid credentials for relay'),
        ('norelaying', '550', '5.7.1', 'is not authorized to send email directly to our servers'),
        ('notcompliantrfc', '550', '5.7.1', 'missing a valid address in the from: header'),
        ('notcompliantrfc', '550', '5.7.1', 'multiple addresses in from: header are not accepted'),
        ('notcompliantrfc', '550', '5.7.1', 'is not rfc 5322 compliant'),
        ('notcompliantrfc', '550', '5.7.1', 'missing a valid message-id: header'),
        ('notcompliantrfc', '550', '5.7.1', 'contains a unicode character in a disallowed header'),
        ('notcompliantrfc', '550', '5.7.1', 'encoded-word syntax is not permitted'),
        ('notcompliantrfc', '553', '5.1.7', 'is not a valid rfc 5321 address'),
        ('notcompliantrfc', '554', '5.6.0', 'mail message is malformed'),
        ('policyviolation', '552', '5.7.0', 'illegal attachment on your message'),
        ('policyviolation', '552', '5.7.0', 'blocked because its content presents a potential security issue'),
        ('policyviolation', '550', '5.7.1', 'you are sending to (or from) has a policy that prohibited'),
        ('policyviolation', '421', '4.7.28', 'sending messages with the same message-id:'),
        ('rejected', '550', '5.7.0', 'mail sending denied'),
        ('rejected', '550', '5.7.1', 'unauthenticated email is not accepted'),
        ('requireptr', '421', '4.7.0', 'does not have a ptr record'),
        ('requireptr', '421', '4.7.23', ' have a ptr record, or the ptr record'),
        ('requireptr', '550', '5.7.1', 'does not meet ipv6 sending guidelines regarding ptr records and authentication'),
        ('requireptr', '550', '5.7.25', 'does not have a ptr record'),
        ('requireptr', '550', '5.7.25', 'does not match the ip address of the hostname'),
        ('securityerror', '454', '4.7.0', 'too many login attempts'),
        ('securityerror', '501', '5.5.2', 'cannot decode response'),
        ('securityerror', '503', '5.7.0', 'no identity changes permitted'),
        ('securityerror', '530', '5.5.1', 'authentication required.'),
        ('securityerror', '530', '5.7.0', 'authentication required.'),
        ('securityerror', '535', '5.7.1', 'application-specific password required'),
        ('securityerror', '535', '5.7.9', 'application-specific password required'),
        ('securityerror', '535', '5.7.1', 'please log in with your web browser'),
        ('securityerror', '534', '5.7.9', 'please log in with your web browser'),
        ('securityerror', '534', '5.7.14', 'please log in through your web browser'),
        ('securityerror', '535', '5.7.1', 'username and password not accepted'),
        ('securityerror', '535', '5.7.8', 'username and password not accepted'),
        ('spamdetected', '421', '4.7.0', 'due to the nature of the content or the links within'),
        ('spamdetected', '550', '5.7.1', 'likely unsolicited mail'),
        ('speeding', '450', '4.2.1', 'is receiving mail too quickly'),
        ('speeding', '450', '4.2.1', 'peak smtp relay limit exceeded for customer'),
        ('speeding', '450', '4.2.1', 'rate that prevents additional messages from being delivered'),
        ('speeding', '550', '5.2.1', 'rate that prevents additional messages from being delivered'),
        ('speeding', '550', '5.4.5', 'daily sending quota exceeded'),
        ('speeding', '550', '5.4.5', 'daily user sending limit exceeded'),
        ('speeding', '550', '5.4.5', 'daily smtp relay limit exceeded for'),
        ('speeding', '550', '5.7.1', 'daily smtp relay limit exceeded for'),
        ('speeding', '550', '5.7.1', 'daily smtp relay sending limit exceeded for'),
        ('speeding', '550', '5.7.1', 'this mail has been rate limited'),
        ('suspend', '550', '5.2.1', 'account that you tried to reach is disabled'),
        ('suspend', '550', '5.2.1', 'account that you tried to reach is inactive'),
        ('syntaxerror', '451', '4.5.0', 'smtp protocol violation'),
        ('syntaxerror', '454', '4.5.0', 'smtp protocol violation'),
        ('syntaxerror', '525', '5.7.10', 'smtp protocol violation'),
        ('syntaxerror', '535', '5.5.4', 'optional argument not permitted'),
        ('syntaxerror', '501', '5.7.11', 'syntax error'),
        ('syntaxerror', '501', '5.5.2', 'syntax error'),
        ('syntaxerror', '555', '5.5.2', 'syntax error'),
        ('syntaxerror', '502', '5.5.1', 'too many unrecognized commands, goodbye'),
        ('syntaxerror', '502', '5.5.1', 'unimplemented command'),
        ('syntaxerror', '502', '5.5.1', 'unrecognized command'),
        ('syntaxerror', '503', '5.5.1', 'bad sequence of commands'),
        ('syntaxerror', '503', '5.5.1', 'ehlo/helo first'),
        ('syntaxerror', '503', '5.5.1', 'mail first'),
        ('syntaxerror', '503', '5.5.1', 'rcpt first'),
        ('syntaxerror', '503', '5.5.1', 'no data after bdat'),
        ('syntaxerror', '504', '5.7.4', 'unrecognized authentication type'),
        ('syntaxerror', '504', '5.7.4', 'xoauth is no longer supported'),
        ('syntaxerror', '554', '5.7.0', 'too many unauthenticated commands'),
        ('systemerror', '421', '4.3.0', 'temporary system problem'),
        ('systemerror', '421', '4.7.0', 'temporary system problem'),
        ('systemerror', '421', '4.4.5', 'server busy'),
        ('systemerror', '451', '4.3.0', 'multiple destination domains per transaction is unsupported'),
        ('systemerror', '451', '4.3.0', 'mail server has temporarily rejected this message'),
        ('systemerror', '451', '4.3.0', 'mail server temporarily rejected message'),
        ('systemerror', '452', '4.5.3', 'domain policy size per transaction exceeded'),
        ('systemerror', '454', '4.7.0', 'cannot authenticate due to temporary system problem'),
        ('toomanyconn', '452', '4.5.3', 'your message has too many recipients'),
        ('toomanyconn', '550', '5.5.3', 'too many recipients for this sender'),
        ('userunknown', '550', '5.1.1', 'the email account that you tried to reach does not exist'),
        ('userunknown', '553', '5.1.2', "we weren't able to find the recipient domain"),
        ('userunknown', '553', '5.1.3', 'is not a valid rfc 5321 address'),
    ),
    'microsoft': (
        ('authfailure', '4.7.26', '', '', 'must pass either spf or dkim validation, this message is not signed'),
        ('authfailure', '5.7.23', '', '', 'the message was rejected because of sender policy framework violation'),
        ('authfailure', '5.7.509', '', '', 'does not pass dmarc verification'),
        ('badreputation', '4.7.650', '', '', 'has been temporarily rate limited due to ip reputation'),
        ('blocked', '4.4.2', '', '', 'connection dropped'),
        ('blocked', '4.7.', '850', '899', 'access denied, please try again later'),
        ('blocked', '5.7.25', '', '', 'must have a reverse dns record'),
        ('blocked', '5.7.506', '', '', 'access denied, bad helo'),
        ('blocked', '5.7.507', '', '', 'access denied, rejected by recipient'),
        ('blocked', '5.7.510', '', '', 'does not accept email over ipv6'),
        ('blocked', '5.7.511', '', '', 'access denied, banned sender'),
        ('blocked', '5.7.513', '', '', 'using customer block list'),
        ('blocked', '5.7.', '606', '649', 'access denied, banned sending ip '),
        ('blocked', '4.7.', '500', '699', 'access denied, please try again later'),
        ('blocked', '5.5.4', '', '', 'invalid domain name'),
        ('blocked', '5.7.1', '', '', 'part of their network is on our block list (s3150)'),
        ('contenterror', '5.3.0', '', '', 'too many related errors'),
        ('contenterror', '5.6.11', '', '', 'invalid characters'),
        ('contenterror', '5.4.11', '', '', 'agent generated message depth exceeded'),
        ('contenterror', '5.5.6', '', '', 'invalid message content'),
        ('exceedlimit', '5.2.3', '', '', 'resolver.rst.recipsizelimit; message too large for this recipient'),
        ('expired', '4.4.1', '', '', 'connection timed out'),
        ('expired', '4.4.7', '', '', 'message delayed'),
        ('expired', '4.4.7', '', '', 'queue expired; message expired'),
        ('expired', '4.4.7', '', '', 'message expired'),
        ('expired', '5.4.300', '', '', 'message expired'),
        ('expired', '5.4.316', '', '', 'message expired'),
        ('failedstarttls', '4.4.8', '', '', ' failed\u202fmta-sts\u202fvalidation'),
        ('failedstarttls', '5.4.8', '', '', ' failed\u202fmta-sts\u202fvalidation'),
        ('failedstarttls', '4.4.317', '', '', 'starttls is required to send mail'),
        ('failedstarttls', '5.4.317', '', '', 'starttls is required to send mail'),
        ('failedstarttls', '4.7.5', '', '', 'remote\u202fcertificate\u202ffailed\u202fmta-sts\u202fvalidation'),
        ('failedstarttls', '5.7.5', '', '', 'remote\u202fcertificate\u202ffailed\u202fmta-sts\u202fvalidation'),
        ('failedstarttls', '5.7.51', '', '', 'restrictdomainstoipaddresses or restrictdomainstocertificate'),
        ('failedstarttls', '4.7.321', '', '', 'starttls-not-supported: destination mail server must support tls to receive mail'),
        ('failedstarttls', '5.7.321', '', '', 'starttls-not-supported: destination mail server must support tls to receive mail'),
        ('failedstarttls', '5.7.322', '', '', "certificate-expired: destination mail server's certificate is expired"),
        ('failedstarttls', '4.7.323', '', '', 'tlsa-invalid: the domain failed dane validation'),
        ('failedstarttls', '5.7.323', '', '', 'tlsa-invalid: the domain failed dane validation'),
        ('failedstarttls', '4.7.324', '', '', 'dnssec-invalid: destination domain returned invalid dnssec records'),
        ('failedstarttls', '5.7.324', '', '', 'dnssec-invalid: destination domain returned invalid dnssec records'),
        ('mailboxfull', '5.2.2', '', '', 'mailbox full'),
        ('mesgtoobig', '5.3.4', '', '', 'message size exceeds fixed maximum message size'),
        ('mesgtoobig', '5.3.4', '', '', 'message too big for system'),
        ('networkerror', '5.4.4', '', '', 'smtpsend.dns.nonexistentdomain; nonexistent domain'),
        ('networkerror', '5.4.6', '', '', 'hop count exceeded - possible mail loop'),
        ('networkerror', '4.4.312', '', '', 'dns query failed'),
        ('networkerror', '5.4.312', '', '', 'dns query failed'),
        ('networkerror', '4.4.316', '', '', 'connection refused'),
        ('networkerror', '5.4.316', '', '', 'connection refused'),
        ('networkerror', '5.4.4', '', '', 'invalid arguments'),
        ('networkerror', '5.4.6', '', '', 'routing loop detected'),
        ('networkerror', '5.4.14', '', '', 'routing loop detected'),
        ('networkerror', '4.4.312', '', '', 'dns query failed'),
        ('networkerror', '5.4.312', '', '', 'dns query failed'),
        ('norelaying', '5.7.1', '', '', 'unable to relay'),
        ('norelaying', '5.7.1', '', '', 'client was not authenticated'),
        ('norelaying', '5.4.1', '', '', 'relay access denied'),
        ('norelaying', '5.7.1', '', '', 'unable to relay'),
        ('norelaying', '5.7.64', '', '', 'tenantattribution; relay access denied'),
        ('norelaying', '5.4.310', '', '', 'does not exist'),
        ('notaccept', '4.3.2', '', '', 'system not accepting network messages'),
        ('notaccept', '4.4.4', '', '', 'hosted tenant which has no mail-enabled subscriptions'),
        ('notaccept', '5.3.2', '', '', 'storedrv.deliver: missing or bad storedriver mdb properties'),
        ('policyviolation', '5.0.350', '', '', 'x-dg-ref header is too long'),
        ('policyviolation', '5.0.350', '', '', 'requested action not taken: policy violation detected (as345)'),
        ('policyviolation', '5.7.', '900', '999', 'delivery not authorized, message refused'),
        ('rejected', '5.1.7', '', '', 'invalid address'),
        ('rejected', '5.1.7', '', '', 'unknown sender address'),
        ('rejected', '5.1.0', '', '', 'sender denied'),
        ('rejected', '5.1.8', '', '', 'access denied, bad outbound sender'),
        ('rejected', '5.7.1', '', '', 'delivery not authorized'),
        ('rejected', '5.7.12', '', '', 'sender was not authenticated by organization'),
        ('rejected', '5.7.124', '', '', 'sender not in allowed-senders list'),
        ('rejected', '5.7.133', '', '', 'sender not authenticated for group'),
        ('rejected', '5.7.134', '', '', 'sender was not authenticated for mailbox'),
        ('rejected', '5.7.13', '', '', 'sender was not authenticated for public folder'),
        ('rejected', '5.7.135', '', '', 'sender was not authenticated for public folder'),
        ('rejected', '5.7.136', '', '', 'sender was not authenticated'),
        ('rejected', '5.7.', '501', '503', 'access denied, spam abuse detected'),
        ('rejected', '5.7.512', '', '', 'access denied, message must be rfc 5322 section 3.6.2 compliant'),
        ('rejected', '5.7.750', '', '', 'service unavailable. client blocked from sending from unregistered domains'),
        ('rejected', '5.7.', '501', '503', 'access denied, banned sender'),
        ('securityerror', '5.7.3', '', '', 'cannot achieve exchange server authentication'),
        ('securityerror', '5.7.3', '', '', 'not authorized'),
        ('securityerror', '5.7.1', '', '', 'client was not authenticated'),
        ('securityerror', '5.7.57', '', '', 'client was not authenticated to send anonymous mail during mail from'),
        ('spamdetected', '5.2.1', '', '', 'content filter agent quarantined this message'),
        ('speeding', '4.3.2', '', '', 'storedrv.deliver; recipient thread limit exceeded'),
        ('speeding', '5.1.90', '', '', "your message can't be sent because you've reached your daily limit for message recipients"),
        ('speeding', '5.2.2', '', '', 'submission quota exceeded'),
        ('speeding', '5.2.121', '', '', "recipient's per hour message receive limit from specific sender exceeded"),
        ('speeding', '5.2.122', '', '', "recipient's per hour message receive limit exceeded"),
        ('speeding', '5.7.508', '', '', 'has exceeded permitted limits within'),
        ('speeding', '5.7.', '700', '749', 'access denied, tenant has exceeded threshold'),
        ('speeding', '5.7.', '700', '749', 'access denied, traffic not accepted from this ip'),
        ('suspend', '5.7.504', '', '', 'recipient address rejected: access denied'),
        ('suspend', '5.7.505', '', '', 'access denied, banned recipient'),
        ('suspend', '5.2.1', '', '', 'mailbox cannot be accessed'),
        ('syntaxerror', '5.3.3', '', '', 'unrecognized command'),
        ('syntaxerror', '5.5.2', '', '', 'send hello first'),
        ('systemerror', '4.3.2', '', '', 'service not available'),
        ('systemerror', '4.3.2', '', '', 'service not active'),
        ('systemerror', '5.3.5', '', '', 'system incorrectly configured'),
        ('systemerror', '5.3.190', '', '', 'journaling on-premises messages to microsoft 365 or office 365 not supported when journaling archive is disabled'),
        ('systemerror', '5.0.0', '', '', 'helo / ehlo requires domain address'),
        ('systemerror', '5.1.4', '', '', 'destination mailbox address ambiguous'),
        ('systemerror', '5.2.4', '', '', 'mailing list expansion problem'),
        ('systemerror', '5.2.14', '', '', 'misconfigured forwarding address'),
        ('systemerror', '4.4.3', '', '', 'temporary server error. please try again later attr18'),
        ('systemerror', '4.7.0', '', '', 'temporary server error. please try again later. prx4 nexthop:'),
        ('systemerror', '4.4.24', '', '', 'message failed to be replicated: insufficient system resource:'),
        ('systemerror', '4.4.25', '', '', 'message failed to be replicated: no healthy secondary server available to accept replica at this time.'),
        ('systemerror', '4.4.28', '', '', 'message failed to be replicated: the operation was canceled'),
        ('systemerror', '4.4.318', '', '', '(suspiciousremoteservererror)'),
        ('systemerror', '5.4.318', '', '', '(suspiciousremoteservererror)'),
        ('systemerror', '4.7.500', '', '', 'server busy. please try again later from '),
        ('systemerror', '4.7.700', '', '', 'pfa agent busy, please try again.'),
        ('systemfull', '4.3.1', '', '', 'insufficient system resources'),
        ('toomanyconn', '5.5.3', '', '', 'too many recipients'),
        ('toomanyconn', '4.5.3', '', '', 'too many recipients'),
        ('toomanyconn', '4.7.652', '', '', 'has exceeded the maximum number of connections'),
        ('toomanyconn', '5.2.122', '', '', 'the recipient has exceeded their limit for'),
        ('userunknown', '5.1.1', '', '', 'resolver.adr.exrecipnotfound; not found'),
        ('userunknown', '5.1.1', '', '', 'user unknown'),
        ('userunknown', '5.1.3', '', '', 'storedrv.submit; invalid recipient address'),
        ('userunknown', '5.1.', '4', '5', 'recipient address reserved by rfc 2606'),
        ('userunknown', '5.1.6', '', '', 'recipient addresses in single label domains not accepted'),
        ('userunknown', '5.1.1', '', '', 'bad destination mailbox address'),
        ('userunknown', '5.1.10', '', '', 'recipient not found'),
        ('userunknown', '5.4.1', '', '', 'recipient address rejected: access denied'),
        ('userunknown', '5.5.0', '', '', 'requested action not taken: mailbox unavailable'),
        ('userunknown', '5.1.2', '', '', 'invalid x.400 address'),
        ('userunknown', '5.1.351', '', '', 'remote server returned unknown recipient or mailbox unavailable'),
    ),
    'mimecast': (
        ('authfailure', '550', 'spf sender invalid - envelope rejected'),
        ('authfailure', '550', 'dkim sender invalid - envelope rejected'),
        ('authfailure', '550', 'dmarc sender invalid - envelope rejected'),
        ('badreputation', '451', 'internal resources are temporarily unavailable'),
        ('badreputation', '550', 'local ct ip reputation - (reject)'),
        ('blocked', '421', 'sender address blocked'),
        ('blocked', '451', 'recipient temporarily unavailable'),
        ('blocked', '451', 'ip temporarily blacklisted'),
        ('expired', '550', 'journal messages past the expiration'),
        ('failedstarttls', '553', 'this route requires encryption (tls)'),
        ('failedstarttls', '553', 'this route requires tls version 1.2 or greater'),
        ('failedstarttls', '553', 'this route requires high-strength ciphers'),
        ('failedstarttls', '554', 'configuration is invalid for this certificate'),
        ('mesgtoobig', '554', 'maximum email size exceeded'),
        ('networkerror', '451', 'the incorrect hostname used for inbounds'),
        ('networkerror', '550', 'the incorrect hostname used for inbounds'),
        ('networkerror', '554', 'mail loop detected'),
        ('norelaying', '451', 'open relay not allowed'),
        ('norelaying', '451', 'open relay is not allowed'),
        ('notaccept', '451', 'account inbounds disabled'),
        ('onhold', '451', 'account outbounds disabled'),
        ('onhold', '451', 'hostname is not authorized'),
        ('onhold', '550', 'journal message past expiration'),
        ('policyviolation', '550', 'anti-spoofing policy - inbound not allowed'),
        ('policyviolation', '550', 'rejected by header-based anti-spoofing policy'),
        ('policyviolation', '550Z', 'message bounced due to content examination policy'),
        ('policyviolation', '554', 'host network not allowed'),
        ('policyviolation', '554', 'host network, not allowed'),
        ('rejected', '550', 'administrative prohibition envelope blocked'),
        ('rejected', '550', 'envelope blocked - user entry'),
        ('rejected', '550', 'envelope blocked - user domain entry'),
        ('rejected', '550', 'rejected by header-based manually blocked senders - block for manual block'),
        ('rejected', '550', 'rejected by header-based blocked senders - block policy for header from'),
        ('rejected', '550', 'envelope rejected - block policy for envelope from address'),
        ('securityerror', '535', 'incorrect authentication data'),
        ('securityerror', '550', 'submitter failed to disabled'),
        ('securityerror', '550', 'submitter failed to authenticate'),
        ('systemerror', '451', 'unable to process connection at this time'),
        ('systemerror', '451', 'message ended early'),
        ('systemerror', '451', 'unable to process command'),
        ('systemerror', '451', 'unable to process an email at this time'),
        ('toomanyconn', '451', 'account service is temporarily unavailable'),
        ('toomanyconn', '452', 'too many recipients'),
        ('toomanyconn', '550', 'exceeding outbound thread limit'),
        ('userunknown', '501', 'invalid address'),
        ('userunknown', '503', 'user unknown'),
        ('userunknown', '550', 'invalid recipient'),
        ('virusdetected', '554', 'email rejected due to security policies'),
    ),
}


def _coded(name: str, text: str, status: str, reply: str) -> str:
    for found, *codes, phrase in CODED[name]:
        if phrase not in text:
            continue
        if name == "google" and codes[0][1:] == reply[1:] and codes[1][2:] == status[2:]:
            return found
        if name == "mimecast" and codes[0] == reply:
            return found
        if name == "microsoft":
            prefix, low, high = codes
            if low == high and status == prefix:
                return found
            detail = status.rpartition(".")[2]
            if (low != high and status.startswith(prefix) and detail.isdigit()
                    and int(low or 0) <= int(detail) <= int(high or 0)):
                return found
    return ""


#: Servers that name their refusals by code: Cox (``AUP#CODE``), GoDaddy (``IB`` codes),
#: Orange and La Poste (``LPN007_416``, ``OFR_999``), Facebook (``RCP-P2``: the
#: recipient's preferences). Spectrum's ``AUP#`` codes go by range (``SPECTRUM``).
CODES: dict[str, dict[str, str]] = {
    "cox": {
        "CXBL": "blocked", "CXDNS": "requireptr", "CXSNDR": "authfailure",
        "CXSMTP": "rejected", "CXCNCT": "toomanyconn", "CXMXRT": "toomanyconn",
        "CDRBL": "blocked", "CXTHRT": "securityerror", "CXMJ": "securityerror",
        "URLBL1001": "spamdetected",
        **{f"IPBL{bits}": "blocked" for bits in (
            "0001", "0010", "0100", "0011", "0101", "0110", "0111", "1000", "1001", "1010",
            "1011", "1100", "1101", "1110", "1111", "00001")},
    },
    "godaddy": {
        "IB401": "securityerror", "IB501": "notcompliantrfc", "IB502": "notcompliantrfc",
        "IB506": "rejected", "IB508": "authfailure", "IB108": "requireptr",
        "IB212": "spamdetected", "IB705": "virusdetected", "IB605": "toomanyconn",
        "IB007": "toomanyconn", "IB101": "speeding", "IB110": "blocked", "IB111": "blocked",
        "IB112": "blocked", "IB113": "blocked", "IB504": "speeding", "IB510": "speeding",
        "IB607": "speeding", "IB103": "badreputation", "IB104": "blocked",
        "IB105": "blocked", "IB106": "blocked",
    },
    "franceptt": {
        "101": "blocked", "102": "blocked", "103": "blocked", "104": "toomanyconn",
        "305": "securityerror", "401": "authfailure", "402": "securityerror",
        "403": "rejected", "405": "rejected", "415": "rejected", "416": "userunknown",
        "417": "mailboxfull", "420": "suspend", "421": "rejected", "426": "suspend",
        "505": "systemerror", "506": "spamdetected", "510": "blocked", "514": "mesgtoobig",
        "517": "authfailure", "630": "policyviolation", "999": "blocked",
    },
    "facebook": {
        "POL-P7": "authfailure", "POL-P1": "blocked", "POL-P2": "blocked", "POL-P3": "blocked",
        "POL-P4": "blocked", "POL-T1": "blocked", "POL-T2": "blocked", "POL-T3": "blocked",
        "MSG-P2": "contenterror", "RCP-P2": "filtered", "RCP-P3": "filtered",
        "MSG-P1": "mesgtoobig", "INT-P2": "mesgtoobig", "MSG-P3": "notcompliantrfc",
        "DNS-P1": "rejected", "DNS-P2": "rejected", "DNS-T1": "rejected", "DNS-P3": "requireptr",
        "DNS-T2": "requireptr", "POL-P6": "spamdetected", "RCP-T4": "suspend",
        "RCP-T1": "systemerror", "CON-T1": "toomanyconn", "CON-T2": "toomanyconn",
        "CON-T3": "toomanyconn", "CON-T4": "toomanyconn", "MSG-T1": "toomanyconn",
        "RCP-P1": "userunknown", "INT-P1": "userunknown", "INT-P3": "userunknown",
        "INT-P4": "userunknown", "POL-P5": "virusdetected",
    },
}
#: Spectrum's AUP# codes by range: (lowest, highest, reason).
SPECTRUM = (
    (1000, 1000, "blocked"), (1010, 1010, "rejected"), (1020, 1080, "rejected"),
    (1090, 1090, "systemerror"), (1100, 1150, "requireptr"), (1160, 1190, "policyviolation"),
    (1200, 1250, "blocked"), (1260, 1260, "networkerror"), (1300, 1340, "toomanyconn"),
    (1350, 1490, "speeding"), (1500, 1500, "rejected"), (1520, 1520, "rejected"),
    (1530, 1530, "mesgtoobig"), (1540, 1550, "speeding"), (1560, 1560, "policyviolation"),
    (1580, 1580, "speeding"),
)
#: Where each server's code stands in its words (lower-cased).
CODE_IN = {
    "cox": re.compile(r"aup#(\w+)"),
    "godaddy": re.compile(r"\b(ib\d{3})\b"),
    "franceptt": re.compile(r"\b(?:lpn|lpnaaa|ofr|ouk)\d*[_-](\d{3})\b"),
    "facebook": re.compile(r"\b([a-z]{3}-[pt]\d)\b"),
}
_AUP_NUMBER = re.compile(r"aup#\D*(\d{4})")


def _by_code(name: str, text: str) -> str:
    """The reason a server's own error code names, or ""."""
    if name == "spectrum":
        found = _AUP_NUMBER.search(text)
        number = int(found.group(1)) if found else -1
        return next((r for low, high, r in SPECTRUM if low <= number <= high), "")
    pattern = CODE_IN.get(name)
    found = pattern.search(text) if pattern else None
    return CODES[name].get(found.group(1).upper(), "") if found else ""


#: (suffix, server) in ``HOSTS``'s order, and every suffix at once for ``str.endswith``.
_SUFFIXES = tuple((suffix, name) for name, suffixes in HOSTS.items() for suffix in suffixes)
_ANY_SUFFIX = tuple(suffix for suffix, _ in _SUFFIXES)
#: Every tail of every suffix -> the first server it belongs to: a recipient's domain
#: names the server one of whose suffixes ends with it.
_TAILS = {suffix[at:]: name for suffix, name in reversed(_SUFFIXES)  # the first server wins
          for at in range(len(suffix))}


def server(remote: str | None, domain: str | None, reporting: str | None = None) -> str:
    """Which known server refused: by the recipient's domain, else the ``Remote-MTA``,
    else the ``Reporting-MTA`` (a server that reports its own refusal)."""
    domain = (domain or "").lower()
    if domain and domain in _TAILS:
        return _TAILS[domain]
    for host in (remote, reporting):
        host = (host or "").lower().rstrip(".")
        if host and host.endswith(_ANY_SUFFIX):
            return next(name for suffix, name in _SUFFIXES if host.endswith(suffix))
    return ""


def reason(remote: str | None, domain: str | None, text: str, status: str = "",
           reply: str = "", command: str = "", reporting: str | None = None) -> str:
    """The reason a known server's words give (``text`` lower-cased), or ""."""
    name = server(remote, domain, reporting)
    if not name or not text:
        return ""
    by_code = _by_code(name, text)
    if by_code:
        return by_code
    if name in CODED:
        wanted = status and (reply or name == "microsoft")
        return _coded(name, text, status, reply) if wanted else ""
    if name == "nttdocomo":
        if status in ("5.1.1", "5.0.911"):
            return "userunknown"
        if status == "5.2.0":
            return "filtered"
    for found, phrases in PHRASES.get(name, {}).items():
        if any(phrase in text for phrase in phrases):
            if name == "gsuite" and found == "networkerror" and "5" in (status[:1], reply[:1]):
                continue
            if name == "gsuite" and found == "hostunknown" and not (
                    status.startswith("5") and reply.startswith("5")):
                continue
            return found
    if name == "nttdocomo" and status == "5.0.0":
        return {"RCPT": "userunknown", "DATA": "rejected"}.get(command, "")
    return ""

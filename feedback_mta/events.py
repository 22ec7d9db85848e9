"""Every audit event name, once. The actions write them, the log lines carry them, the
metrics count some of them, and the docs' Logs table and the tests read them from here.

The names are stable: admins grep for them, dashboards count them, and (with webhooks and
the event feed) other programs subscribe to them. Add; never rename.
"""

from __future__ import annotations

ACCOUNT_CREATED = "account.created"
ACCOUNT_SENT_RECORDED = "account.sent_recorded"
#: The account guard's advice to the sending platform (``jobs.guard``, ``account resume``).
ACCOUNT_WARNED = "account.warned"
ACCOUNT_PAUSED = "account.paused"
ACCOUNT_RECOVERED = "account.recovered"
ACCOUNT_RESUMED = "account.resumed"
USER_CREATED = "user.created"
USER_ROLES_GRANTED = "user.roles_granted"
USER_ROLES_REVOKED = "user.roles_revoked"
USER_REMOVED = "user.removed"

LEAD_CREATED = "lead.created"
LEAD_FLAGGED_SPAM = "lead.flagged_spam"
LEAD_RESTORED = "lead.restored"
LEAD_EXPORTED = "lead.exported"
REPLY_REFUSED = "reply.refused"

CONTACT_CREATED = "contact.created"
CONTACT_OPTED_OUT = "contact.opted_out"
CONTACT_OPTED_IN = "contact.opted_in"
CONTACT_DELETED = "contact.deleted"
CONTACT_TAGGED = "contact.tagged"
CONTACT_UNTAGGED = "contact.untagged"

CONTACT_COMPLAINED = "contact.complained"
CONTACT_FEEDBACK_RECORDED = "contact.feedback_recorded"
CONTACT_HARD_BOUNCED = "contact.hard_bounced"
CONTACT_SOFT_BOUNCED = "contact.soft_bounced"
CONTACT_UNDELIVERABLE = "contact.undeliverable"
CONTACT_DELIVERABLE = "contact.deliverable"

CONTACT_INVALID = "contact.invalid"
CONTACT_SUSPECTED = "contact.suspected"
CONTACT_VERIFIED = "contact.verified"
CONTACT_ENGAGED = "contact.engaged"
#: Consent: recorded (how the contact came, and whether it waits for a confirmation), the
#: confirmation request sent, the person's confirmation. A "no" and a deadline passed are
#: ``contact.opted_out`` with reason ``declined`` / ``unconfirmed``.
CONTACT_CONSENT_RECORDED = "contact.consent_recorded"
CONTACT_CONFIRMATION_SENT = "contact.confirmation_sent"
CONTACT_CONFIRMED = "contact.confirmed"
NETWORK_ADDED = "network.added"
NETWORK_REMOVED = "network.removed"
REVIEW_REMINDED = "review.reminded"
REVIEW_REFUSED = "review.refused"
#: The daily digest of an account's automatically flagged leads went to its contact admins.
REVIEW_SPAM_DIGEST_SENT = "review.spam_digest_sent"

INBOX_REQUEUED = "inbox.requeued"

KEY_CREATED = "key.created"
KEY_REVOKED = "key.revoked"
WEBHOOK_CREATED = "webhook.created"
WEBHOOK_REMOVED = "webhook.removed"
#: A subscription's cursor moved back: the events after ``after`` go out again.
WEBHOOK_REDELIVERED = "webhook.redelivered"

#: Outbound mail put back in the queue, and old mail dropped (``feedback-mta outbox``).
MAIL_RETRIED = "mail.retried"
MAIL_PURGED = "mail.purged"

#: Not an audit event (no row in ``event``): the log line of mail queued in a transaction.
MAIL_QUEUED = "mail.queued"

#: Every audit event name, in the order the Logs table (docs/operating.md) lists them.
ALL: tuple[str, ...] = tuple(
    value for name, value in sorted(globals().items())
    if name.isupper() and isinstance(value, str) and name != "MAIL_QUEUED")

"""The handler for each kind, in one table (the way ``reading.formats.REGISTRY`` lists formats).

Kinds without a handler are stored and end ``ignored`` (``no action``): kept, visible in
``inbox list``, and re-processable (``inbox reprocess``) once one exists.
"""

from __future__ import annotations

from feedback_mta.handlers import admin, auto_reply, bounce, complaint, reply, unsubscribe
from feedback_mta.handlers.base import Handler
from feedback_mta.kinds import Kind

HANDLERS: dict[Kind, Handler] = {
    Kind.COMPLAINT: complaint.handle,
    Kind.BOUNCE: bounce.handle,
    Kind.UNSUBSCRIBE: unsubscribe.handle,
    Kind.REPLY: reply.handle,
    Kind.AUTO_REPLY: auto_reply.handle,
    Kind.ADMIN: admin.handle,
}

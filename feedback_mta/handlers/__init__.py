"""Handlers: the step between ``reading`` and ``actions``, one module per kind of message.

A handler gets the parsed message and its classification (``base.HandlerContext``), finds
the lead or contact it is about (``attribution`` for reports, tokens for our boxes), acts
only through ``ctx.uow`` and returns an ``Outcome``: the message's final state and
reason. ``registry.HANDLERS`` maps each kind to its handler; reply commands are in
``commands``. (This package imports nothing itself, so offline ``parse`` can use
``commands`` without the database stack.)
"""

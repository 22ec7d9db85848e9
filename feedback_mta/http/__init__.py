"""The HTTP side of ``serve``: the platform's API (``/v1``), ``/healthz``, ``/openapi.json``.

``app`` builds the FastAPI application over the service's engine; ``services`` holds what
the endpoints work with (config, engines, address book, intake, ...), handed to them as
typed ``Depends`` parameters; ``v1`` holds the endpoints, each a few lines over the same
queries and actions the command line uses; ``auth`` checks API keys; ``problems`` turns
every error into RFC 9457 ``application/problem+json``; ``server`` runs uvicorn on the
service's event loop. The database work of an endpoint runs in a worker thread (plain
``def`` endpoints), never on the loop that also answers SMTP.
"""

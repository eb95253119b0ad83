"""``dsnparse serve``: the parser and the bounce ledger over HTTP (an ASGI app).

Pipelines written in any language post a raw bounce (``POST /v1/messages``) or an email
service provider's webhook event (``POST /v1/events/{provider}``) and get the same records
``dsnparse parse --format jsonl`` writes; with a ledger they ask ``GET
/v1/suppressions/{address}`` before sending.  Modules:

``config``   :class:`~dsnparse.service.config.ServeConfig`, the server's settings.
``app``      :func:`~dsnparse.service.app.create_app`, the Starlette application.
``auth``     the bearer token of ``/v1/messages`` and ``/v1/suppressions``.
``body``     reading a request body under the ``--max-body`` limit (413).
``store``    the ledger, used from one thread of each server process.
``metrics``  the Prometheus metrics of ``GET /metrics``.
``openapi``  the OpenAPI 3.1 document of ``GET /openapi.json``.
``cli``      the ``dsnparse serve`` command (``register(subparsers)``).

Starlette, Uvicorn and prometheus-client come with the ``serve`` extra
(``pip install 'dsnparse[serve]'``); nothing here is imported by the parser.
"""

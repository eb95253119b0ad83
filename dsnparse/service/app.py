"""The ``dsnparse serve`` application (Starlette; any ASGI server runs it, Uvicorn by default).

Endpoints (all answers are JSON except ``/metrics``; errors are ``{"error": text}``):

``POST /v1/messages``
    body: one raw RFC 5322 message (``Content-Type: message/rfc822``, ``message/global``
    (RFC 6532) or ``application/octet-stream``) → ``{"kind", "records", "recorded"}``:
    ``records`` are the records ``dsnparse parse --format jsonl`` writes for it (their
    ``source`` is the ``source`` query parameter, else ``http:sha256:<first 16 hex digits
    of the body's SHA-256>``); ``recorded`` the number of new ledger events (``null``
    without ``--db``; 0 when the same bounce was posted before).  Bearer token.
``POST /v1/events/{provider}``
    body: the provider's webhook JSON (``ses``, ``sendgrid``, ``mailgun``, ``postmark``,
    ``sparkpost``), authenticated the provider's way (:func:`dsnparse.events.verify_request`)
    → ``{"records", "recorded"}``.  Each event is recorded under
    ``event:<provider>:<event id>``, so a redelivered event is stored once.
``GET /v1/suppressions/{address}``
    → ``{"address", "suppressed", "basis", "reason", "since", "code", "status", "tags",
    "soft_count", "removed_at", "events"}`` (``since``/``removed_at`` ISO 8601 UTC;
    ``events``: the ledger events that decided).  Bearer token.
``DELETE /v1/suppressions/{address}``
    lifts a suppression: an operator event (like ``dsnparse suppressions remove``; query
    parameter ``note``) → the decision after, with ``"previous"``: the decision before.
``GET /healthz``, ``GET /metrics`` (Prometheus), ``GET /openapi.json``.

Status codes: 400 broken JSON, an event of unknown shape, an empty body, a bad address or
``Content-Length``; 401 a missing or wrong bearer token, or a webhook that fails its
provider's verification (nothing is changed); 404 unknown path or provider; 405 wrong
method; 408 a body that did not arrive within ``--body-timeout`` seconds (a stalled
client); 413 body over ``--max-body`` (refused without reading it all); 415 a message body of
another ``Content-Type``; 503 no ledger configured (``/v1/suppressions``) or the ledger
stayed locked (retry); 500 a bug, answered ``{"error": "internal error", "id": …}`` and
logged with its traceback (never sent to the client).

Parsing and signature checks are CPU work: they run in the thread pool, off the event loop.
Ledger calls run in the ledger's own thread (:mod:`dsnparse.service.store`) and return after
their transaction commits.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import re
import logging
import time
import uuid
from typing import Any, Optional

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from .. import __version__
from ..errors import DsnparseError, LedgerError
from ..options import Options
from ..policy import iso
from .auth import bearer_ok, load_token
from .body import BadLength, BodyTimeout, BodyTooLarge, read_body
from .config import ServeConfig
from .metrics import Metrics
from .openapi import openapi_document
from .store import LedgerStore

log = logging.getLogger("dsnparse.service")

PROVIDERS = ("ses", "sendgrid", "mailgun", "postmark", "sparkpost")
"""Providers of ``POST /v1/events/{provider}``."""

MESSAGE_TYPES = ("message/rfc822", "message/global", "application/octet-stream")
"""``Content-Type`` values accepted by ``POST /v1/messages`` (RFC 2046 §5.2.1, RFC 6532 §3.7)."""


MAX_SOURCE = 1000
"""Longest ``?source=`` value of ``POST /v1/messages`` (characters)."""



# One RFC 5321 mailbox as a URL path segment names it: a local part of at most 64 printable
# characters without white space, "<>", "@" or control characters; one "@"; a domain of at
# most 255 (RFC 5321 §4.5.3.1).
_PLAIN_ADDRESS = re.compile(r'[^\s<>@\x00-\x1f\x7f"(),;:\[\]\\]{1,64}@[^\s<>@\x00-\x1f\x7f"(),;:\\]{1,255}')

def error(status: int, text: str, **extra: Any) -> JSONResponse:
    """A JSON error response ``{"error": text, …}`` with ``status``."""
    return JSONResponse({"error": text, **extra}, status_code=status)


def _events():
    """The :mod:`dsnparse.events` package, or ``None`` when it is not installed."""
    import importlib

    try:
        return importlib.import_module("dsnparse.events")
    except ModuleNotFoundError as e:
        if e.name != "dsnparse.events":
            raise
        return None


def load_webhook_secrets(config: ServeConfig):
    """The :class:`dsnparse.events.WebhookSecrets` of ``config``: the secrets file
    (``config.webhook_secrets``) and the environment variables (see
    :mod:`dsnparse.events.secrets`), ``insecure_unsigned`` from
    ``--insecure-unsigned-webhooks``, and the pinned SNS certificates
    (``config.sns_certificates``) in its certificate cache.  ``None`` without the events
    package.

    Raises:
        DsnparseError: the secrets file or a pinned certificate cannot be read or used.
    """
    ev = _events()
    if ev is None:
        return None
    try:
        secrets = ev.WebhookSecrets.load(config.webhook_secrets,
                                         insecure_unsigned=config.insecure_unsigned_webhooks)
    except ValueError as e:
        raise DsnparseError(f"webhook secrets: {e}") from None
    for url, path in config.sns_certificates:
        try:
            with open(path, "rb") as f:
                secrets.sns_certificates.add(url, f.read())
        except OSError as e:
            raise DsnparseError(f"--sns-certificate {url}={path}: cannot read it: "
                                f"{e.strerror or e}") from None
        except (ValueError, ev.EventAuthError) as e:
            raise DsnparseError(f"--sns-certificate {url}={path}: {e}") from None
    return secrets


def _decision_json(d, events=()) -> dict:
    return {"address": d.address, "suppressed": d.suppressed, "basis": d.basis,
            "reason": d.reason, "since": iso(d.since), "code": d.code, "status": d.status,
            "tags": list(d.tags), "soft_count": d.soft_count, "removed_at": iso(d.removed_at),
            "events": [{"at": iso(e.at), "kind": e.kind, "code": e.code, "status": e.status,
                        "reason": e.reason, "fault": e.fault, "message_id": e.message_id,
                        "original_message_id": e.original_message_id,
                        "campaign": e.campaign, "source": e.source} for e in events]}


def _event_key(provider: str, report) -> Optional[str]:
    """The ledger key of a report of :func:`dsnparse.events.parse_event`:
    ``event:<provider>:<event id>`` (its ``message_key``), so that a redelivered event is
    stored once; ``None`` (the ledger's own hash of the report) when it carries no id."""
    key = getattr(report, "message_key", None)
    if key:
        return str(key)
    eid = getattr(report, "event_id", None)
    return f"event:{provider}:{eid}" if eid else None


class _Guard:
    """Outermost ASGI middleware: request count and latency per route template, and the
    catch-all that turns an unexpected exception into a logged JSON 500 (never a traceback
    in the body)."""

    def __init__(self, app, metrics: Metrics, routes):
        self.app = app
        self.metrics = metrics
        self.routes = routes

    def _route(self, scope) -> str:
        partial = None
        for r in self.routes:
            match, _ = r.matches(scope)
            if match == Match.FULL:
                return r.path.replace(":path}", "}")
            if match == Match.PARTIAL and partial is None:
                partial = r.path.replace(":path}", "}")   # the path exists, not the method
        return partial or "other"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state = {"status": 500, "started": False}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:  # noqa: BLE001 - the catch-all: logged, answered as JSON
            ref = uuid.uuid4().hex[:12]
            log.exception("internal error %s on %s %s", ref, scope.get("method"),
                          scope.get("path"))
            state["status"] = 500
            if not state["started"]:
                await error(500, "internal error (logged on the server)", id=ref)(
                    scope, receive, send)
        finally:
            route = self._route(scope)
            self.metrics.requests.labels(scope.get("method", ""), route,
                                         str(state["status"])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


def create_app(config: Optional[ServeConfig] = None) -> Starlette:
    """Build the application for ``config`` (default: :class:`ServeConfig` defaults).

    The ledger (``config.db``) is opened when the app starts (ASGI lifespan) and closed
    when it stops.

    Raises:
        TokenError: ``config.token_file`` cannot be read.
        DsnparseError: the webhook secrets cannot be read.
    """
    config = config or ServeConfig()
    token = load_token(config.token_file)
    metrics = Metrics(config.multiprocess_dir)
    options = Options.from_env(message_timeout=config.message_timeout,
                               max_message_bytes=max(config.max_body, 1))
    if config.rules:
        options = options.replace(rules=tuple(config.rules) + options.rules)
    secrets = load_webhook_secrets(config)
    store = (LedgerStore(config.db, config.policy, config.ledger_timeout) if config.db
             else None)

    def denied(request: Request) -> Optional[JSONResponse]:
        if bearer_ok(request.headers, token):
            return None
        return JSONResponse({"error": "a valid bearer token is required (Authorization: "
                                      "Bearer …)"}, status_code=401,
                            headers={"WWW-Authenticate": 'Bearer realm="dsnparse"'})

    async def body_of(request: Request):
        try:
            return await read_body(request, config.max_body, config.body_timeout), None
        except BodyTooLarge as e:
            return None, error(413, str(e), limit=e.limit)
        except BodyTimeout as e:
            return None, error(408, str(e))
        except BadLength as e:
            return None, error(400, str(e))

    async def record(fn, *args, **kwargs):
        try:
            return await store.call(fn, *args, **kwargs), None
        except LedgerError as e:
            log.warning("ledger: %s", e)        # the path and detail stay in the log
            return None, JSONResponse({"error": "the ledger is busy or unavailable: nothing "
                                                "was recorded, retry later"},
                                      status_code=503, headers={"Retry-After": "5"})

    # -------------------------------------------------------------- endpoints

    async def post_message(request: Request) -> Response:
        deny = denied(request)
        if deny:
            return deny
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype not in MESSAGE_TYPES:
            return error(415, f"Content-Type {ctype or '(none)'} is not a message: send the "
                              f"raw message as {', '.join(MESSAGE_TYPES)}")
        body, bad = await body_of(request)
        if bad:
            return bad
        if not body.strip():
            return error(400, "empty body: send one raw RFC 5322 message")
        source = request.query_params.get("source") or (
            "http:sha256:" + hashlib.sha256(body).hexdigest()[:16])
        if len(source) > MAX_SOURCE:
            return error(400, f"the source parameter is longer than {MAX_SOURCE} characters")
        from ..sources import parse_item

        report = await run_in_threadpool(parse_item, source, body, options)
        records = report.records(source)
        recorded = None
        if store is not None and report.kind not in ("error", "not_bounce"):
            recorded, bad = await record(
                lambda led: led.record_report(report, source, raw=body,
                                              original_headers=dict(report.original_headers)))
            if bad:
                return bad
        metrics.count_records("messages", records)
        if recorded:
            metrics.recorded.labels("messages").inc(recorded)
        return JSONResponse({"kind": report.kind, "records": records, "recorded": recorded})

    async def post_event(request: Request) -> Response:
        provider = request.path_params["provider"]
        if provider not in PROVIDERS:
            return error(404, f"unknown provider {provider!r} (one of {', '.join(PROVIDERS)})")
        body, bad = await body_of(request)
        if bad:
            return bad
        ev = _events()
        if ev is None:
            return error(501, "the dsnparse.events package is not installed")
        headers = dict(request.headers)
        if not config.insecure_unsigned_webhooks:
            try:
                await run_in_threadpool(ev.verify_request, provider, headers, body, secrets)
            except ev.EventAuthError as e:
                metrics.auth_failures.labels(provider).inc()
                return error(401, f"{provider} webhook not authenticated: {e}")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            return error(400, f"the body is not JSON: {e}")
        except RecursionError:
            return error(400, "the body is not JSON this server reads: nested too deeply")
        if not isinstance(payload, (dict, list)):  # every provider posts an object or array
            return error(400, f"the body is a JSON {type(payload).__name__}, not an event "
                              f"object or array")
        confirm = getattr(ev, "confirm_subscription", None)
        if (provider == "ses" and isinstance(payload, dict) and confirm is not None
                and payload.get("Type") in ("SubscriptionConfirmation",
                                            "UnsubscribeConfirmation")):
            try:
                url = await run_in_threadpool(confirm, payload, secrets)
            except ev.EventFormatError as e:
                return error(400, str(e))
            except ev.EventAuthError as e:
                metrics.auth_failures.labels(provider).inc()
                return error(401, str(e))
            except OSError as e:   # SNS retries a confirmation that was not answered 2xx
                log.warning("SNS subscription confirmation failed: %s", e)
                return error(502, f"could not fetch the SubscribeURL: {e}")
            return JSONResponse({"records": [], "recorded": None, "confirmed": url})
        try:
            reports = await run_in_threadpool(ev.parse_event, provider, payload, headers)
        except ev.EventFormatError as e:
            return error(400, f"not a {provider} event this server understands: {e}")
        items = [(rep, rep.records()) for rep in reports]   # source: <provider>:<event id>
        records = [r for _rep, recs in items for r in recs]
        recorded = None
        if store is not None:
            def write(led):
                n = 0
                for rep, recs in items:
                    if rep.kind in ("error", "not_bounce"):
                        continue
                    n += led.record_report(rep, recs[0]["source"],
                                           message_key=_event_key(provider, rep),
                                           original_headers=dict(rep.original_headers))
                return n
            recorded, bad = await record(write)
            if bad:
                return bad
        metrics.count_records(provider, records)
        if recorded:
            metrics.recorded.labels(provider).inc(recorded)
        return JSONResponse({"records": records, "recorded": recorded})

    def _address(request: Request):
        from ..ledger import normalize_address

        given = request.path_params["address"]
        # one address as written, nothing more: normalize_address reads a header value (a
        # display name, "a b@x" as b@x), which would act on another address than the URL's
        addr = normalize_address(given) if _PLAIN_ADDRESS.fullmatch(given) else None
        if addr is None:
            return None, error(400, f"not an email address: {given[:200]!r}")
        if store is None:
            return None, error(503, "no ledger: start dsnparse serve with --db FILE")
        return addr, None

    async def get_suppression(request: Request) -> Response:
        deny = denied(request)
        if deny:
            return deny
        addr, bad = _address(request)
        if bad:
            return bad

        def ask(led):
            d = led.status(addr)
            return d, led.events(ids=d.event_ids)
        got, bad = await record(ask)
        if bad:
            return bad
        return JSONResponse(_decision_json(*got))

    async def delete_suppression(request: Request) -> Response:
        deny = denied(request)
        if deny:
            return deny
        addr, bad = _address(request)
        if bad:
            return bad
        note = request.query_params.get("note")

        def remove(led):
            before = led.remove(addr, note=note, source="operator:api")[0]
            after = led.status(addr)
            return before, after
        got, bad = await record(remove)
        if bad:
            return bad
        before, after = got
        out = _decision_json(after)
        out["previous"] = _decision_json(before)
        out.pop("events")
        out["previous"].pop("events")
        return JSONResponse(out)

    async def healthz(request: Request) -> Response:
        ledger = None
        if store is not None:
            ok, bad = await record(
                lambda led: led.schema_version())
            if bad:
                return bad
            ledger = {"path": config.db, "schema": ok}
        return JSONResponse({"status": "ok", "version": __version__, "ledger": ledger})

    async def get_metrics(request: Request) -> Response:
        data, ctype = metrics.render()
        return Response(data, media_type=ctype)

    async def get_openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(__version__, config.max_body))

    routes = [
        Route("/v1/messages", post_message, methods=["POST"]),
        Route("/v1/events/{provider}", post_event, methods=["POST"]),
        Route("/v1/suppressions/{address:path}", get_suppression, methods=["GET"]),
        Route("/v1/suppressions/{address:path}", delete_suppression, methods=["DELETE"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", get_metrics, methods=["GET"]),
        Route("/openapi.json", get_openapi, methods=["GET"]),
    ]

    async def http_error(request: Request, exc: HTTPException) -> Response:
        text = {404: "no such endpoint (see /openapi.json)",
                405: f"method {request.method} not allowed here"}.get(exc.status_code,
                                                                      str(exc.detail))
        return JSONResponse({"error": text}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    def warm_up() -> None:
        """Load the rule packs and parse one message before the first request."""
        from ..sources import parse_item

        parse_item("warm-up", b"From: a@example.org\r\nSubject: x\r\n\r\nx\r\n", options)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await run_in_threadpool(warm_up)
        if store is not None:
            await run_in_threadpool(store.open)
        try:
            yield
        finally:
            if store is not None:
                await run_in_threadpool(store.close)

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error})
    app.add_middleware(_Guard, metrics=metrics, routes=routes)
    app.state.config = config
    app.state.metrics = metrics
    return app


def app_from_env() -> Starlette:
    """The app for the settings in ``$DSNPARSE_SERVE_CONFIG`` (the Uvicorn factory that
    ``dsnparse serve`` names, so that every worker process builds the same app)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="dsnparse: %(levelname)s: %(message)s")
    return create_app(ServeConfig.from_env())

"""The OpenAPI 3.1 document of ``dsnparse serve`` (``GET /openapi.json``)."""
from __future__ import annotations

from ..model import RECORD_FIELDS

_ERROR = {"description": "error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}


def _err(text: str) -> dict:
    return {**_ERROR, "description": text}


def openapi_document(version: str, max_body: int) -> dict:
    """Return the OpenAPI 3.1 document (``dict``) for a server of ``version`` whose body
    limit is ``max_body`` bytes."""
    record = {"type": "object", "description": "one record of `dsnparse parse --format "
              "jsonl` (RFC 3464 field names; fault per dsnparse.model)",
              "properties": {f: {"type": ["boolean"] if f == "truncated" else
                                 ["string", "null"]} for f in RECORD_FIELDS},
              "additionalProperties": True}
    decision = {"type": "object", "required": ["address", "suppressed"], "properties": {
        "address": {"type": "string"}, "suppressed": {"type": "boolean"},
        "basis": {"type": ["string", "null"], "enum": ["hard", "soft", "complaint", None]},
        "reason": {"type": ["string", "null"]},
        "since": {"type": ["string", "null"], "format": "date-time"},
        "code": {"type": ["string", "null"]}, "status": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "soft_count": {"type": "integer"},
        "removed_at": {"type": ["string", "null"], "format": "date-time"},
        "events": {"type": "array", "items": {"type": "object"}}}}
    bearer = [{"bearer": []}]
    too_large = _err(f"body over the limit ({max_body} bytes)")
    addr = {"name": "address", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "dsnparse", "version": version,
                 "description": "Email bounces (RFC 3464 DSNs, free-text bounces) and email "
                                "service providers' webhook events turned into per-recipient "
                                "verdicts, and the bounce ledger's suppression list."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"],
                          "properties": {"error": {"type": "string"}}},
                "Record": record, "Decision": decision},
        },
        "paths": {
            "/v1/messages": {"post": {
                "summary": "Parse one raw RFC 5322 message (and record it with --db)",
                "security": bearer,
                "parameters": [{"name": "source", "in": "query", "required": False,
                                "schema": {"type": "string"},
                                "description": "the records' source (default "
                                               "http:sha256:<16 hex digits of the body>)"}],
                "requestBody": {"required": True, "content": {
                    t: {"schema": {"type": "string", "format": "binary"}}
                    for t in ("message/rfc822", "message/global", "application/octet-stream")}},
                "responses": {
                    "200": {"description": "the message's records", "content": {
                        "application/json": {"schema": {"type": "object", "properties": {
                            "kind": {"type": "string"},
                            "records": {"type": "array",
                                        "items": {"$ref": "#/components/schemas/Record"}},
                            "recorded": {"type": ["integer", "null"]}}}}}},
                    "400": _err("empty body or bad Content-Length"),
                    "401": _err("bearer token missing or wrong"), "413": too_large,
                    "408": _err("the body did not arrive in time (--body-timeout)"),
                    "415": _err("not a message Content-Type"),
                    "503": _err("ledger locked: retry")}}},
            "/v1/events/{provider}": {"post": {
                "summary": "Parse (and record) an email service provider's webhook events",
                "parameters": [{"name": "provider", "in": "path", "required": True,
                                "schema": {"enum": ["ses", "sendgrid", "mailgun",
                                                    "postmark", "sparkpost"]}}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {}},
                    "text/plain": {"schema": {"type": "string"},
                                   "description": "Amazon SNS posts JSON as text/plain"}}},
                "responses": {
                    "200": {"description": "the events' records", "content": {
                        "application/json": {"schema": {"type": "object", "properties": {
                            "records": {"type": "array",
                                        "items": {"$ref": "#/components/schemas/Record"}},
                            "recorded": {"type": ["integer", "null"]}}}}}},
                    "400": _err("broken JSON or an unknown event shape"),
                    "401": _err("the provider's signature or credentials failed"),
                    "404": _err("unknown provider"), "413": too_large,
                    "408": _err("the body did not arrive in time (--body-timeout)"),
                    "503": _err("ledger locked: retry")}}},
            "/v1/suppressions/{address}": {
                "get": {"summary": "May this address be mailed?", "security": bearer,
                        "parameters": [addr],
                        "responses": {
                            "200": {"description": "the ledger's decision", "content": {
                                "application/json": {"schema": {
                                    "$ref": "#/components/schemas/Decision"}}}},
                            "400": _err("not an address"), "401": _err("bearer token"),
                            "503": _err("no ledger (--db) or ledger locked")}},
                "delete": {"summary": "Lift a suppression (recorded as an operator event)",
                           "security": bearer,
                           "parameters": [addr, {"name": "note", "in": "query",
                                                 "required": False,
                                                 "schema": {"type": "string"}}],
                           "responses": {
                               "200": {"description": "the decision after, with 'previous'",
                                       "content": {"application/json": {"schema": {
                                           "$ref": "#/components/schemas/Decision"}}}},
                               "400": _err("not an address"), "401": _err("bearer token"),
                               "503": _err("no ledger (--db) or ledger locked")}}},
            "/healthz": {"get": {"summary": "Liveness (and the ledger's schema version)",
                                 "responses": {"200": {"description": "ok"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "text exposition",
                                                       "content": {"text/plain": {}}}}}},
        },
    }

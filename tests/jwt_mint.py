"""Signed JWT access tokens for the OAuth2 tests (RFC 7519, RS256 per RFC 7518 §3.3).

Made with ``cryptography`` only (no JWT library): base64url(header) "." base64url(claims)
"." base64url(RSASSA-PKCS1-v1_5 SHA-256 signature).  Dovecot's ``passdb oauth2`` with
``introspection_mode = local`` checks the signature against the public key in its key dict
and the ``exp``/``nbf``/``iat`` claims, and takes the user from ``email`` (its default
``username_attribute``).

Also a token command for ``dsnparse imap --oauth2-token-command``::

    python tests/jwt_mint.py --key KEY.pem --user NAME [--ttl S] [--count FILE]

prints a fresh token valid for ``--ttl`` seconds (negative: already expired) and, with
``--count``, appends one line to FILE per call (the tests count the connections).
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def load_key(path: str):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint(key, user: str, ttl: float = 300.0, now: float | None = None, **claims) -> str:
    """An RS256 JWT for ``user`` (claims ``sub`` and ``email``) expiring ``ttl`` seconds
    from ``now``; ``iat``/``nbf`` are set so that an expired token is otherwise valid."""
    now = time.time() if now is None else now
    start = int(min(now, now + ttl) - 60)
    body = {"sub": user, "email": user, "iat": start, "nbf": start, "exp": int(now + ttl)}
    body.update(claims)
    head = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    signing_input = f"{head}.{payload}".encode("ascii")
    sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{payload}.{_b64(sig)}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="print a signed test access token")
    ap.add_argument("--key", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--ttl", type=float, default=300.0)
    ap.add_argument("--count")
    a = ap.parse_args(argv)
    if a.count:
        with open(a.count, "a") as f:
            f.write(f"{time.time()}\n")
    print(mint(load_key(a.key), a.user, a.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())

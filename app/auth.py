"""API-key authentication for the OpenAI-compatible endpoint, which Ray Serve LLM's ingress does not have.

Clients send `Authorization: Bearer <key>` as the OpenAI SDKs do. Keys come from the environment variable
named in the app's `auth.api_key_env` (comma-separated) and/or the secret file `auth.api_key_file` (one key
per line); never from the repository or the Serve config itself. A wrong or missing key gets a 401 with the
body the OpenAI API returns, so SDKs raise their usual `AuthenticationError`.

The middleware is pure ASGI (no Ray, no vLLM) so it can sit outermost on the ingress FastAPI app and refuse a
request before the body is even read.
"""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Paths anyone may reach: liveness only, they reveal nothing about the model.
OPEN_PATHS = frozenset({"/health", "/v1/health", "/-/healthz", "/-/routes", "/ping"})


class AuthConfigError(RuntimeError):
    """Auth is on but no key is configured: the endpoint refuses to start rather than run open."""


@dataclass(frozen=True)
class AuthSettings:
    enabled: bool = True
    api_key_env: str = "GPT_OSS_API_KEY"
    api_key_file: str | None = None

    @classmethod
    def from_args(cls, data: dict[str, Any] | None) -> "AuthSettings":
        data = dict(data or {})
        return cls(enabled=bool(data.get("enabled", True)),
                   api_key_env=data.get("api_key_env") or "GPT_OSS_API_KEY",
                   api_key_file=data.get("api_key_file") or None)


def load_keys(settings: AuthSettings) -> list[str]:
    """Every configured key (env var first, then the file). Raises AuthConfigError when auth is on and
    there is none, naming both places a key can come from."""
    if not settings.enabled:
        return []
    keys: list[str] = []
    raw = os.environ.get(settings.api_key_env, "")
    keys += [k.strip() for k in raw.split(",") if k.strip()]
    if settings.api_key_file:
        path = Path(settings.api_key_file).expanduser()
        try:
            text = path.read_text()
        except OSError as e:
            raise AuthConfigError(
                f"auth is enabled but the API key file {path} cannot be read ({e.strerror or e}). "
                f"Fix: create it with one key per line (chmod 600), or set {settings.api_key_env} in the "
                f"replicas' environment.") from None
        keys += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        where = f"the environment variable {settings.api_key_env}"
        if settings.api_key_file:
            where += f" or the file {settings.api_key_file}"
        raise AuthConfigError(
            f"auth is enabled but no API key is configured ({where} is empty). Fix: set {settings.api_key_env}="
            f"<key> in the application's runtime_env or write a key to auth.api_key_file; to serve without "
            f"authentication on purpose, set auth.enabled: false in the spec.")
    return keys


def key_matches(presented: str, keys: list[str]) -> bool:
    """Constant-time comparison against every key (no early exit that would leak which one was close)."""
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(presented.encode(), key.encode())
    return ok


def error_body(message: str, code: str = "invalid_api_key") -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


class ApiKeyMiddleware:
    """ASGI middleware: 401 unless the request carries a configured key. Keys are read when the middleware is
    built inside the ingress replica (first request), so the secret never travels in the Serve config."""

    def __init__(self, app, *, auth: dict[str, Any] | None = None):
        self.app = app
        self.settings = AuthSettings.from_args(auth)
        self.keys = load_keys(self.settings)

    async def __call__(self, scope, receive, send):
        if (scope["type"] != "http" or not self.settings.enabled or scope.get("method") == "OPTIONS"
                or scope.get("path", "") in OPEN_PATHS):
            return await self.app(scope, receive, send)
        header = ""
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                header = value.decode("latin-1")
                break
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip() and key_matches(token.strip(), self.keys):
            return await self.app(scope, receive, send)
        if not header:
            message = ("You didn't provide an API key. You need to provide your API key in an Authorization "
                       "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        else:
            message = "Incorrect API key provided. The key is in the file or variable your operator configured."
        body = json.dumps(error_body(message)).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b'Bearer realm="gpt-oss"')]})
        await send({"type": "http.response.body", "body": body})

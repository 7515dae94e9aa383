"""What every page this project serves checks first: only its own user gets in.

A server on 127.0.0.1 is still reachable from any web page the user visits: the page can rebind
its own name to 127.0.0.1 (DNS rebinding) and then read the server's answers as a same-origin
page, or simply send a form or a WebSocket to it (cross-origin requests are sent, only their
answers hidden). ``LocalOnly`` wraps an ASGI app (the studio, the Prefect server of ``make
serve``) and refuses, before the app sees it:

- a request whose ``Host`` is not one of the names the server is bound to (127.0.0.1,
  localhost, ::1, and the names it was given when bound elsewhere): the rebinding;
- a state-changing request (any method but GET, HEAD and OPTIONS) or a WebSocket whose
  ``Origin`` is another site: the cross-site request (programs that send no ``Origin``, such
  as Prefect's workers, are let through: a browser always sends one for these);
- when a token is set (a server bound beyond loopback), a request without it: the token comes
  once in the address printed at start (``?token=…``), which sets a cookie for the browser, or
  as ``Authorization: Bearer …`` for programs;
- when a limit is set (the studio, which takes pictures dropped on its pages), a request whose
  body is larger: refused from its declared length, or cut off where it passes the limit.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_COOKIE = "visuels_token"
TOKEN_PARAMETER = "token"


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_NAMES or host.startswith("127.")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _host_name(value: str) -> str:
    """``Host`` or an origin's netloc without its port, lower case (``[::1]:80`` -> ``::1``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class LocalOnly:
    """ASGI middleware: the Host, Origin and (when set) token checks above, for HTTP and WebSocket."""

    def __init__(
        self, app: ASGIApp, hosts: Iterable[str] = (), token: str | None = None, max_body_bytes: int | None = None
    ) -> None:
        self.app = app
        self.hosts = {name.lower() for name in (*LOOPBACK_NAMES, *hosts)}
        self.token = token
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _refuse(scope, receive, send, *refusal)
            return
        if self.token is not None and scope["type"] == "http":
            given = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))).get(TOKEN_PARAMETER)
            if given is not None and hmac.compare_digest(given, self.token):
                await _remember_token(scope, send, self.token)  # the address printed at start: once
                return
        if self.max_body_bytes is not None and scope["type"] == "http":
            receive = _cut_off_past(receive, self.max_body_bytes)
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        host = _host_name(headers.get("host", ""))
        if host not in self.hosts:
            return 403, f"refused: this server answers to {', '.join(sorted(self.hosts))} only, not '{host}'"
        origin = headers.get("origin")
        changes_state = scope["type"] == "websocket" or scope.get("method", "GET") not in SAFE_METHODS
        if changes_state and origin is not None and not self._is_own_origin(origin, scope):
            return 403, f"refused: a request from another site ({origin})"
        if self.token is not None and not self._has_token(scope, headers):
            return 401, "this server asks for its token: open the address it printed when it started"
        declared = headers.get("content-length", "")
        if self.max_body_bytes is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return 413, f"refused: a request over {self.max_body_bytes // 2**20} MB"
        return None

    def _is_own_origin(self, origin: str, scope: Scope) -> bool:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or _host_name(parts.netloc) not in self.hosts:
            return False
        server = scope.get("server")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return server is None or server[1] is None or port == server[1]

    def _has_token(self, scope: Scope, headers: dict[str, str]) -> bool:
        assert self.token is not None
        authorization = headers.get("authorization", "")
        if authorization.startswith("Bearer ") and hmac.compare_digest(authorization[7:].strip(), self.token):
            return True
        cookie = SimpleCookie()
        cookie.load(headers.get("cookie", ""))
        if TOKEN_COOKIE in cookie and hmac.compare_digest(cookie[TOKEN_COOKIE].value, self.token):
            return True
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        return hmac.compare_digest(query.get(TOKEN_PARAMETER, ""), self.token)


def _cut_off_past(receive: Receive, most: int) -> Receive:
    """``receive``, ending the request as if its client left once its body passes ``most`` bytes
    (a body sent without a declared length)."""
    received = 0

    async def capped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > most:
                return {"type": "http.disconnect"}
        return message

    return capped


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    if scope["type"] == "websocket":
        await receive()  # the connect message, then a refusal before accepting
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    body = (message + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _remember_token(scope: Scope, send: Send, token: str) -> None:
    """Set the token's cookie and send the browser to the same address without it in the URL."""
    query = [(name, value) for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"))]
    kept = urlencode([(name, value) for name, value in query if name != TOKEN_PARAMETER])
    location = scope.get("path", "/") + (f"?{kept}" if kept else "")
    cookie = f"{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode("latin-1"))],
        }
    )
    await send({"type": "http.response.body", "body": b""})

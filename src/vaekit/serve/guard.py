"""Who gets in, and how much they may send: the explorer's guard, an ASGI middleware in front of every
route.

- ``vaekit serve`` listens on loopback by default. Another address lets other machines in, so it needs a
  token (``--token`` or ``$VAEKIT_TOKEN``); with one, every request must carry it: an
  ``Authorization: Bearer TOKEN`` header, or the ``vaekit_token`` cookie that opening the page as
  ``/?token=TOKEN`` sets (the page's own requests then carry it). Anything else is a 401.
- A request body larger than ``max_body`` is refused with a 413 ("too large"), decided before the app
  sees any of it: from its Content-Length, or, for a chunked body, as soon as it passes the limit.
  Replying is not enough, though: most clients (urllib, requests, a browser's ``fetch``) send the whole
  body before they read the answer, and a server that closes its socket with their bytes still unread
  makes the kernel reset the connection, discarding the 413 on its way. So a refused body is read and
  thrown away up to ``DRAIN_BYTES`` (32 MB, counted from its start) before the answer, which the client
  then reads. A body announced as larger than that, or one that goes on past it, is answered at once
  with ``Connection: close``: such a client may see the connection reset instead, an accepted cost of
  not reading without end. A client that sends ``Expect: 100-continue`` holds its body back until the
  server asks for it (uvicorn sends "100 Continue" when the app first reads), so it gets its 413 at once,
  unread, with ``Connection: close``. A 401 is answered the same way, so that a client that forgot its
  token reads why.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from vaekit.utils.errors import VaekitError

TOKEN_VARIABLE = "VAEKIT_TOKEN"
COOKIE = "vaekit_token"
# A refused body is read to its end up to this many bytes, so that its client reads the answer. Enough
# for a mistaken upload (a phone or camera photo is rarely over 20 MB) with room to spare, and about 3 s
# of reading at 100 Mbit/s; past it the client is more likely broken or hostile than mistaken, and the
# connection is closed rather than spend more on it.
DRAIN_BYTES = 32 * 2**20
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine alone (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to an address others reach
        return False


def server_token(host: str, token: str | None) -> str | None:
    """The token a server on ``host`` requires: ``token``, else $VAEKIT_TOKEN; refuses an address that
    other machines reach without one."""
    token = token or os.environ.get(TOKEN_VARIABLE) or None
    if token is not None and len(token) < 8:
        raise VaekitError("a token must be at least 8 characters")
    if token is None and not is_loopback(host):
        raise VaekitError(
            f"--host {host} lets other machines in: give --token TOKEN (or set {TOKEN_VARIABLE}) so that "
            "every request must carry it, or keep the default 127.0.0.1"
        )
    return token


class Guard:
    """The middleware: the token (None: no token asked) and the largest request body, in bytes."""

    def __init__(self, app: Any, token: str | None, max_body: int) -> None:
        self.app, self.token, self.max_body = app, token, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        from_query = False
        if self.token is not None:
            allowed, from_query = self._allowed(scope, headers)
            if not allowed:
                detail = "this server needs its token: Authorization: Bearer TOKEN, or /?token=TOKEN"
                await self._refuse(receive, send, headers, 401, detail)
                return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._refuse(receive, send, headers, 413, self._too_large())
            return
        if from_query:
            send = self._setting_cookie(send)
        if length is None:  # a chunked body, counted as it arrives
            receive, send = self._counting(receive, send)
        await self.app(scope, receive, send)

    def _too_large(self) -> str:
        return f"the request body is too large: over {self.max_body:,} bytes"

    async def _refuse(
        self, receive: Receive, send: Send, headers: dict[str, str], status: int, detail: str
    ) -> None:
        """Answer ``status`` once the body is read and discarded (so that a client still sending it reads
        the answer), or at once, closing, for a body past ``DRAIN_BYTES`` or held back for a 100 Continue."""
        length = headers.get("content-length")
        held_back = headers.get("expect", "").lower() == "100-continue"
        within = length is None or (length.isdigit() and int(length) <= DRAIN_BYTES)
        read = not held_back and within and await _discard(receive)
        await _reply(send, status, detail, close=not read)

    def _allowed(self, scope: Scope, headers: dict[str, str]) -> tuple[bool, bool]:
        """Whether the request carries the token, and whether it came in the query (then set as a cookie)."""
        token = self.token or ""
        bearer = headers.get("authorization", "")
        if bearer.startswith("Bearer ") and hmac.compare_digest(bearer[7:].encode(), token.encode()):
            return True, False
        cookie = SimpleCookie(headers.get("cookie", ""))
        if COOKIE in cookie and hmac.compare_digest(cookie[COOKIE].value.encode(), token.encode()):
            return True, False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        ok = bool(query) and hmac.compare_digest(query.encode(), token.encode())
        return ok, ok

    def _setting_cookie(self, send: Send) -> Send:
        async def send_with_cookie(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                value = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                message["headers"] = [*message.get("headers", []), (b"set-cookie", value.encode())]
            await send(message)

        return send_with_cookie

    def _counting(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        """``receive`` and ``send`` for a body of unknown length: past ``max_body`` the rest of the body
        is read and discarded (up to ``DRAIN_BYTES``) and the client gets a 413, the app sees a disconnect
        (so it stops reading) and whatever it answers is dropped."""
        seen, refused = 0, False

        async def counted() -> MutableMapping[str, Any]:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body and not refused:
                    refused = True
                    read = not message.get("more_body", False) or await _discard(receive, seen)
                    await _reply(send, 413, self._too_large(), close=not read)
            return {"type": "http.disconnect"} if refused else message

        async def unless_refused(message: MutableMapping[str, Any]) -> None:
            if not refused:
                await send(message)

        return counted, unless_refused


async def _discard(receive: Receive, seen: int = 0) -> bool:
    """Read the rest of a request body (``seen`` bytes of it already read) and drop it; whether it came to
    its end within ``DRAIN_BYTES``, rather than going on past them or the client leaving."""
    while seen <= DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return False
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


async def _reply(send: Send, status: int, detail: str, close: bool = False) -> None:
    """A JSON ``{"detail": ...}`` answer; ``close``: with the body unread, the connection ends after it."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

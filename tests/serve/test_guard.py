"""Who gets in and how much they may send, against a real `vaekit serve` on real sockets: loopback by
default, a token for anything else, bodies over the limit refused with a 413 the client reads, stalled
clients holding nobody."""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import error_of
from tests.serve.conftest import serving
from vaekit.cli import main
from vaekit.serve.guard import COOKIE, is_loopback, server_token
from vaekit.serve.requests import MAX_BODY_BYTES

TOKEN = "correct-horse-battery"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def guarded(run):
    with serving(run, options=("--host", "0.0.0.0", "--token", TOKEN)) as url:
        yield url.replace("127.0.0.1", "127.0.0.1")


def test_another_address_needs_a_token_and_loopback_does_not(run, capsys, monkeypatch):
    monkeypatch.delenv("VAEKIT_TOKEN", raising=False)
    assert main(["serve", str(run), "--host", "0.0.0.0", "--port", "8"]) == 1
    assert "--host 0.0.0.0 lets other machines in: give --token TOKEN" in capsys.readouterr().err
    assert server_token("127.0.0.1", None) is None and server_token("::1", None) is None
    monkeypatch.setenv("VAEKIT_TOKEN", TOKEN)
    assert server_token("0.0.0.0", None) == TOKEN
    assert "at least 8 characters" in error_of(server_token, "0.0.0.0", "short")
    assert [is_loopback(h) for h in ("localhost", "127.0.0.5", "[::1]", "0.0.0.0", "example.org")] == [
        True, True, True, False, False,
    ]  # fmt: skip


def test_with_a_token_every_request_needs_it(guarded):
    for path in ("/api/info", "/", "/docs", "/openapi.json", "/static/app.js"):
        response = httpx.get(guarded + path)
        assert response.status_code == 401 and "needs its token" in response.json()["detail"], path
    assert (
        httpx.get(guarded + "/api/info", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    )
    assert httpx.get(guarded + "/api/info", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    page = httpx.get(guarded + f"/?token={TOKEN}")  # the page's link: sets the cookie its requests carry
    assert page.status_code == 200 and page.cookies.get(COOKIE) == TOKEN
    assert "HttpOnly" in page.headers["set-cookie"] and "SameSite=Strict" in page.headers["set-cookie"]
    assert httpx.get(guarded + "/api/info", cookies={COOKIE: TOKEN}).json()["latent_dim"] == 2


def raw_request(url: str, head: bytes, body: bytes = b"", timeout: float = 10) -> tuple[int, dict, float]:
    """Send ``head`` (and ``body``) on a fresh socket; the status, JSON body and seconds to the answer."""
    parts = urlparse(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        start = time.monotonic()
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    seconds = time.monotonic() - start
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}"), seconds


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_a_body_over_the_limit_is_refused_before_it_is_sent(guarded):
    auth = f"Authorization: Bearer {TOKEN}\r\n"  # the module's server asks for its token first
    head = (
        f"POST /api/encode HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {100 * 2**20}\r\n\r\n"
    ).encode()
    status, body, seconds = raw_request(guarded, head)  # not one byte of the 100 MB is sent
    assert status == 413 and f"over {MAX_BODY_BYTES:,} bytes" in body["detail"] and seconds < 5
    chunked = (
        f"POST /api/encode HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n{auth}"
        "Content-Type: multipart/form-data; boundary=b\r\n\r\n"
    ).encode()
    prelude = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    pieces = [prelude] + [b"x" * 2**20] * 7  # a 7 MB upload, in chunks
    chunks = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"
    status, body, _ = raw_request(guarded, chunked, chunks)
    assert status == 413
    assert httpx.get(guarded + "/api/info", headers=BEARER).status_code == 200  # and the server goes on


def refusal(request: urllib.request.Request) -> tuple[int, str]:
    """What urllib makes of a request the server refuses: the HTTPError's code and detail (a reset
    connection, the bug this guards against, raises URLError and fails the test)."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=20)
    with refused.value:
        return refused.value.code, json.loads(refused.value.read())["detail"]


def test_a_client_still_sending_an_upload_over_the_limit_reads_the_413(guarded):
    body = b"x" * (12 * 2**20)  # urllib sends all of it, then reads the answer, on a Connection: close
    for path in ("/api/decode", "/api/encode"):
        request = urllib.request.Request(guarded + path, data=body, headers=BEARER)
        code, detail = refusal(request)
        assert code == 413 and "too large" in detail and f"over {MAX_BODY_BYTES:,} bytes" in detail, path
    code, detail = refusal(urllib.request.Request(guarded + "/api/decode", data=body))  # and no token
    assert code == 401 and "needs its token" in detail
    pieces = iter([b"x" * 2**20] * 12)  # the same, chunked: refused once 5 MB have come, then read out
    chunked = {**BEARER, "Transfer-Encoding": "chunked"}
    code, detail = refusal(urllib.request.Request(guarded + "/api/decode", data=pieces, headers=chunked))
    assert code == 413 and "too large" in detail
    assert httpx.get(guarded + "/api/info", headers=BEARER).status_code == 200


def test_a_client_that_expects_100_continue_is_refused_before_it_sends(guarded):
    host = urlparse(guarded)
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
    try:  # the headers alone: such a client sends its body only after a "100 Continue"
        connection.putrequest("POST", "/api/decode")
        for name, value in {**BEARER, "Content-Length": str(12 * 2**20), "Expect": "100-continue"}.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        detail = json.loads(response.read())["detail"]
        assert response.status == 413 and "too large" in detail
        assert response.getheader("connection") == "close"  # the body it held back is not awaited
    finally:
        connection.close()
    body = b'{"z": [0.0, 0.5]}'
    head = (  # under the limit, the 100 Continue comes and then the body is answered
        f"POST /api/decode HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host.hostname, host.port), timeout=10) as sock:
        sock.sendall(head)
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        assert sock.recv(1024).startswith(b"HTTP/1.1 200 OK")


def test_a_stalled_client_holds_nobody_else(guarded):
    parts = urlparse(guarded)
    stalled = [socket.create_connection((parts.hostname, parts.port)) for _ in range(20)]
    try:
        for i, sock in enumerate(stalled):  # half-sent headers, and a body promised but never sent
            sock.sendall(b"GET /api/info HTTP/1.1\r\nHost: x\r\n" if i % 2 else (
                b"POST /api/decode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {TOKEN}\r\n".encode()
                + b"Content-Length: 1000\r\n\r\n{\"z\": "
            ))  # fmt: skip
        start = time.monotonic()
        for _ in range(5):
            assert httpx.get(guarded + "/api/info", headers=BEARER, timeout=5).status_code == 200
        assert time.monotonic() - start < 5
    finally:
        for sock in stalled:
            sock.close()

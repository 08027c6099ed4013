"""What the service refuses before any endpoint runs (a pure ASGI middleware, so nothing is read or stored first):

- bodies above their cap (an upload: ``--max-upload-mb``; any other request: ``JSON_BODY_CAP``), by
  ``Content-Length`` at once and by counting the bytes of a chunked body as they arrive: 413;
- an upload without a valid token: 401 before a byte of the body is read (``authorized`` is the app's check);
- a body that trickles: each chunk must arrive within ``BODY_TIMEOUT_S`` seconds and the whole body within its
  deadline, else 408;
- and every answer gets the security headers below.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

JSON_BODY_CAP = 16 * 1024  # a username and a password, with room to spare
BODY_TIMEOUT_S = 10.0  # the longest wait for the next chunk of any body, and for a whole JSON body
UPLOAD_DEADLINE_S = 120.0  # a whole upload: 20 MB at 170 KB/s, a slow phone connection
MULTIPART_OVERHEAD = 64 * 1024  # form fields and boundaries around an upload's bytes
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(self), microphone=(), geolocation=()"),
    # the page and /docs load only what the app serves itself (inline script and styles are the page's own)
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
        b"script-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    ),  # fmt: skip
]


class Guard:
    def __init__(self, app, upload_cap: int, authorized: Callable[[str | None], bool], upload_path: str):
        self.app, self.upload_cap, self.authorized, self.upload_path = app, upload_cap, authorized, upload_path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        upload = scope["method"] == "POST" and scope["path"] == self.upload_path
        cap = self.upload_cap + MULTIPART_OVERHEAD if upload else JSON_BODY_CAP
        if upload and not self.authorized(headers.get("authorization")):
            return await _answer(send_with_headers, 401, "log in first: send Authorization: Bearer <token>")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > cap):
            return await _answer(send_with_headers, 413, f"the request body is larger than {cap:,} bytes")
        # The body is read here, bounded in size and time, before the app sees any of it: a refusal is a clean
        # 413 or 408, and the endpoint never spools what will be refused.
        chunks, seen = [], 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (UPLOAD_DEADLINE_S if upload else BODY_TIMEOUT_S)
        while True:
            try:
                message = await asyncio.wait_for(receive(), min(BODY_TIMEOUT_S, deadline - loop.time()))
            except asyncio.TimeoutError:
                return await _answer(send_with_headers, 408, "the request body was too slow to arrive")
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > cap:
                return await _answer(send_with_headers, 413, f"the request body is larger than {cap:,} bytes")
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_with_headers)


async def _answer(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})

"""Request bodies are bounded before they are read.

A declared Content-Length over the route's limit is answered 413 at once; a body without one
(chunked) is counted as it arrives and answered 413 the moment it passes the limit, so nothing
past the limit is parsed, spooled or kept. Uploads get `server.max_upload_bytes` (plus room
for the multipart framing), every other route `server.max_request_bytes`.
"""

from __future__ import annotations

import orjson

from strop.server.errors import error_body

UPLOAD_ROUTES = {("POST", "/v1/files")}
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and form fields around the file itself


class BodyTooLarge(Exception):
    """Raised into the app from `receive` once the body passes the limit."""


class BodyLimit:
    """Pure ASGI middleware (no per-request task or body copy, unlike BaseHTTPMiddleware)."""

    def __init__(self, app, *, max_request_bytes: int, max_upload_bytes: int):
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max_upload_bytes

    def _limit(self, scope) -> tuple[int, str, str | None, str]:
        if (scope["method"], scope["path"]) in UPLOAD_ROUTES:
            return (self.max_upload_bytes + MULTIPART_OVERHEAD, "file_too_large", "file",
                    f"The file is larger than this server accepts "
                    f"({self.max_upload_bytes:,} bytes; setting server.max_upload_bytes).")
        return (self.max_request_bytes, "request_too_large", None,
                f"The request body is larger than this server accepts "
                f"({self.max_request_bytes:,} bytes; setting server.max_request_bytes).")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, code, param, message = self._limit(scope)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _refuse(send, code, param, message)
        received = 0
        refused = False
        started = False

        async def counted_receive():
            nonlocal received, refused
            message_in = await receive()
            if message_in["type"] == "http.request":
                received += len(message_in.get("body", b""))
                if received > limit:
                    refused = True
                    raise BodyTooLarge
            return message_in

        async def guarded_send(message_out):
            nonlocal started
            if refused:
                return  # the 413 is the answer, whatever the app makes of the cut body
            started = started or message_out["type"] == "http.response.start"
            await send(message_out)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:  # BodyTooLarge, or whatever the app turned it into
                raise
        if refused and not started:
            await _refuse(send, code, param, message)


async def _refuse(send, code: str, param: str | None, message: str) -> None:
    body = orjson.dumps(error_body(413, message, param=param, code=code))
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})

"""The largest request body the server reads, enforced before Django sees the request.

Django's ASGI handler reads a request's whole body (to a temporary file beyond
``FILE_UPLOAD_MAX_MEMORY_SIZE``) before any view runs, so a view cannot refuse a 100 MB upload
without receiving it all. This ASGI middleware does, in both real-time setups (omnichannel.asgi):
a declared ``Content-Length`` above ``MAX_REQUEST_BODY`` is answered 413 ``file_too_large`` at
once, and a body without a length (chunked) is cut off where it passes the limit. The views then
apply each workstream's own, smaller limit (conversations.api).
"""

from __future__ import annotations

import json

from workstreams.models import ATTACHMENT_SIZE_CEILING

# The largest file a workstream may allow, and room for the multipart headers around it.
MAX_REQUEST_BODY = ATTACHMENT_SIZE_CEILING + 64 * 1024

_REFUSAL = json.dumps(
    {
        "code": "file_too_large",
        "detail": "The request is larger than this server accepts.",
        "max_size": ATTACHMENT_SIZE_CEILING,
    }
).encode()


class BodySizeLimit:
    def __init__(self, app, limit: int = MAX_REQUEST_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            return await _refuse(send)
        received = 0
        refused = False
        started = False

        async def limited_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # The application sees a client that left; the client gets the refusal.
                    refused = True
                    if not started:
                        await _refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if refused:
                return  # the refusal was sent; the application's answer to a "disconnect" is not
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        return await self.app(scope, limited_receive, guarded_send)


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_REFUSAL)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _REFUSAL})

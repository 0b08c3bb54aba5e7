"""Read a request body without ever holding more than the limit."""

from __future__ import annotations

from starlette.requests import Request

from batchserve.errors import PayloadTooLarge
from batchserve.server.errors import HTTPError


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or PayloadTooLarge (413) as soon as it would pass `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise HTTPError(400, f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            raise PayloadTooLarge(f"body of {size} bytes is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)

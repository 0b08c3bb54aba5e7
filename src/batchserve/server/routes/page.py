"""The browser page: `GET /` and its static files under `/page/`, shipped in the package
(`server/page/`: plain HTML, CSS and JavaScript, no build step, nothing from a CDN).

The page is a client of the public API (`/v1`, `/v2`, `/metrics`) and has no route of its
own beyond its files, which need no token (`middleware.is_public`): they hold no data,
and the page asks for the token and sends it with every API call.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

PAGE_PACKAGE = ("batchserve.server", "page")

#: Scripts and styles only from the server itself; images also from data:/blob: URLs
#: (a dropped file) and the web (an image URL being classified).
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob: http: https:; "
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def mount(app: FastAPI) -> None:
    """Serve the page at `/` and its files at `/page/`."""
    index = files(PAGE_PACKAGE[0]).joinpath(PAGE_PACKAGE[1], "index.html").read_text("utf-8")

    @app.get("/", include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(index, headers=_SECURITY_HEADERS)

    app.mount("/page", StaticFiles(packages=[PAGE_PACKAGE]), name="page")

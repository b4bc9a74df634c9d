"""productpage: the page a user sees (FastAPI). It calls details and reviews by their logical names; the mesh
decides which process answers.

The user who logs in travels as the ``end-user`` header: :class:`EndUserFromCookie` turns the session cookie
into that request header once, on the way in, and the mesh (MeshConfig ``propagateHeaders``) forwards it on
every call made while serving the request, down to reviews and ratings. No handler copies a header.

``python -m examples.bookinfo_py.productpage --config DIR [--port 9080]``
"""

from __future__ import annotations

import asyncio
import html
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

import httpx
import uvicorn
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

import libmesh
from libmesh.adapters.asgi import MeshMiddleware
from libmesh.adapters.httpx import AsyncMeshTransport

from .runtime import fastapi_app, start, with_admin
from .topology import Ports

__all__ = ["EndUserFromCookie", "create_app", "main"]

SESSION_COOKIE = "session"
DETAILS = "http://details:9080"
REVIEWS = "http://reviews:9080"
#: As in Istio's productpage, each call to reviews may take 3 s, and one failed call is tried once more.
#: Istio's fault-injection task is about exactly this: 2 x 3 s is shorter than a 7 s delay on ratings, so
#: the whole reviews section fails although reviews itself would have waited (10 s) for ratings.
REVIEWS_TIMEOUT = 3.0
REVIEWS_TRIES = 2
DETAILS_TIMEOUT = 3.0

REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
DETAILS_UNAVAILABLE = "Sorry, product details are currently unavailable for this book."
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"

PRODUCT: dict[str, str] = {
    "title": "The Comedy of Errors",
    "descriptionHtml": (
        '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: The Comedy of '
        "Errors is one of William Shakespeare's early plays. It is his shortest and one of his most farcical "
        "comedies, with a major part of the humour coming from slapstick and mistaken identity, in addition "
        "to puns and word play."
    ),
}


class EndUserFromCookie:
    """ASGI middleware: the logged-in user (session cookie) becomes the request's ``end-user`` header, so the
    mesh routes and propagates on it. Put it outside :class:`~libmesh.adapters.asgi.MeshMiddleware`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            user = _cookie(scope.get("headers", ()), SESSION_COOKIE)
            headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() != b"end-user"]
            if user:
                headers.append((b"end-user", user.encode("latin-1")))
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


def _cookie(headers: Sequence[tuple[bytes, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            k, _, v = part.strip().partition("=")
            if k == name and v:
                return v
    return None


def create_app(mesh: libmesh.Mesh) -> Any:
    """The productpage app on ``mesh``, with ``/metrics`` and the status endpoint beside it."""
    app = fastapi_app("Bookinfo productpage")
    client = httpx.AsyncClient(transport=AsyncMeshTransport(mesh))

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return (
            "<!doctype html><title>Simple Bookstore App</title><h1>Simple Bookstore App</h1>"
            '<p><a href="/productpage?u=normal">Normal user</a> · '
            '<a href="/productpage?u=test">Test user</a></p>'
        )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "Product page is healthy"}

    @app.post("/login")
    async def login(request: Request) -> RedirectResponse:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        user = (form.get("username") or [""])[0].strip()
        response = RedirectResponse("/productpage", status_code=303)
        if user:
            response.set_cookie(SESSION_COOKIE, user, httponly=True, samesite="lax")
        return response

    @app.get("/logout")
    async def logout() -> RedirectResponse:
        response = RedirectResponse("/productpage", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/productpage", response_class=HTMLResponse)
    async def productpage(request: Request) -> HTMLResponse:
        user = request.headers.get("end-user", "")
        details, reviews = await asyncio.gather(_details(client, 0), _reviews(client, 0))
        return HTMLResponse(_page(user, details, reviews))

    @app.get("/api/v1/products/{product_id}/reviews")
    async def reviews_api(product_id: int) -> JSONResponse:
        status, body = await _reviews(client, product_id)
        return JSONResponse(body, status_code=status)

    app.add_middleware(MeshMiddleware, mesh=mesh)
    app.add_middleware(EndUserFromCookie)  # outermost: the mesh sees the header
    return with_admin(mesh, app)


async def _details(client: httpx.AsyncClient, product_id: int) -> tuple[int, dict[str, Any]]:
    try:
        res = await client.get(f"{DETAILS}/details/{product_id}", timeout=DETAILS_TIMEOUT)
    except httpx.HTTPError as exc:
        return 500, {"error": DETAILS_UNAVAILABLE, "flags": type(exc).__name__}
    if res.status_code != 200:
        return res.status_code, {
            "error": DETAILS_UNAVAILABLE,
            "flags": res.headers.get("x-libmesh-response-flags"),
        }
    return 200, res.json()


async def _reviews(client: httpx.AsyncClient, product_id: int) -> tuple[int, dict[str, Any]]:
    status = 500
    for _ in range(REVIEWS_TRIES):
        try:
            res = await client.get(f"{REVIEWS}/reviews/{product_id}", timeout=REVIEWS_TIMEOUT)
        except httpx.HTTPError:
            continue
        if res.status_code == 200:
            return 200, res.json()
        status = res.status_code
    return status, {"error": REVIEWS_UNAVAILABLE}


def _stars(rating: dict[str, Any]) -> str:
    if "error" in rating:
        return f'<p class="ratings-unavailable" data-ratings="unavailable"><em>{html.escape(rating["error"])}</em></p>'
    stars = int(rating.get("stars", 0))
    color = "red" if rating.get("color") == "red" else "black"
    glyphs = "★" * stars + "☆" * (5 - stars)
    return f'<p class="stars" data-stars="{stars}" data-color="{color}" style="color:{color}">{glyphs}</p>'


def _page(user: str, details: tuple[int, dict[str, Any]], reviews: tuple[int, dict[str, Any]]) -> str:
    e = html.escape
    if user:
        session = f'<span><span id="user">signed in as <b>{e(user)}</b></span> · <a id="logout" href="/logout">Sign out</a></span>'
    else:
        session = (
            '<form id="login" method="post" action="/login">'
            '<input name="username" placeholder="User Name" aria-label="User Name"> '
            '<input type="password" name="passwd" placeholder="Password" aria-label="Password"> '
            '<button type="submit">Sign in</button></form>'
        )
    d_status, d = details
    if d_status == 200:
        rows = "".join(
            f"<dt>{e(label)}</dt><dd>{e(str(d.get(key, '')))}</dd>"
            for label, key in (
                ("Type", "type"),
                ("Pages", "pages"),
                ("Publisher", "publisher"),
                ("Language", "language"),
                ("ISBN-10", "ISBN-10"),
                ("ISBN-13", "ISBN-13"),
            )
        )
        details_html = f'<section id="details"><h2>Book Details</h2><dl>{rows}</dl></section>'
    else:
        flags = e(str(d.get("flags") or "-"))
        details_html = (
            f'<section id="details" data-error="{d_status}" data-response-flags="{flags}">'
            f"<h2>Error fetching product details!</h2><p>{e(d['error'])}</p></section>"
        )
    r_status, r = reviews
    if r_status == 200:
        version = e(str(r.get("version", "")))
        items = "".join(
            f'<blockquote class="review"><p>{e(x["text"])}</p><small>{e(x["reviewer"])}</small>'
            f"{_stars(x['rating']) if 'rating' in x else ''}</blockquote>"
            for x in r.get("reviews", [])
        )
        reviews_html = (
            f'<section id="reviews" data-reviews-version="{version}"><h2>Book Reviews</h2>{items}'
            f'<p class="served-by">reviews-{version}</p></section>'
        )
    else:
        reviews_html = (
            f'<section id="reviews" data-reviews-version="none" data-error="{r_status}">'
            f"<h2>Error fetching product reviews!</h2><p>{e(r['error'])}</p></section>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Simple Bookstore App</title>
<style>
body {{ font-family: sans-serif; margin: 0; }}
header {{ background: #222; color: #eee; padding: .6em 1em; display: flex; justify-content: space-between; }}
header a {{ color: #9cf; }}
main {{ padding: 1em 2em; }}
.columns {{ display: flex; gap: 3em; }}
.columns section {{ flex: 1; }}
blockquote {{ border-left: 4px solid #ccc; margin: 1em 0; padding: .2em 1em; }}
.stars {{ font-size: 1.4em; margin: .2em 0; }}
dt {{ font-weight: bold; }}
</style></head>
<body>
<header><span>BookInfo Sample (libmesh)</span>{session}</header>
<main>
<h1 id="title">{e(PRODUCT["title"])}</h1>
<p>{PRODUCT["descriptionHtml"]}</p>
<div class="columns">{details_html}{reviews_html}</div>
</main></body></html>
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Serve productpage on 127.0.0.1 until interrupted."""
    service = start("productpage", argv, default_port=Ports().productpage)
    uvicorn.run(create_app(service.mesh), host="127.0.0.1", port=service.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())

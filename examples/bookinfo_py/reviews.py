"""reviews: two reviews of the book (FastAPI on uvicorn), in three versions as in Istio's Bookinfo:

* v1 shows no stars and never calls ratings;
* v2 asks ratings (gRPC) and shows black stars; it waits up to 10 s for ratings;
* v3 asks ratings and shows red stars; it waits up to 2.5 s.

``python -m examples.bookinfo_py.reviews --config DIR --version v2 [--port 9083]``
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence
from typing import Any

import grpc
import uvicorn

import libmesh
from libmesh.adapters.asgi import MeshMiddleware
from libmesh.adapters.grpc import aio_channel

from .proto import ratings_pb2, ratings_pb2_grpc
from .runtime import fastapi_app, start, with_admin
from .topology import Ports

__all__ = ["RATINGS_TIMEOUT", "create_app", "main"]

RATINGS = "ratings:9080"
#: How long each version waits for ratings (Istio's reviews: 10 s in v2, 2.5 s in v3).
RATINGS_TIMEOUT = {"v2": 10.0, "v3": 2.5}
STAR_COLOR = {"v2": "black", "v3": "red"}
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"

REVIEWS = [
    (
        "Reviewer1",
        "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
    ),
    (
        "Reviewer2",
        "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.",
    ),
]


def create_app(mesh: libmesh.Mesh, version: str) -> Any:
    """The reviews app of ``version`` on ``mesh``, with ``/metrics`` and the status endpoint beside it."""
    app = fastapi_app(f"Bookinfo reviews {version}")
    state: dict[str, Any] = {}

    def ratings_stub() -> Any:
        # One mesh channel for the process, made on the server's event loop.
        if "stub" not in state:
            state["stub"] = ratings_pb2_grpc.RatingsStub(aio_channel(mesh, RATINGS))
        return state["stub"]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "Reviews is healthy"}

    @app.get("/reviews/{product_id}")
    async def reviews(product_id: int) -> dict[str, Any]:
        ratings: dict[str, int] | None = None
        if version in RATINGS_TIMEOUT:
            try:
                reply = await ratings_stub().GetRatings(
                    ratings_pb2.RatingsRequest(product_id=product_id), timeout=RATINGS_TIMEOUT[version]
                )
                ratings = dict(reply.ratings)
            except grpc.RpcError:
                ratings = None
        out = []
        for reviewer, text in REVIEWS:
            item: dict[str, Any] = {"reviewer": reviewer, "text": text}
            if version in RATINGS_TIMEOUT:
                if ratings is None:
                    item["rating"] = {"error": RATINGS_UNAVAILABLE}
                else:
                    item["rating"] = {"stars": ratings.get(reviewer, 0), "color": STAR_COLOR[version]}
            out.append(item)
        return {"id": str(product_id), "podname": socket.gethostname(), "version": version, "reviews": out}

    app.add_middleware(MeshMiddleware, mesh=mesh)
    return with_admin(mesh, app)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve one reviews version on 127.0.0.1 until interrupted."""
    service = start("reviews", argv, default_port=Ports().reviews_v1)
    version = service.options.version
    if version not in ("v1", "v2", "v3"):
        raise SystemExit(f"reviews: --version must be v1, v2 or v3, not {version!r}")
    uvicorn.run(create_app(service.mesh, version), host="127.0.0.1", port=service.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""details: the book's details (Flask, served by werkzeug's threaded WSGI server).

``python -m examples.bookinfo_py.details --config DIR [--port 9081]``
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from flask import Flask, jsonify
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server

import libmesh
from libmesh.adapters.wsgi import MeshMiddleware, metrics_app, status_app

from .runtime import STATUS_PATH, start
from .topology import Ports

__all__ = ["create_app", "main"]


def create_app(mesh: libmesh.Mesh) -> Any:
    """The details WSGI app on ``mesh``."""
    app = Flask("details")

    @app.get("/health")
    def health() -> Any:
        return jsonify(status="Details is healthy")

    @app.get("/details/<int:product_id>")
    def details(product_id: int) -> Any:
        return jsonify(
            id=product_id,
            author="William Shakespeare",
            year=1595,
            type="paperback",
            pages=200,
            publisher="PublisherA",
            language="English",
            **{"ISBN-10": "1234567890", "ISBN-13": "123-1234567890"},
        )

    return DispatcherMiddleware(
        MeshMiddleware(app.wsgi_app, mesh=mesh),
        {"/metrics": metrics_app(mesh), STATUS_PATH: status_app(mesh)},
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Serve details on 127.0.0.1 until interrupted."""
    service = start("details", argv, default_port=Ports().details)
    server = make_server("127.0.0.1", service.port, create_app(service.mesh), threaded=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

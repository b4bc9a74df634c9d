"""The httpx transport reads httpx's parsed forms directly where httpx keeps them (probed at import); what
it reads must be what the public API gives, on requests and URLs that exercise every part."""

from __future__ import annotations

import httpx
import pytest

from libmesh import Mesh
from libmesh.adapters import httpx as adapter
from libmesh.config import load_yaml

URLS = [
    "http://reviews:9080/reviews/1",
    "http://reviews/",
    "http://reviews",
    "https://Reviews.Example:443/a%20b/c?x=1&y=%2F",
    "http://[::1]:8080/p?",
    "http://127.0.0.1:80/p?q#frag",
    "http://xn--fiqs8s.icom.museum/p",
    "http://user:pw@host:81/p;params?q=a+b",
]


def test_the_probes_find_httpx_0_2x_layouts() -> None:
    # If httpx changes its layout the transport falls back to the public API; this says it did.
    assert adapter._URL_REFERENCE and adapter._ITEMS and adapter._REQUEST_STATE


@pytest.mark.parametrize("text", URLS)
def test_url_parts_are_the_public_properties(text: str) -> None:
    url = httpx.URL(text)
    assert adapter._url_parts(url) == (url.scheme, url.port, url.raw_path.decode("ascii"))


@pytest.mark.parametrize("text", URLS)
def test_the_call_is_read_as_the_public_api_reads_the_request(text: str) -> None:
    mesh = Mesh(load_yaml(""))
    try:
        headers = [("X-Dup", "a"), ("Accept", "*/*"), ("x-dup", "b"), ("End-User", "Jason")]
        request = httpx.Client().build_request("GET", text, headers=headers)
        call, own = adapter._call(mesh, request)
        public: dict[str, str] = {}
        for name, value in request.headers.raw:
            key = name.decode("latin-1").lower()
            public[key] = (
                f"{public[key]},{value.decode('latin-1')}" if key in public else value.decode("latin-1")
            )
        assert call.authority == public.pop("host")
        assert own == public and own["x-dup"] == "a,b" and own["end-user"] == "Jason"
        assert (call.scheme, call.path) == (request.url.scheme, request.url.raw_path.decode("ascii"))
    finally:
        mesh.close()


def test_the_outcome_reads_the_mesh_headers_whatever_their_case() -> None:
    response = httpx.Response(
        200,
        headers=[("Grpc-Status", "14"), ("X-LibMesh-Fault-Injected", "1"), ("X-Libmesh-Peer", "w=a,ns=b")],
    )
    outcome = adapter._outcome(response)
    assert (outcome.status, outcome.grpc_status) == (200, 14)
    assert response.extensions["libmesh"] == (True, "w=a,ns=b")

"""The httpx transport reads httpx's parsed forms directly where httpx keeps them (probed at import); what
it reads must be what the public API gives, on requests and URLs that exercise every part."""

from __future__ import annotations

import httpcore
import httpx
import pytest

from libmesh import Mesh
from libmesh.adapters import httpx as adapter
from libmesh.config import load_yaml
from libmesh.policy.engine import Send
from libmesh.routing.call import Call
from libmesh.routing.decision import HeaderOps

from .servers import short_body_server
from .support import MODES, Mode, call, make_mesh, service_entry

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
    assert adapter._URL_REFERENCE and adapter._ITEMS and adapter._REQUEST_STATE and adapter._CORE_LAYOUT


def _read(request: httpx.Request) -> tuple[Call, dict[str, str]]:
    """The mesh's view of ``request`` (:func:`adapter._call`)."""
    mesh = Mesh()
    try:
        return adapter._call(mesh, request)
    finally:
        mesh.close()


class _Capture:
    """Stands in for an ``httpx.HTTPTransport``'s httpcore pool: keeps the httpcore request the transport
    made and answers 204."""

    def __init__(self) -> None:
        self.request: httpcore.Request | None = None

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        self.request = request
        return httpcore.Response(204)


# (URL the app calls, endpoint host the mesh picked)
ATTEMPTS = [
    ("http://reviews:9080/reviews/1", "127.0.0.1"),
    ("https://Reviews.Example:443/a%20b/c?x=1&y=%2F", "Reviews.Example"),
    ("http://reviews:9080/p?", "10.0.0.7"),
    ("http://reviews/p;params?q=a+b", "reviews-v2.internal"),
]


@pytest.mark.parametrize(("text", "host"), ATTEMPTS)
def test_the_httpcore_request_is_the_one_httpx_transport_makes(text: str, host: str) -> None:
    request = httpx.Client().build_request("POST", text, headers={"End-User": "jason"}, content=b"body")
    path = adapter._url_parts(request.url)[2]
    ops = HeaderOps({"x-set": "1"}, {"end-user": "ann"}, ("accept",))
    step = Send(host, 9080, "reviews:9080", path, ops, 2.5, None, 0, connect_timeout=1.0)
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    traced = frozenset({"traceparent", "tracestate", "baggage"})
    peer = (b"w=a", b"w=a,k=0123456789ab")

    items, extensions = adapter._attempt_parts(request, step, ops, trace, traced, peer)
    call, _ = _read(request)
    ours = adapter._core_request(request, call, step, items, extensions)

    attempt = adapter._attempt_request(request, step, path, ops, trace, traced, peer)
    transport = httpx.HTTPTransport()
    capture = _Capture()
    transport._pool = capture  # type: ignore[assignment]
    transport.handle_request(attempt)
    theirs = capture.request
    assert ours is not None and theirs is not None
    assert ours.method == theirs.method
    assert (ours.url.scheme, ours.url.host, ours.url.port, ours.url.target) == (
        theirs.url.scheme,
        theirs.url.host,
        theirs.url.port,
        theirs.url.target,
    )
    assert ours.headers == theirs.headers
    assert ours.extensions == theirs.extensions and ours.extensions["timeout"]["read"] == 2.5
    assert ours.stream is theirs.stream


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("bücher.example", "/p?q=1"),  # httpx IDNA-encodes it
        ("::1", "/p?q=1"),  # httpx takes the brackets off and leaves the default port out
        ("127.0.0.1", "/a b/../c"),  # a rewritten path: httpx percent-encodes and normalises it
    ],
)
def test_what_httpx_would_encode_goes_through_the_transport(host: str, path: str) -> None:
    request = httpx.Client().build_request("GET", "http://reviews:9080/p?q=1")
    step = Send(host, 9080, "reviews:9080", path, HeaderOps(), None, None, 0)
    items, extensions = adapter._attempt_parts(request, step, step.headers, None, frozenset(), None)
    call, _ = _read(request)
    assert adapter._core_request(request, call, step, items, extensions) is None


def test_only_a_plain_httpx_transport_is_bypassed(monkeypatch: pytest.MonkeyPatch) -> None:
    class Own(httpx.HTTPTransport):
        pass

    plain, own, patched = httpx.HTTPTransport(), Own(), httpx.HTTPTransport()
    aplain = httpx.AsyncHTTPTransport()
    try:
        assert adapter._core_pool(plain) is plain._pool
        assert adapter._async_core_pool(aplain) is aplain._pool
        assert adapter._core_pool(own) is None
        assert adapter._core_pool(httpx.MockTransport(lambda r: httpx.Response(200))) is None
        # Instrumentation and test mocks replace handle_request, on one instance or on the class.
        monkeypatch.setattr(patched, "handle_request", lambda request: httpx.Response(200))
        assert adapter._core_pool(patched) is None
        original = httpx.HTTPTransport.handle_request

        def traced(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
            return original(self, request)

        monkeypatch.setattr(httpx.HTTPTransport, "handle_request", traced)
        assert adapter._core_pool(plain) is None
        monkeypatch.undo()
        assert adapter._core_pool(plain) is plain._pool
    finally:
        plain.close()
        own.close()
        patched.close()


def test_httpcore_errors_become_the_httpx_errors_the_transport_raises() -> None:
    names = [
        name
        for name in dir(httpcore)
        if isinstance(getattr(httpcore, name), type) and issubclass(getattr(httpcore, name), Exception)
    ]
    assert {"ConnectError", "ReadTimeout", "RemoteProtocolError", "PoolTimeout"} <= set(names)
    for name in names:
        # httpx mirrors each of httpcore's errors under the same name; httpcore's internal retry signal
        # (ConnectionNotAvailable) has no twin and is raised as it is, as httpx's transport does.
        expected = getattr(httpx, name, None)
        assert adapter._core_error(getattr(httpcore, name)("boom")) is expected, name
    assert adapter._core_error(ValueError("not httpcore's")) is None


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
    mesh = Mesh()
    try:
        outcome = adapter._outcome(response, mesh, None, False)
    finally:
        mesh.close()
    assert (outcome.status, outcome.grpc_status) == (200, 14)
    assert response.extensions["libmesh"] == (True, "w=a,ns=b")


@pytest.mark.parametrize("mode", MODES)
def test_a_body_cut_short_raises_httpx_error_as_without_the_mesh(mode: Mode) -> None:
    with short_body_server() as port:
        mesh = make_mesh(service_entry("reviews", [(port, {})]))
        try:
            with pytest.raises(httpx.RemoteProtocolError):
                call(mesh, mode, "http://reviews:9080/")
        finally:
            mesh.close()


def test_the_response_is_the_one_httpx_transport_makes() -> None:
    raw = httpcore.Response(
        200,
        headers=[(b"Content-Type", b"text/plain"), (b"X-A", b"1"), (b"x-a", b"2")],
        extensions={"http_version": b"HTTP/1.1"},
    )
    ours = adapter._core_response(raw, adapter._CoreStream([]))
    theirs = httpx.Response(
        200, headers=raw.headers, extensions=raw.extensions, stream=adapter._CoreStream([])
    )
    assert ours.headers.raw == theirs.headers.raw and ours.headers.get_list("x-a") == ["1", "2"]
    assert ours.headers == theirs.headers and ours.extensions == theirs.extensions
    assert ours.status_code == theirs.status_code == 200

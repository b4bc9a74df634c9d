"""The ratings proto, compiled with grpcio-tools when first imported, as tests/grpc/proto is: nothing
generated is committed, so the stubs always match the installed grpcio and protobuf (grpcio-tools is in
the ``dev`` extra, which ``make demo`` installs).

``from examples.bookinfo_py.proto import ratings_pb2, ratings_pb2_grpc``
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import sys
import tempfile
from pathlib import Path
from types import ModuleType

__all__ = ["ratings_pb2", "ratings_pb2_grpc"]

_PROTO = Path(__file__).with_name("ratings.proto")


def _compile() -> tuple[ModuleType, ModuleType]:
    from grpc_tools import protoc

    source = _PROTO.read_bytes()
    # One output directory per proto content and interpreter, shared by the example's processes.
    digest = hashlib.sha256(source + sys.version.encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"libmesh-bookinfo-proto-{digest}"
    if not (out / "ratings_pb2_grpc.py").exists():
        work = Path(tempfile.mkdtemp(prefix="libmesh-bookinfo-proto-"))
        args = [
            "grpc_tools.protoc",
            f"-I{_PROTO.parent}",
            f"--python_out={work}",
            f"--grpc_python_out={work}",
        ]
        if protoc.main([*args, str(_PROTO)]) != 0:
            raise RuntimeError(f"protoc failed on {_PROTO}")
        # Several services start at once: the first rename wins and the others use its output.
        with contextlib.suppress(OSError):
            work.rename(out)
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    return importlib.import_module("ratings_pb2"), importlib.import_module("ratings_pb2_grpc")


ratings_pb2, ratings_pb2_grpc = _compile()

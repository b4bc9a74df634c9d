"""The test proto, compiled with grpcio-tools when first imported (see docs/grpc.md: nothing generated is
committed, so the stubs always match the installed grpcio and protobuf).

``from tests.grpc.proto import echo_pb2, echo_pb2_grpc``
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import sys
import tempfile
from pathlib import Path
from types import ModuleType

__all__ = ["echo_pb2", "echo_pb2_grpc"]

_PROTO = Path(__file__).with_name("echo.proto")


def _compile() -> tuple[ModuleType, ModuleType]:
    from grpc_tools import protoc

    source = _PROTO.read_bytes()
    # One output directory per proto content (and interpreter), shared by test workers and later runs.
    digest = hashlib.sha256(source + sys.version.encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"libmesh-test-proto-{digest}"
    if not (out / "echo_pb2_grpc.py").exists():
        work = Path(tempfile.mkdtemp(prefix="libmesh-proto-"))
        args = [
            "grpc_tools.protoc",
            f"-I{_PROTO.parent}",
            f"--python_out={work}",
            f"--grpc_python_out={work}",
        ]
        if protoc.main([*args, str(_PROTO)]) != 0:
            raise RuntimeError(f"protoc failed on {_PROTO}")
        # Another process may have finished first: then its output is used.
        with contextlib.suppress(OSError):
            work.rename(out)
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    return importlib.import_module("echo_pb2"), importlib.import_module("echo_pb2_grpc")


echo_pb2, echo_pb2_grpc = _compile()

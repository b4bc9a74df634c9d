"""The test proto, compiled with grpcio-tools when first imported (see docs/grpc.md and
:mod:`libmesh.testing.protos`: nothing generated is committed, so the stubs always match the installed
grpcio and protobuf).

``from tests.grpc.proto import echo_pb2, echo_pb2_grpc``
"""

from __future__ import annotations

from pathlib import Path

from libmesh.testing.protos import compile_proto

__all__ = ["echo_pb2", "echo_pb2_grpc"]

echo_pb2, echo_pb2_grpc = compile_proto(Path(__file__).with_name("echo.proto"))

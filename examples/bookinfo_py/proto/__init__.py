"""The ratings proto, compiled with grpcio-tools when first imported, as tests/grpc/proto is (see
:mod:`libmesh.testing.protos`): nothing generated is committed, so the stubs always match the installed
grpcio and protobuf (grpcio-tools is in the ``dev`` extra, which ``make demo`` installs).

``from examples.bookinfo_py.proto import ratings_pb2, ratings_pb2_grpc``
"""

from __future__ import annotations

from pathlib import Path

from libmesh.testing.protos import compile_proto

__all__ = ["ratings_pb2", "ratings_pb2_grpc"]

ratings_pb2, ratings_pb2_grpc = compile_proto(Path(__file__).with_name("ratings.proto"))

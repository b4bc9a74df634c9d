"""Framework bindings (httpx, ASGI, WSGI, gRPC), installed as ``libmesh.adapters``.

Each adapter translates its framework's request into libmesh's neutral call model and back; all mesh logic
lives in the core.
"""

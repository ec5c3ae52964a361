"""The seam under the request path: a transport sends one request and returns the bytes of its reply.

Everything above it (auth, envelope, retry and its failure classes, paging, redaction, call records)
is written once in `engine.connectors.connector`. `default` is the production transport (HTTP/1.1
over asyncio, pooled); `mock` answers from a function, for `mesbridge test`, `dry-run` and unit tests.
"""

from engine.connectors.transports.base import Transport, WireReply, WireRequest

__all__ = ["Transport", "WireReply", "WireRequest"]

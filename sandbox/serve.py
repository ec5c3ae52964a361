"""Serving simulators on real ports: one in a background thread for tests, several in one loop.

The servers put the `sandbox.abort` extension in each request's scope, so a fault can reset the
connection without a reply (uvicorn answers 500 to an app that returns without one).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from sandbox.base import ABORT_EXTENSION

__all__ = ["QuietServer", "bind_socket", "serve_in_thread"]


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its owner."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening-ready TCP socket; port 0 picks a free port (read it with `getsockname()`)."""
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto says
    # TCP; without it every keep-alive reply after the first waits ~40 ms (Nagle + delayed ACK).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def reset(transport: asyncio.Transport) -> None:
    """Close the connection at once with a TCP reset (SO_LINGER 0), discarding any unsent reply."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class AbortableProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's HTTP protocol, adding `sandbox.abort` (see `sandbox.base.ABORT_EXTENSION`)."""

    app: ASGIApp  # set by uvicorn's protocol from its config

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        app = self.app
        self.closing = asyncio.Event()
        extension = {"abort": lambda: reset(transport), "closing": self.closing}

        async def with_abort(scope: Scope, receive: Receive, send: Send) -> None:
            extensions = {**scope.get("extensions", {}), ABORT_EXTENSION: extension}
            await app({**scope, "extensions": extensions}, receive, send)

        self.app = with_abort

    def shutdown(self) -> None:
        """The server is stopping: a request held unanswered ends now (it is reset)."""
        self.closing.set()
        super().shutdown()


def make_server(app: ASGIApp, **config: Any) -> QuietServer:
    """A quiet uvicorn server for `app` (no access log, warnings only, no lifespan, `sandbox.abort`)."""
    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
        "http": AbortableProtocol,
    }
    options.update(config)
    return QuietServer(uvicorn.Config(app, **options))


@contextlib.contextmanager
def serve_in_thread(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, timeout: float = 10.0, *, lifespan: str = "off"
) -> Iterator[str]:
    """Serve `app` in a background thread; yields the base URL, e.g. `http://127.0.0.1:54321`.

    `lifespan="on"` runs the app's start-up and shutdown hooks (the engine closes its sessions there).
    """
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    server = make_server(app, lifespan=lifespan)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name=f"sim-{bound_port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError(f"simulator did not start on {host}:{bound_port}")
        time.sleep(0.005)
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()

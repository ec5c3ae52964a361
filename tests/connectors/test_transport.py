"""The production transport's failure classes over real sockets: refused, silent, reset, TLS.

Nothing sent (refused connection) is retried for every method; a request sent with no reply (a read
timeout, a reset after the body) is uncertain, so a POST is not sent again and a GET is.
"""

from __future__ import annotations

import asyncio
import http.server
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine.connectors import Connector
from engine.connectors.transports import WireRequest
from engine.connectors.transports.default import HttpTransport, TransportSettings
from engine.errors import NoReply, NotSent, NotSentError, TransientError, UncertainError
from sandbox.serve import bind_socket
from tests.connectors.kit import FakeTime, config

pytestmark = pytest.mark.slow
SECRET = "s3cr3t-token-value"
TLS = Path(__file__).parent.parent / "data" / "tls"


@contextmanager
def raw_server(behaviour: str) -> Iterator[tuple[str, list[bytes]]]:
    """A TCP server that reads one request then misbehaves: `silent` (never answers) or `reset`."""
    listener = bind_socket()
    listener.listen()
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                data = b""
                conn.settimeout(2)
                try:
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536)
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = next(
                        (
                            int(line.split(b":")[1])
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length")
                        ),
                        0,
                    )
                    while len(body) < length:
                        body += conn.recv(65536)
                except (TimeoutError, OSError):
                    continue
                received.append(data)
                if behaviour == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                else:
                    stop.wait(3)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", received
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def connector(base: str, records: list, **fields) -> Connector:
    fields.setdefault(
        "retry", {"max_attempts": 3, "backoff": {"initial": 0.01, "jitter": False}, "deadline": 30}
    )
    fields.setdefault("timeout", {"connect": 2, "read": 0.5})
    fields.setdefault("auth", {"kind": "basic", "username": "${ERP_TOKEN}", "password": "PAT"})
    fake = FakeTime()
    return Connector(
        "erp",
        config(base_url=f"{base}/api", **fields),
        environ={"ERP_TOKEN": SECRET},
        on_call=records.append,
        sleep=fake.sleep,
    )


async def test_a_refused_connection_is_not_sent_and_retried_even_for_a_post():
    sock = bind_socket()  # bound, never listening: connections are refused
    records: list = []
    erp = connector(f"http://127.0.0.1:{sock.getsockname()[1]}", records)
    try:
        with pytest.raises(
            TransientError, match=r"cannot reach erp: cannot connect.*gave up after 3 attempts"
        ):
            await erp.request("POST", f"/x?token={SECRET}", body={"a": 1})
    finally:
        await erp.aclose()
        sock.close()
    assert [(r.status, r.failure) for r in records] == [(None, "not_sent")] * 3
    assert all(SECRET not in r.url for r in records)


@pytest.mark.parametrize("behaviour", ["silent", "reset"])
async def test_a_post_without_a_reply_is_uncertain_and_sent_once(behaviour):
    records: list = []
    with raw_server(behaviour) as (base, received):
        erp = connector(base, records)
        try:
            with pytest.raises(
                UncertainError, match="outcome unknown after POST /ALINE_ONE: erp did not answer"
            ) as info:
                await erp.request("POST", "/ALINE_ONE", body={"QUANT": 1})
        finally:
            await erp.aclose()
    assert len(received) == 1 and info.value.status == 502
    assert info.value.message.endswith("erp may have applied it. Check erp before sending the event again")
    assert [r.failure for r in records] == ["uncertain"]


@pytest.mark.parametrize(
    ("base", "reason"),
    [("http://127.0.0.1:86O2", "port can't be converted to integer"), ("http://[::1", "Invalid IPv6 URL")],
)
async def test_a_malformed_base_url_is_a_clear_failure_not_a_crash(base, reason):
    records: list = []
    erp = connector(base, records)
    try:
        with pytest.raises(TransientError, match=re.escape(f"cannot reach erp: invalid URL: {reason}")):
            await erp.request("POST", "/ALINE_ONE", body={"QUANT": 1})
    finally:
        await erp.aclose()
    assert [r.failure for r in records] == ["not_sent"] * 3


async def test_a_get_without_a_reply_is_repeated():
    records: list = []
    with raw_server("reset") as (base, received):
        erp = connector(base, records)
        try:
            with pytest.raises(TransientError) as info:  # a read applied nothing: send it again later
                await erp.request("GET", "/x")
        finally:
            await erp.aclose()
    assert len(received) >= 3 and [r.failure for r in records] == ["uncertain"] * 3
    assert not isinstance(info.value, UncertainError)


async def test_transport_classes_its_own_failures():
    transport = HttpTransport(TransportSettings(connect_timeout=1, read_timeout=0.3))
    sock = bind_socket()
    try:
        with pytest.raises(NotSent):
            await transport.send(WireRequest("GET", f"http://127.0.0.1:{sock.getsockname()[1]}/"))
        with raw_server("silent") as (base, _):
            with pytest.raises(NoReply, match="nothing within 0.3 s after sending"):
                await transport.send(WireRequest("POST", base + "/", {}, b"{}"))
            # what is left of a deadline is said to the hundredth of a second, not to the microsecond
            odd = WireRequest("POST", base + "/", {}, b"{}", read_timeout=0.30437)
            with pytest.raises(NoReply, match=r"nothing within 0\.3 s after sending"):
                await transport.send(odd)
        with pytest.raises(NotSent, match="TLS|connect"):
            await transport.send(WireRequest("GET", f"https://127.0.0.1:{sock.getsockname()[1]}/"))
    finally:
        sock.close()
        await transport.aclose()


async def test_the_read_timeout_shrinks_to_the_deadline():
    records: list = []
    with raw_server("silent") as (base, _):
        erp = connector(base, records, timeout={"connect": 2, "read": 30})
        erp.sleep = asyncio.sleep
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(UncertainError):
                await erp.request("POST", "/x", body={}, deadline=0.4)
            assert asyncio.get_running_loop().time() - started < 3
        finally:
            await erp.aclose()


@contextmanager
def tls_server(host: str = "127.0.0.1", received: list[str] | None = None) -> Iterator[str]:
    """An HTTPS server at `host` answering `{}` with the certificate the test CA (`tests/data/tls`)
    signed for 127.0.0.1 and localhost; `received` gets the method of each request it answers."""
    received = [] if received is None else received

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the handler's protocol
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(self.command)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer((host, 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TLS / "server.pem", TLS / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_tls_ca_file_trusts_a_private_ca_and_may_name_it_with_a_variable():
    records: list = []
    with tls_server() as base:
        refused = connector(base, records)
        trusting = connector(base, records, tls_ca_file="${ERP_CA:-" + str(TLS / "ca.pem") + "}")
        try:
            with pytest.raises(NotSentError, match="TLS certificate of 127.0.0.1 was refused"):
                await refused.request("GET", "/x")
            assert (await trusting.request("GET", "/x")).status == 200
        finally:
            await refused.aclose()
            await trusting.aclose()


@pytest.mark.parametrize(
    ("host", "ca", "reason"),
    [
        ("127.0.0.1", False, "unable to get local issuer certificate"),
        ("127.0.0.2", True, "IP address mismatch, certificate is not valid for '127.0.0.2'."),
    ],
    ids=["unknown-ca", "wrong-host-name"],
)
async def test_a_refused_certificate_fails_at_once_as_not_sent(host: str, ca: bool, reason: str) -> None:
    """Not transient: every attempt would be refused the same way, so there is one, and it says why."""
    records: list = []
    with tls_server(host) as base:
        extra = {"tls_ca_file": str(TLS / "ca.pem")} if ca else {}
        erp = connector(base, records, **extra)
        try:
            with pytest.raises(NotSentError) as failed:
                await erp.request("POST", "/x", body={})
        finally:
            await erp.aclose()
    assert failed.value.kind == "not_sent" and not failed.value.retryable and not failed.value.settled
    assert failed.value.message.startswith(
        f"cannot reach erp: the TLS certificate of {host} was refused: {reason}. Nothing was sent, and it "
        "is not retried: a certificate a CA of your own signed needs tls_ca_file (a PEM file of that CA) "
        "in connector erp"
    ), failed.value.message
    assert [r.failure for r in records] == ["not_sent"]


@pytest.mark.parametrize("content", [None, "not a certificate"])
async def test_a_tls_ca_file_that_cannot_be_loaded_fails_at_once_as_not_sent(tmp_path: Path, content):
    """A configuration error, not a transient one (the start refuses it; the file may go later): one
    attempt, naming the file, the reason and what to fix."""
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content)
    records: list = []
    with tls_server() as base:
        erp = connector(base, records, tls_ca_file=str(path))
        try:
            with pytest.raises(NotSentError) as failed:
                await erp.request("GET", "/x")
        finally:
            await erp.aclose()
    assert failed.value.kind == "not_sent" and not failed.value.retryable and not failed.value.settled
    reason = "No such file or directory" if content is None else ""
    assert failed.value.message.startswith(f"cannot reach erp: tls_ca_file {path} cannot be loaded: {reason}")
    assert (
        "Nothing was sent, and it is not retried: tls_ca_file of connector erp must be a readable PEM file "
        "of CA certificates"
    ) in failed.value.message
    assert [r.failure for r in records] == ["not_sent"]

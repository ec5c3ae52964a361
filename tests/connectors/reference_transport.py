"""aiohttp's client behind the `Transport` interface: the reference the production transport
(`engine.connectors.transports.default.HttpTransport`) is held to in test_transport_reference.py. It was
the production transport until measurement showed it spent about five times the CPU per call."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import aiohttp
from yarl import URL

from engine import __version__
from engine.connectors.transports.base import Transport, WireReply, WireRequest
from engine.connectors.transports.default import TransportSettings, load_ca_file
from engine.errors import CertificateRefused, NoReply, NotSent


class AiohttpTransport(Transport):
    """Requests over a pooled aiohttp session, created on first use."""

    def __init__(
        self,
        settings: TransportSettings,
        name: str = "",
        resolve: Callable[[str], str] = str,
    ) -> None:
        """`resolve` reads the `${VAR}` references of `ca_file` when the first connection opens."""
        self.settings = settings
        self.name = name
        self._resolve = resolve
        self._session: aiohttp.ClientSession | None = None
        self._default_timeout = self._timeout(None)

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.settings.tls_verify:
            return False
        if self.settings.ca_file is None:
            return ssl.create_default_context()
        return load_ca_file(self._resolve(self.settings.ca_file))

    def _open(self) -> aiohttp.ClientSession:
        s = self.settings
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=s.max_connections, ssl=self._ssl()),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=self._default_timeout,
                headers={"User-Agent": f"mesbridge/{__version__}"},
                auto_decompress=True,
            )
        return self._session

    def _timeout(self, read: float | None) -> aiohttp.ClientTimeout:
        """Connect covers waiting for a pooled connection and opening one; sock_read is silence once
        sent; total bounds the whole exchange, so a reply trickled byte by byte cannot hold a call."""
        s = self.settings
        read = s.read_timeout if read is None else read
        connect = min(s.connect_timeout, read)
        return aiohttp.ClientTimeout(
            total=connect + read, connect=connect + read, sock_connect=connect, sock_read=read
        )

    async def send(self, request: WireRequest) -> WireReply:
        read = self.settings.read_timeout if request.read_timeout is None else request.read_timeout
        timeout = self._default_timeout if request.read_timeout is None else self._timeout(read)
        try:
            url = URL(request.url, encoded=True)
            _ = url.raw_host, url.explicit_port  # parsed now: yarl parses them lazily, inside aiohttp
        except ValueError as exc:  # a base URL with a port such as 86O2, say
            raise NotSent(f"invalid URL: {str(exc).removeprefix('Invalid URL: ')}") from None
        try:
            async with self._open().request(
                request.method,
                url,
                headers=request.headers,
                data=request.content,
                allow_redirects=False,
                timeout=timeout,
            ) as response:
                content = await self._read(response)
                return WireReply(response.status, response.headers, content)
        except aiohttp.ClientConnectorCertificateError as exc:
            refused = exc.certificate_error
            reason = getattr(refused, "verify_message", None) or str(refused)
            raise CertificateRefused(f"the TLS certificate of {url.host} was refused: {reason}") from exc
        except aiohttp.ClientSSLError as exc:
            raise NotSent(f"TLS handshake failed: {exc}") from exc
        except aiohttp.ClientConnectorError as exc:
            raise NotSent(f"cannot connect: {exc.os_error.strerror or exc.os_error}") from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise NotSent(f"no connection within {timeout.sock_connect:g} s") from exc
        except aiohttp.SocketTimeoutError as exc:
            raise NoReply(f"nothing within {round(read, 2):g} s after sending") from exc
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
            raise NotSent(f"invalid URL: {exc}") from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise NoReply("the connection closed before the reply") from exc
        except (aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
            raise NoReply(f"unreadable reply: {exc}") from exc
        except (aiohttp.ClientOSError, ConnectionError) as exc:
            raise NoReply(f"the connection was lost ({exc.strerror or exc})") from exc
        except TimeoutError as exc:
            raise NoReply(f"no whole reply within {timeout.total:g} s") from exc
        except aiohttp.ClientError as exc:
            raise NoReply(f"{type(exc).__name__}: {exc}") from exc

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self.settings.max_reply_bytes
        length = response.content_length
        if length is not None:
            if length > limit:
                raise NoReply(f"the reply is over {limit} bytes")
            return await response.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise NoReply(f"the reply is over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

"""The trace writer: a child process that masks, caps, indexes and stores batches of traces.

The service's event loop only records a run and writes its raw document as JSON; everything else a
trace costs (the secret scan, masking and caps, the search text, the store's insert and the disk)
happens here, in a process of its own that shares no interpreter lock with the loop. The service
starts it on the first batch and again if it ever exits.

The parent writes, on the child's standard input, the store URL on one line, then one frame per batch:
a 4-byte big-endian length and a pickle of `(max_body_bytes, secrets, [packed document, ...])`
(`engine.traces.document.pack`: the run's recorded fields as JSON, or as a tuple where orjson
cannot write them). The secrets
are the values the service's redactors know when the batch is sent (a token refreshed since is in
the next batch). The child answers each frame with one line: `ok WRITTEN DROPPED` or `error MESSAGE`.
The pipe is private to the two processes; nothing in it is logged.

    python -m engine.traces.writer        (started by the service; not a command for users)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import struct
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from engine.errors import StoreError
from engine.store import Store, open_store
from engine.traces.document import stored_rows

__all__ = ["WriterProcess", "WriterUnavailable"]

log = logging.getLogger("mesbridge.traces")

_HEADER = struct.Struct(">I")
STOP_TIMEOUT = 10.0
"""Seconds the child has, once its input is closed, to write what it holds and exit."""
WRITE_TIMEOUT = 60.0
"""Seconds one batch may take (a store that hangs): then the child is killed and replaced."""
NICENESS = 10
"""How much nicer the child runs than the service (`os.nice`): it gets a smaller share of a busy CPU,
since traces are a diagnosis and the events come first. A child that falls behind fills the
service's buffer, whose oldest traces are then dropped and counted, as when the store is slow. On a
store whose write transaction holds every other writer back (`Store.exclusive_writes`: SQLite) it
runs as the service does: slowed down inside its transaction, it would hold the service's writes
back with it."""
RESTART_BACKOFF = 0.5
"""Seconds before a child is started again after a failure; doubled for each failure in a row, up
to 64 times this."""


class WriterUnavailable(Exception):
    """The writer process cannot take a batch now (it cannot start, it stopped or hung, or it is
    waiting to be started again); the batch was not stored, and may be written some other way."""

    def __init__(self, message: str, *, pausing: bool = False) -> None:
        super().__init__(message)
        self.pausing = pausing
        """True while waiting to start the child again (the failure was reported already)."""


class WriterProcess:
    """The service's side of the trace writer: sends batches and reads their outcome. A child that
    stops, hangs or is interrupted mid-batch is killed; the next one starts after a pause that grows
    with each failure in a row (RESTART_BACKOFF), and until then `write` raises WriterUnavailable."""

    def __init__(
        self,
        url: str,
        *,
        command: tuple[str, ...] = (sys.executable, "-m", "engine.traces.writer"),
        timeout: float = WRITE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.command = command
        self.timeout = timeout
        self.clock = clock
        self.failures = 0
        """Failures in a row; 0 once a batch has been answered."""
        self._child: asyncio.subprocess.Process | None = None
        self._retry_at = 0.0
        self._lock = asyncio.Lock()

    async def write(
        self, max_body_bytes: int, secrets: list[str], payloads: list[bytes | tuple[Any, ...]]
    ) -> tuple[int, int]:
        """Store one batch of packed trace documents (`engine.traces.document.pack`); (written,
        dropped as unreadable). StoreError: the store refused the batch. WriterUnavailable: the child
        could not take it (the batch was not stored)."""
        frame = pickle.dumps((max_body_bytes, secrets, payloads), protocol=pickle.HIGHEST_PROTOCOL)
        async with self._lock:
            if self.failures and self.clock() < self._retry_at:
                raise WriterUnavailable("the trace writer process starts again after a pause", pausing=True)
            line = await self._exchange(frame)
        answer, _, rest = line.decode("utf-8", "replace").strip().partition(" ")
        if answer == "error":
            raise StoreError(rest or "the trace writer gave no reason")
        written, _, dropped = rest.partition(" ")
        return int(written), int(dropped or 0)

    async def _exchange(self, frame: bytes) -> bytes:
        """Send one frame and read its answer; anything but an answer kills the child, since a frame
        left unanswered would pair every later answer with the wrong batch."""
        try:
            child = await self._running()
            assert child.stdin is not None and child.stdout is not None
            async with asyncio.timeout(self.timeout):
                child.stdin.write(_HEADER.pack(len(frame)))
                child.stdin.write(frame)
                await child.stdin.drain()
                line = await child.stdout.readline()
            if not line.startswith((b"ok ", b"error ")) or not line.endswith(b"\n"):
                raise WriterUnavailable(f"the trace writer process stopped{await self._reap()}")
        except WriterUnavailable:
            self._failed()
            raise
        except (OSError, ValueError, TimeoutError) as exc:
            reason = "gave no answer in time" if isinstance(exc, TimeoutError) else f"failed: {exc}"
            self._failed()
            raise WriterUnavailable(f"the trace writer process {reason}{await self._reap()}") from None
        except BaseException:  # cancelled mid-batch: the child's next answer would be this batch's
            await asyncio.shield(self._reap())
            raise
        self.failures = 0
        return line

    def _failed(self) -> None:
        self.failures += 1
        self._retry_at = self.clock() + RESTART_BACKOFF * 2 ** min(self.failures - 1, 6)

    async def close(self) -> None:
        """Let the child finish what it holds and exit (killed if it takes over STOP_TIMEOUT)."""
        async with self._lock:
            child, self._child = self._child, None
            if child is None or child.returncode is not None:
                return
            assert child.stdin is not None
            child.stdin.close()
            try:
                await asyncio.wait_for(child.wait(), STOP_TIMEOUT)
            except TimeoutError:
                log.warning("the trace writer did not stop within %g s; killed", STOP_TIMEOUT)
                child.kill()
                await child.wait()

    async def _running(self) -> asyncio.subprocess.Process:
        child = self._child
        if child is None or child.returncode is not None:
            child = self._child = await asyncio.create_subprocess_exec(
                *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
            assert child.stdin is not None
            child.stdin.write(self.url.encode("utf-8") + b"\n")  # not in argv, where `ps` shows it
        return child

    async def _reap(self) -> str:
        """Kill the child; how it ended, for the message."""
        child, self._child = self._child, None
        if child is None:
            return ""
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        code = await child.wait()
        return f" (exit status {code})" if code is not None and code > 0 else ""


def serve(source: IO[bytes], answers: IO[bytes], store: Store) -> None:
    """Write every batch `source` holds into `store`, answering each on `answers`, until end of input."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            header = source.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return
            frame = source.read(_HEADER.unpack(header)[0])
            try:
                max_body_bytes, secrets, payloads = pickle.loads(frame)  # noqa: S301 - the parent's
                rows, dropped = stored_rows(max_body_bytes, secrets, payloads)
                loop.run_until_complete(store.add_traces(rows))
            except Exception as exc:  # noqa: BLE001 - answered, so the parent drops only this batch
                reason = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
                answers.write(b"error " + " ".join(reason.split()).encode("utf-8", "replace") + b"\n")
            else:
                answers.write(b"ok %d %d\n" % (len(rows), dropped))
            answers.flush()
    finally:
        with contextlib.suppress(StoreError):
            loop.run_until_complete(store.close())
        loop.close()


def main() -> None:
    # the parent stops the child by closing its input, once it has written what it holds: a Ctrl-C or
    # a SIGTERM sent to the whole process group must not end the child first
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="mesbridge trace writer: %(message)s")
    source, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but answers reaches the parent's pipe
    url = source.readline().decode("utf-8").strip()
    try:
        store = open_store(url)
    except StoreError as exc:
        log.error("%s", exc)
        os._exit(1)
    if not store.exclusive_writes:
        with contextlib.suppress(OSError):  # a platform without niceness writes as the service does
            os.nice(NICENESS)
    serve(source, answers, store)


if __name__ == "__main__":
    main()

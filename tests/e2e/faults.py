"""Helpers for the fault, crash and soak tests: a private PostgreSQL database per test, a TCP
forwarder the test can cut and restore, the resident memory of a process, and the check that no
secret reached a process's output.

Every helper starts only what it owns and stops it by handle or PID; nothing is killed by name.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest

from conftest import ADMIN_KEY, UPSTREAM_KEY

# ---------------------------------------------------------------------------------------------
# PostgreSQL


def postgres_url() -> str | None:
    """`KEYGATE_TEST_POSTGRES_URL`; without it the test fails, unless
    `KEYGATE_TEST_SKIP_SERVICES=1` says to skip service-backed tests (as the Rust tests do)."""
    url = os.environ.get("KEYGATE_TEST_POSTGRES_URL", "")
    if url:
        return url
    if os.environ.get("KEYGATE_TEST_SKIP_SERVICES") == "1":
        pytest.skip("KEYGATE_TEST_SKIP_SERVICES=1 and no KEYGATE_TEST_POSTGRES_URL")
    pytest.fail("KEYGATE_TEST_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test); "
                "set KEYGATE_TEST_SKIP_SERVICES=1 to skip tests that need PostgreSQL")
    return None


def _with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead (query string kept)."""
    base, _, query = url.partition("?")
    head, _, _db = base.rpartition("/")
    return f"{head}/{name}" + (f"?{query}" if query else "")


@contextmanager
def fresh_postgres_database(label: str) -> Iterator[str]:
    """A database created for this test only (`keygate_e2e_<label>_<random>`), dropped at the end
    even when the test fails; yields its URL. The server is shared with other engineers and
    tests: only this database is ever dropped."""
    import psycopg

    admin_url = postgres_url()
    assert admin_url is not None
    name = f"keygate_e2e_{label}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def host_port(url: str) -> tuple[str, int]:
    """The host and port of a `postgres://user@host:port/db` URL (port 5432 by default)."""
    rest = url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = rest.partition(":")
    return host or "127.0.0.1", int(port or 5432)


# ---------------------------------------------------------------------------------------------
# a TCP forwarder that can be cut


class Forwarder:
    """Forwards 127.0.0.1:`port` to `target`, on an asyncio loop in a thread of the test.

    `cut()` closes every forwarded connection and stops listening, so new connections are refused
    (the port stays bound: nobody else can take it); `restore()` listens again on the same port.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        # Bound once for the forwarder's life; listen() is what makes it accept.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._cuts = 0  # cut() calls so far, so a connection half set up when one came is cut too
        self.accepted = 0
        self.restore()

    def _call(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        cuts = self._cuts
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        if self._cuts != cuts:  # cut while connecting upstream: this connection is cut too
            client_w.transport.abort()
            up_w.transport.abort()
            return
        self._writers.update((client_w, up_w))
        try:
            await asyncio.gather(self._pipe(client_r, up_w), self._pipe(up_r, client_w))
        finally:
            self._writers.discard(client_w)
            self._writers.discard(up_w)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, sock=self._sock)

    async def _cut(self) -> None:
        self._cuts += 1
        if self._server is not None:
            self._server.close()  # stops accepting; the socket is closed with it
            self._server = None
        for w in list(self._writers):
            w.transport.abort()  # RST, like a dropped network path
        self._writers.clear()

    def restore(self) -> None:
        if self._server is None:
            if self._sock.fileno() == -1:  # closed by the server's close(): bind the port again
                self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self._sock.bind(("127.0.0.1", self.port))
            self._call(self._listen())

    def cut(self) -> None:
        self._call(self._cut())
        # Keep the port bound but not listening, so connecting is refused at once.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))

    def close(self) -> None:
        try:
            self._call(self._cut())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self._sock.close()


# ---------------------------------------------------------------------------------------------
# processes


def rss_kib(pid: int) -> int:
    """Resident set size of `pid` in KiB (`VmRSS` of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def memory_breakdown(pid: int) -> dict[str, int]:
    """Rss, anonymous, file-backed and shared memory of `pid` in KiB (/proc/PID/smaps_rollup),
    to tell the heap from mapped files (SQLite's shared memory, the binary itself)."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB" and parts[0].rstrip(":") in (
                    "Rss", "Anonymous", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty"):
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def assert_no_secrets(text: str, *extra: str) -> None:
    """None of the session's secrets (admin key, upstream key) nor `extra` (virtual keys,
    source tokens) appears in `text`, whole or by its last 12 characters."""
    for s in (ADMIN_KEY, UPSTREAM_KEY, *extra):
        if not s:
            continue
        leaked = [line for line in text.splitlines() if s in line or s[-12:] in line]
        assert not leaked, f"a secret ({s[:10]}...) was printed:\n" + "\n".join(leaked)[:2000]

"""An OpenAI-compatible Chat Completions server on loopback, for tests and benchmarks.

It runs on its own thread and event loop (like a remote server would), streams SSE
chunks slowly, and records every connection: when it opened, which requests came,
how many tokens went out, and when the client went away. A script of responses
makes it fail in the ways real endpoints do (errors before the first token, a stream
that breaks, a hang, garbage).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Reply:
    """How to answer one request."""

    text: str = "Hello there. This is a slow answer from the loopback server. It goes on for a while."
    status: int = 200
    first_token_s: float = 0.05  # time to first token
    token_s: float = 0.02  # between tokens
    break_after_tokens: int | None = None  # close the connection mid-stream
    hang: bool = False  # accept, then never answer
    garbage: bool = False  # send a chunk that is not JSON


@dataclass
class Connection:
    """What the server saw of one client connection."""

    opened_at: float
    requests: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    requested_at: list[float] = field(default_factory=list)  # when each request had arrived
    token_times: list[float] = field(default_factory=list)  # when each token went out
    token_texts: list[str] = field(default_factory=list)
    tokens_sent: int = 0
    closed_by_client_at: float | None = None
    finished_at: float | None = None  # the server ended the response itself
    leftover: bytes = b""  # a byte of the next request, read while watching for a disconnect


class LoopbackLLM:
    """Start with `with LoopbackLLM([Reply(...), ...]) as server:`; `server.base_url`."""

    def __init__(self, replies: list[Reply] | None = None) -> None:
        self.replies = list(replies or [])
        self.default = Reply()
        self.connections: list[Connection] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="loopback-llm", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._handlers: set[asyncio.Task] = set()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def first_sentence_s(self) -> list[float]:
        """Per request: from its arrival to the token that ended its first sentence."""
        out = []
        for conn in self.connections:
            if not conn.requested_at or not conn.token_times:
                continue
            end = next((i for i, t in enumerate(conn.token_texts) if t.rstrip()[-1:] in ".!?"), None)
            if end is not None:
                out.append(conn.token_times[end] - conn.requested_at[0])
        return out

    @property
    def open_connections(self) -> int:
        """Connections neither side has closed yet."""
        return sum(1 for c in self.connections if c.closed_by_client_at is None and c.finished_at is None)

    def __enter__(self) -> LoopbackLLM:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.port = started.result(timeout=10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def wait_for(self, predicate, timeout_s: float = 5.0) -> bool:
        """Poll (from the test's thread) until `predicate()` holds; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.002)
        return predicate()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(opened_at=time.monotonic())
        self.connections.append(conn)
        self._handlers.add(asyncio.current_task())
        try:
            while True:
                request = await self._read_request(reader, conn)
                if request is None:
                    conn.closed_by_client_at = time.monotonic()
                    return
                reply = self.replies.pop(0) if self.replies else self.default
                if not await self._respond(reply, reader, writer, conn):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            conn.closed_by_client_at = conn.closed_by_client_at or time.monotonic()
        finally:
            writer.close()
            self._handlers.discard(asyncio.current_task())

    async def _read_request(self, reader, conn: Connection) -> dict | None:
        prefix, conn.leftover = conn.leftover, b""
        try:
            head = prefix + await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # the client closed the idle connection
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        conn.headers.append(headers)
        conn.requested_at.append(time.monotonic())
        request = json.loads(body or b"{}")
        conn.requests.append(request)
        return request

    async def _respond(self, reply: Reply, reader, writer, conn: Connection) -> bool:
        """Send one reply; False when the connection is over."""
        # Watch for the client going away while we stream (EOF on the socket).
        gone = asyncio.ensure_future(reader.read(1))
        try:
            if reply.hang:
                await gone
                conn.closed_by_client_at = time.monotonic()
                return False
            if reply.status != 200:
                body = json.dumps({"error": {"message": "scripted failure", "type": "server_error"}}).encode()
                writer.write(f"HTTP/1.1 {reply.status} Error\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
                return await self._still_open(gone, conn)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            await writer.drain()
            tokens = [w if i == 0 else " " + w for i, w in enumerate(reply.text.split(" "))]
            for i, token in enumerate(tokens):
                delay = reply.first_token_s if i == 0 else reply.token_s
                if await self._client_left(gone, delay, conn):
                    return False
                if reply.break_after_tokens is not None and i >= reply.break_after_tokens:
                    conn.finished_at = time.monotonic()
                    return False  # drop the connection mid-stream
                data = "{not json" if reply.garbage else json.dumps({
                    "id": "chatcmpl-loopback", "object": "chat.completion.chunk", "created": 0,
                    "model": conn.requests[-1].get("model", ""),
                    "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}]})
                await self._chunk(writer, f"data: {data}\n\n")
                conn.tokens_sent += 1
                conn.token_times.append(time.monotonic())
                conn.token_texts.append(token)
            await self._chunk(writer, "data: [DONE]\n\n")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            conn.finished_at = time.monotonic()
            return await self._still_open(gone, conn)
        finally:
            await self._settle(gone)

    @staticmethod
    async def _settle(gone: asyncio.Future) -> bytes | None:
        """Stop watching for a disconnect; what the watcher read, if it finished first."""
        if not gone.done():
            gone.cancel()
        try:
            return await gone
        except asyncio.CancelledError:
            return None

    @staticmethod
    async def _chunk(writer, text: str) -> None:
        data = text.encode()
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()

    @staticmethod
    async def _client_left(gone: asyncio.Future, delay_s: float, conn: Connection) -> bool:
        done, _ = await asyncio.wait({gone}, timeout=delay_s)
        if done and gone.result() == b"":
            conn.closed_by_client_at = time.monotonic()
            return True
        return False

    async def _still_open(self, gone: asyncio.Future, conn: Connection) -> bool:
        """After a full reply: keep the connection for the next request unless the client left."""
        data = await self._settle(gone)
        if data == b"":
            conn.closed_by_client_at = time.monotonic()
            return False
        conn.leftover = data or b""  # maybe the first byte of the next request
        return True

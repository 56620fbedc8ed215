"""A fault-injecting HTTP proxy on loopback, between a client library and a test server.

Point the client's ``endpoint_url`` at `FaultProxy.endpoint_url`; requests pass through
to the upstream server unchanged until a fault is armed::

    with FaultProxy(s3_server.endpoint_url) as proxy:
        target = open_target("s3://bucket/run", **s3_server.storage_options(
            endpoint_url=proxy.endpoint_url))
        proxy.answer_next(2, 503, S3_SLOW_DOWN)     # the next two requests get 503 SlowDown
        backup(path, target=target)                 # retried, then succeeds
        assert proxy.count(status=503) == 2

Faults:

- headers dropped on the way (`FaultProxy.strip_header()`: a server ignoring a condition),
  or an answer's header rewritten (`FaultProxy.rewrite_header()`: a wrong ETag);
- canned answers for the next K requests (any status, headers and body: 503 SlowDown, 500,
  429 with ``Retry-After``, 403 with a Drive reason), or for each request with a seeded
  probability (`FaultProxy.answer_randomly()`);
- a connection reset after N bytes of a request body (`FaultProxy.reset_after()`);
- a response lost after the server acted on the request (`FaultProxy.lose_responses()`,
  or for matching requests only, `FaultProxy.lose_matching()`);
- accept-then-silence: the request is read and never answered (`FaultProxy.silence_next()`);
- refused connections: every new connection is reset at once (`FaultProxy.refusing`);
- added latency (`FaultProxy.latency`) and a bandwidth cap (`FaultProxy.bandwidth`);
- a hook run after the K-th request reached the server (`FaultProxy.after_request()`),
  which crash trials use to SIGKILL a client at that instant.

Every request is logged (`FaultProxy.log`) so a test can count retries. Faults are
consumed in order and random ones come from a seeded generator, so runs are deterministic.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import struct
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from .loopback import LoopbackServer, QuietThreadingHTTPServer, shut_down

__all__ = [
    "S3_NOT_IMPLEMENTED",
    "S3_SLOW_DOWN",
    "CannedAnswer",
    "FaultProxy",
    "LoggedRequest",
    "gcs_error",
]

#: S3's answer when it throttles (with status 503).
S3_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


#: S3's answer to a request for a feature the server lacks (with status 501).
S3_NOT_IMPLEMENTED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NotImplemented</Code>'
    b"<Message>A header you provided implies functionality that is not implemented</Message>"
    b"</Error>"
)


def gcs_error(status: int, reason: str, message: str = "injected") -> bytes:
    """A Google JSON API error body."""
    import json

    return json.dumps(
        {"error": {"code": status, "message": message, "errors": [{"reason": reason}]}}
    ).encode()


@dataclass
class CannedAnswer:
    """A response the proxy gives instead of forwarding."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggedRequest:
    """One request the proxy saw, and what became of it."""

    method: str
    path: str
    status: int  # the status sent back; 0 if the connection was reset
    injected: bool  # answered or cut by the proxy rather than the upstream server
    body_bytes: int = 0  # the request body forwarded upstream
    client: str = ""  # the request's User-Agent: which HTTP stack sent it
    range: str = ""  # the request's Range header: which bytes it asked for


_WRITES = frozenset({"PUT", "POST", "PATCH", "DELETE"})


class FaultProxy(LoopbackServer):
    """An HTTP proxy on 127.0.0.1 and a free port, forwarding to ``upstream``."""

    def __init__(self, upstream: str, *, seed: int = 0) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self._rng = random.Random(seed)  # noqa: S311 - reproducible faults, not secrets
        self._random_answer: tuple[float, CannedAnswer] | None = None
        self._silent = 0
        self._hooks: dict[int, Callable[[], None]] = {}
        self._path_hooks: list[tuple[str, Callable[[], None]]] = []
        self._matching: list[list[Any]] = []  # [path part, how many to let by, answer]
        self._released = threading.Event()
        self._read_only: CannedAnswer | None = None
        self._unsupported: dict[tuple[str, str], CannedAnswer] = {}
        self._arrivals = 0
        self._planned: dict[int, CannedAnswer | None] = {}
        #: Reset every new connection at once (a store that refuses connections).
        self.refusing = False
        #: Cap on bytes per second through the proxy, each way (None: no cap).
        self.bandwidth: float | None = None
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._answers: deque[CannedAnswer] = deque()
        self._resets: deque[int] = deque()
        self._lost_responses = 0
        # [path part, method or None, how many left, every how many, how many seen]
        self._losing: list[list[Any]] = []
        self._stripped: set[str] = set()  # header names not forwarded
        self._rewrites: list[list[Any]] = []  # [path part, header, value, how many left]
        self._truncated_gets = 0
        self._truncate_keep = 16
        self._truncate_reset = True
        self._truncate_path = ""
        self.latency = 0.0
        self.log: list[LoggedRequest] = []
        #: Faults injected since the proxy was made (not reset by `clear()`).
        self.injected_total = 0
        self._httpd: QuietThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()  # open client connections

    @property
    def endpoint_url(self) -> str:
        assert self._httpd is not None, "start the proxy first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def answer_next(
        self, count: int, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next ``count`` requests with ``status`` instead of forwarding them."""
        with self._lock:
            self._answers.extend(
                CannedAnswer(status, body, dict(headers or {})) for _ in range(count)
            )

    def refuse_writes(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        """Answer every PUT, POST, PATCH and DELETE with ``status`` until `clear()`, and
        forward reads: credentials that may read but not write."""
        with self._lock:
            self._read_only = CannedAnswer(status, body, dict(headers or {}))

    def answer_matching(
        self,
        path_contains: str,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        nth: int = 1,
    ) -> None:
        """Answer the ``nth`` request from now whose path holds ``path_contains`` with
        ``status`` (the second chunk of a resumable upload, say), forwarding every other."""
        with self._lock:
            answer = CannedAnswer(status, body, dict(headers or {}))
            self._matching.append([path_contains, nth - 1, answer])

    def refuse_feature(
        self, header: str, path_contains: str, status: int, body: bytes = b""
    ) -> None:
        """Answer every request that carries ``header`` and whose path holds ``path_contains``
        with ``status`` until `clear()`: a server without that feature (``x-amz-copy-source``
        with ``partNumber=``: no ``UploadPartCopy``)."""
        with self._lock:
            self._unsupported[(header.lower(), path_contains)] = CannedAnswer(status, body)

    def strip_header(self, header: str) -> None:
        """Forward every request without ``header`` until `clear()`: a server that ignores
        it (``If-None-Match``: an S3 clone that overwrites where a create-only write must
        fail)."""
        with self._lock:
            self._stripped.add(header.lower())

    def rewrite_header(self, path_contains: str, header: str, value: str, count: int = 1) -> None:
        """Forward the next ``count`` requests whose path holds ``path_contains``, then set
        ``header`` of the server's answer to ``value``: a server (or a middlebox) that acted
        on the request and answered wrongly (an S3 ``ETag`` that is not the stored bytes')."""
        with self._lock:
            self._rewrites.append([path_contains, header, value, count])

    def _rewritten(self, path: str, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        with self._lock:
            for entry in self._rewrites:
                part, header, value, left = entry
                if left and part in path:
                    entry[3] -= 1
                    kept = [(k, v) for k, v in headers if k.lower() != header.lower()]
                    return [*kept, (header, value)]
            return headers

    def reset_after(self, body_bytes: int) -> None:
        """Reset the connection of the next request with a body once ``body_bytes`` of it
        have arrived (a connection dropped mid-upload)."""
        with self._lock:
            self._resets.append(body_bytes)

    def fault_nth(
        self,
        nth: int,
        status: int | None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the ``nth`` request to arrive from now (1: the next) with ``status``, or
        reset its connection when ``status`` is None, and forward every other: sweeping
        ``nth`` over a run's requests fails each of them in turn."""
        with self._lock:
            planned = None if status is None else CannedAnswer(status, body, dict(headers or {}))
            self._planned[self._arrivals + nth] = planned

    def _take_planned(self) -> tuple[bool, CannedAnswer | None]:
        with self._lock:
            self._arrivals += 1
            if self._arrivals in self._planned:
                return True, self._planned.pop(self._arrivals)
            return False, None

    def truncate_gets(
        self, count: int, keep_bytes: int = 16, *, reset: bool = True, path_contains: str = ""
    ) -> None:
        """Forward the next ``count`` GETs whose answer has a body (and whose path contains
        ``path_contains``), then send the full length in the headers but only ``keep_bytes``
        of the body, and reset the connection (or, with ``reset=False``, close it cleanly): a
        download cut off half-way."""
        with self._lock:
            self._truncated_gets += count
            self._truncate_keep = keep_bytes
            self._truncate_reset = reset
            self._truncate_path = path_contains

    def _take_truncation(self, method: str, path: str, size: int) -> int | None:
        with self._lock:
            if method != "GET" or size <= self._truncate_keep or not self._truncated_gets:
                return None
            if self._truncate_path not in path:
                return None
            self._truncated_gets -= 1
            return self._truncate_keep

    def lose_responses(self, count: int) -> None:
        """Forward the next ``count`` requests, then reset the connection instead of answering:
        the server did the work, the client never hears of it."""
        with self._lock:
            self._lost_responses += count

    def lose_matching(
        self, path_contains: str, count: int, *, method: str | None = None, every: int = 1
    ) -> None:
        """Like `lose_responses()`, for ``count`` of the requests whose path (query included)
        holds ``path_contains`` and, if given, whose method is ``method``: every ``every``-th
        of them from now (1: each). The answer to a create is lost after the server stored
        it, say."""
        with self._lock:
            self._losing.append([path_contains, method, count, every, 0])

    def _take_lost_matching(self, method: str, path: str) -> bool:
        with self._lock:
            for entry in self._losing:
                part, wanted, left, every, seen = entry
                if left and part in path and wanted in (None, method):
                    entry[4] = seen = seen + 1
                    if seen % every == 0:
                        entry[2] -= 1
                        return True
            return False

    def answer_randomly(
        self,
        probability: float,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer each request with ``status`` with ``probability`` (seeded, so reproducible)."""
        with self._lock:
            self._random_answer = (probability, CannedAnswer(status, body, dict(headers or {})))

    def silence_next(self, count: int) -> None:
        """Read the next ``count`` requests and never answer them (until `stop()`): the
        client's read timeout is what ends them."""
        with self._lock:
            self._silent += count

    def release_silenced(self) -> None:
        """End every silenced request now (with a reset); later silences wait afresh."""
        with self._lock:
            released, self._released = self._released, threading.Event()
        released.set()

    def after_request(self, nth: int, hook: Callable[[], None]) -> None:
        """Run ``hook`` once the ``nth`` request from now has been acted on by the server,
        before its answer is relayed (for killing a client at that instant)."""
        with self._lock:
            self._hooks[len(self.log) + nth] = hook

    def after_matching(self, path_contains: str, hook: Callable[[], None]) -> None:
        """Run ``hook`` once, after the first request whose path contains ``path_contains``
        has been acted on by the server, before its answer is relayed."""
        with self._lock:
            self._path_hooks.append((path_contains, hook))

    def _take_silence(self) -> bool:
        with self._lock:
            if self._silent:
                self._silent -= 1
                return True
            return False

    def _take_lost_response(self) -> bool:
        with self._lock:
            if self._lost_responses:
                self._lost_responses -= 1
                return True
            return False

    def clear(self) -> None:
        """Disarm every pending fault and forget the log."""
        with self._lock:
            self._answers.clear()
            self._resets.clear()
            self._lost_responses = 0
            self._losing.clear()
            self._stripped.clear()
            self._rewrites.clear()
            self._truncated_gets = 0
            self._random_answer = None
            self._read_only = None
            self._unsupported.clear()
            self._silent = 0
            self._hooks.clear()
            self._path_hooks.clear()
            self._matching.clear()
            self._planned.clear()
            self.log.clear()
            self.latency = 0.0
            self.bandwidth = None
            self.refusing = False

    def count(self, *, status: int | None = None, injected: bool | None = None) -> int:
        """How many logged requests match."""
        with self._lock:
            return sum(
                1
                for r in self.log
                if (status is None or r.status == status)
                and (injected is None or r.injected == injected)
            )

    def _next_answer(self, method: str, path: str, header_names: set[str]) -> CannedAnswer | None:
        with self._lock:
            for (header, part), answer in self._unsupported.items():
                if header in header_names and part in path:
                    return answer
            for planned in self._matching:
                if planned[0] in path:
                    if planned[1] == 0:
                        self._matching.remove(planned)
                        matched: CannedAnswer = planned[2]
                        return matched
                    planned[1] -= 1
            if self._read_only is not None and method in _WRITES:
                return self._read_only
            if self._answers:
                return self._answers.popleft()
            if self._random_answer and self._rng.random() < self._random_answer[0]:
                return self._random_answer[1]
            return None

    def _throttle(self, size: int) -> None:
        if self.bandwidth:
            time.sleep(size / self.bandwidth)  # the fault itself: a slow link

    def _run_hook(self, number: int, path: str = "") -> None:
        with self._lock:
            hook = self._hooks.pop(number, None)
            matched = [h for h in self._path_hooks if h[0] in path]
            for entry in matched:
                self._path_hooks.remove(entry)
        if hook is not None:
            hook()
        for _, path_hook in matched:
            path_hook()

    def _next_reset(self, has_body: bool) -> int | None:
        with self._lock:
            return self._resets.popleft() if has_body and self._resets else None

    def _record(self, entry: LoggedRequest) -> int:
        """Log ``entry``; its number (1-based) in the log."""
        with self._lock:
            self.log.append(entry)
            self.injected_total += entry.injected
            return len(self.log)

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with proxy._lock:
                    proxy._connections.add(self.connection)

            def finish(self) -> None:
                with proxy._lock:
                    proxy._connections.discard(self.connection)
                super().finish()

            def handle(self) -> None:
                if proxy.refusing:
                    proxy._record(LoggedRequest("CONNECT", "", 0, True))
                    self._reset()
                    return
                super().handle()

            def _relay(self) -> None:
                if proxy.latency:
                    time.sleep(proxy.latency)
                length = int(self.headers.get("Content-Length") or 0)
                chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
                planned, answer = proxy._take_planned()
                if planned:
                    self._read_chunked() if chunked else self.rfile.read(length)
                    status = answer.status if answer is not None else 0
                    self._injected(status)
                    if answer is None:
                        self._reset()
                    else:
                        self._send(answer.status, list(answer.headers.items()), answer.body)
                    return
                reset_at = proxy._next_reset(length > 0 or chunked)
                if reset_at is not None:
                    self.rfile.read(min(reset_at, length) if length else reset_at)
                    self._injected(0)
                    self._reset()
                    return
                body = self._read_chunked() if chunked else self.rfile.read(length)
                if not chunked and len(body) < length:
                    # The client went away mid-request: forward nothing, as a network would.
                    self.close_connection = True
                    return
                proxy._throttle(len(body))
                if proxy._take_silence():
                    released = proxy._released
                    self._injected(0)
                    released.wait()
                    self._reset()
                    return
                answer = proxy._next_answer(
                    self.command, self.path, {h.lower() for h in self.headers}
                )
                if answer is not None:
                    self._injected(answer.status)
                    self._send(answer.status, list(answer.headers.items()), answer.body)
                    return
                status, headers, payload = self._forward(body)
                headers = proxy._rewritten(self.path, headers)
                proxy._throttle(len(payload))
                if proxy._take_lost_response() or proxy._take_lost_matching(
                    self.command, self.path
                ):
                    self._injected(0)
                    self._reset()
                    return
                keep = proxy._take_truncation(self.command, self.path, len(payload))
                if keep is not None:
                    self._injected(status)
                    self._send(status, headers, payload, keep=keep)
                    if proxy._truncate_reset:
                        self._reset()
                    else:
                        self.close_connection = True
                    return
                agent, asked = self.headers.get("User-Agent", ""), self.headers.get("Range", "")
                number = proxy._record(
                    LoggedRequest(self.command, self.path, status, False, len(body), agent, asked)
                )
                proxy._run_hook(number, self.path)
                self._send(status, headers, payload)

            def _injected(self, status: int) -> None:
                """Log this request as answered (or cut) by the proxy."""
                agent, asked = self.headers.get("User-Agent", ""), self.headers.get("Range", "")
                proxy._record(
                    LoggedRequest(self.command, self.path, status, True, client=agent, range=asked)
                )

            def _read_chunked(self) -> bytes:
                data = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline().strip():  # trailers
                            pass
                        return bytes(data)
                    data += self.rfile.read(size)
                    self.rfile.readline()

            def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
                upstream = http.client.HTTPConnection(*proxy._upstream, timeout=60)
                try:
                    headers = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in ("transfer-encoding", "connection", "content-length")
                        and k.lower() not in proxy._stripped
                    }
                    if body or self.command in ("POST", "PUT", "PATCH"):
                        headers["Content-Length"] = str(len(body))
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    kept = [
                        (k, v)
                        for k, v in response.getheaders()
                        if k.lower() not in ("transfer-encoding", "connection", "content-length")
                    ]
                    if self.command == "HEAD":
                        length = response.getheader("Content-Length")
                        if length is not None:
                            kept.append(("Content-Length", length))
                    return response.status, kept, payload
                finally:
                    upstream.close()

            def _send(
                self,
                status: int,
                headers: list[tuple[str, str]],
                body: bytes,
                keep: int | None = None,
            ) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                if self.command != "HEAD" or not any(
                    k.lower() == "content-length" for k, _ in headers
                ):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body if keep is None else body[:keep])
                    self.wfile.flush()

            def _reset(self) -> None:
                # SO_LINGER 0: close() sends RST, as a dropped connection does.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _relay

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = QuietThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, name="fault-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop as a server that went away: the port closed (a new connection is refused)
        and every connection it held dropped, kept-alive ones included."""
        self.release_silenced()  # silenced requests end with a reset
        shut_down(self._httpd)
        self._httpd = None
        with self._lock:
            held, self._connections = self._connections, set()
        for connection in held:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

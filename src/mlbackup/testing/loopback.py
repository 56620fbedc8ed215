"""The base of our test servers: each listens on 127.0.0.1 and works as a ``with`` block."""

from __future__ import annotations

import sys
from http.server import HTTPServer
from socketserver import ThreadingMixIn
from typing import Any, TypeVar

from mlbackup.closing import ClosingContext

__all__ = ["LoopbackServer", "QuietHTTPServer", "QuietThreadingHTTPServer", "shut_down"]

_Self = TypeVar("_Self", bound="LoopbackServer")


class LoopbackServer(ClosingContext):
    """``with Server() as server:`` starts it, and stops it on the way out."""

    def start(self: _Self) -> _Self:
        """Start serving; returns ``self``."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving."""
        raise NotImplementedError

    def close(self, *args: Any, **kwargs: Any) -> None:
        self.stop()

    def __enter__(self: _Self) -> _Self:
        return self.start()


class QuietHTTPServer(HTTPServer):
    """An ``HTTPServer`` that does not print a traceback when a client hangs up mid-request
    (clients do, when a test ends or a fault is injected), and that queues many connections:
    with the default backlog of 5, a client opening 8 at once has SYNs dropped and waits a
    second for each retransmission."""

    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class QuietThreadingHTTPServer(ThreadingMixIn, QuietHTTPServer):
    """`QuietHTTPServer` serving each connection in its own thread."""

    daemon_threads = True


def shut_down(httpd: HTTPServer | None) -> None:
    """Stop a ``serve_forever`` loop running in another thread and close its socket."""
    if httpd is not None:
        httpd.shutdown()
        httpd.server_close()

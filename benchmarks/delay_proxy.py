"""A TCP proxy on loopback that puts a store far away: ``delay`` seconds each way.

    python benchmarks/delay_proxy.py UPSTREAM_PORT DELAY_SECONDS   # prints its own port

This kernel has no ``netem``, so the harness runs every S3 client of its latency point through
this proxy. Each chunk of bytes is held ``delay`` seconds before it is passed on, in both
directions, without holding up the chunks behind it (a long link carries many bytes at once);
a new connection's first bytes wait one extra round trip, as a TCP handshake would. Bandwidth is
not limited. The harness reads the proxy's CPU time from ``/proc`` around each run, and runs a
peer through it at zero delay, so its own cost is known.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

CHUNK = 256 * 1024


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    not_before: float,
) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds late."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    delivering = asyncio.ensure_future(deliver())
    try:
        while True:
            data = await reader.read(CHUNK)
            queue.put_nowait((max(loop.time() + delay, not_before), data))
            if not data:
                break
        await delivering
    except (ConnectionError, OSError):
        delivering.cancel()


async def _serve(upstream_port: int, delay: float) -> None:
    async def connection(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        handshake = loop.time() + 2 * delay  # the round trip a real connect would cost
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(
                _pump(client_r, server_w, delay, handshake + delay),
                _pump(server_r, client_w, delay, handshake),
            )
        finally:
            for w in (client_w, server_w):
                w.close()

    server = await asyncio.start_server(connection, "127.0.0.1", 0, backlog=256)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    async with server:
        await server.serve_forever()


class DelayProxy:
    """The proxy as a child process of the harness, in front of ``endpoint``."""

    def __init__(self, endpoint: str, delay: float) -> None:
        self.upstream_port = int(endpoint.rsplit(":", 1)[1].strip("/"))
        self.delay = delay
        self._process: subprocess.Popen[str] | None = None
        self.endpoint_url = ""

    def start(self) -> DelayProxy:
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(self.upstream_port), str(self.delay)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # asyncio's notes on connections cut by the stop
            text=True,
        )
        assert self._process.stdout is not None
        self.endpoint_url = f"http://127.0.0.1:{self._process.stdout.readline().strip()}"
        return self

    def cpu_seconds(self) -> float:
        """The proxy's CPU time so far (user and system)."""
        assert self._process is not None
        fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)


def main() -> None:
    upstream_port, delay = int(sys.argv[1]), float(sys.argv[2])
    started = time.monotonic()
    try:
        asyncio.run(_serve(upstream_port, delay))
    except KeyboardInterrupt:
        print(f"served {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

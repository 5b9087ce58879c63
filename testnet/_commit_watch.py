"""Learn when transactions commit from a node's ``/websocket`` block feed, in a thread.

The network benchmark used to learn of commits only by polling a node's API (``status``, then
``block`` per new height, every 50 ms) through the same event loop that admits the load, so
its latency figures included up to ~0.3 s of its own observation delay. A subscriber to the
block feed hears of each block when the node commits it. :class:`CommitWatcher` runs one such
subscription in a daemon thread (the benchmark's main loop is synchronous) and records, for
every transaction hash, the first time a committed block carrying it arrived, and each
block's height and timestamp.

The feed drops blocks for a subscriber that falls behind (the node bounds each queue), so the
benchmark keeps polling as well, for the heights the feed did not bring, and takes the
earlier of the two times for each transaction.

WebSocket framing is wsproto's (the sans-IO WebSocket library Hypercorn itself serves with);
the socket is a plain blocking one with a short timeout so :meth:`CommitWatcher.stop` is
prompt. Bad or unexpected frames end the watch and are counted in ``errors``: the poller then
covers alone.

Who calls it: :mod:`testnet.bench`.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

__all__ = ["CommitWatcher"]

#: Largest text message accepted from the feed (one block summary).
MESSAGE_BYTES_MAX = 16 * 1024 * 1024


class CommitWatcher:
    """Subscribe to ``<url>/websocket`` and record when each transaction hash committed.

    Args:
        url: a node's API base URL (``http://host:port``).
        seen_at: where ``hash -> first commit time`` is recorded (shared with the caller;
            only ``setdefault`` is used, so the earlier of two observers wins).
    """

    def __init__(self, url: str, seen_at: dict[str, float]) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.seen_at = seen_at
        self.blocks = 0
        self.timestamps: dict[int, int] = {}   # height -> block timestamp (ms), as fed
        self.errors: list[str] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-watch", daemon=True)

    def start(self, timeout: float = 10.0) -> bool:
        """Start the subscription; True once the node accepted it within ``timeout``."""
        self._thread.start()
        return self.connected.wait(timeout)

    def stop(self) -> None:
        """End the subscription (returns within about half a second)."""
        self._stop.set()
        self._thread.join(2.0)

    def _run(self) -> None:
        try:
            with socket.create_connection((self.host, self.port), timeout=5) as sock:
                sock.settimeout(0.5)
                self._watch(sock)
        except (OSError, ValueError, RuntimeError) as e:
            self.errors.append(f"{type(e).__name__}: {e}")

    def _watch(self, sock: socket.socket) -> None:
        ws = WSConnection(ConnectionType.CLIENT)
        sock.sendall(ws.send(Request(host=f"{self.host}:{self.port}", target="/websocket")))
        text: list[str] = []
        size = 0
        while not self._stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    self.connected.set()
                elif isinstance(event, TextMessage):
                    text.append(event.data)
                    size += len(event.data)
                    if size > MESSAGE_BYTES_MAX:
                        raise ValueError("block summary larger than MESSAGE_BYTES_MAX")
                    if event.message_finished:
                        self._on_block("".join(text), time.time())
                        text, size = [], 0
                elif isinstance(event, Ping):
                    sock.sendall(ws.send(event.response()))
                elif isinstance(event, CloseConnection | RejectConnection):
                    self.errors.append(f"feed closed: {event!r}")
                    return

    def _on_block(self, message: str, now: float) -> None:
        block = json.loads(message)
        if not isinstance(block, dict):
            return
        for tx_hash in block.get("txs", []):
            if isinstance(tx_hash, str):
                self.seen_at.setdefault(tx_hash, now)
        height, timestamp = block.get("height"), block.get("timestamp")
        if isinstance(height, int) and isinstance(timestamp, int):
            self.timestamps[height] = timestamp
        self.blocks += 1

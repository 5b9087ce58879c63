"""The trace digest: SHA-256 over a canonical log of everything the world did.

Each event becomes one line ``tick kind from to detail`` (message bytes appear as the first
16 hex digits of their SHA-256; deliveries as ``seq:sha``). The digest is over those lines
in order, so two runs with the same seed must give the same digest; if they don't, something
depends on a ``set`` order, ``hash()``, the wall clock or an unseeded RNG.

With ``keep_lines`` the last ``lines_max`` lines are kept for ``phalanx sim --trace``.

Called by: :mod:`testnet.sim.world`.
"""

from __future__ import annotations

import hashlib
from collections import deque

__all__ = ["Trace", "short_hash"]


_HASHED_BYTES_MAX = 64 * 1024


def short_hash(data: bytes) -> str:
    """First 16 hex digits of SHA-256; huge inputs hash their length, head and tail only."""
    if len(data) > _HASHED_BYTES_MAX:
        head = data[:4096] + data[-4096:] + len(data).to_bytes(8, "big")
        return "big" + hashlib.sha256(head).hexdigest()[:13]
    return hashlib.sha256(data).hexdigest()[:16]


class Trace:
    def __init__(self, keep_lines: bool = False, lines_max: int = 20_000) -> None:
        self._hash = hashlib.sha256()
        self.events = 0
        self.lines: deque[str] | None = deque(maxlen=lines_max) if keep_lines else None

    def record(self, tick: int, kind: str, src: int, dst: int, detail: str = "") -> None:
        line = f"{tick} {kind} {src} {dst} {detail}\n"
        self._hash.update(line.encode())
        self.events += 1
        if self.lines is not None:
            self.lines.append(line.rstrip("\n"))

    def digest(self) -> str:
        return self._hash.hexdigest()

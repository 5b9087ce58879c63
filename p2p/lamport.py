"""A Lamport logical clock (sans-IO).

``tick()`` before every send, ``observe(ts)`` on every receive (``max(local, ts) + 1``).
Every p2p message envelope carries the sender's timestamp, and log lines print it, so events
across nodes can be put in a causal order when reading logs.

Invariant: the clock only moves forward and never exceeds :data:`LAMPORT_MAX`. Timestamps
from peers above that bound are refused by the envelope decoder, and :meth:`observe` adopts
a peer's timestamp only up to :data:`LAMPORT_OBSERVE_MAX` (half the range), so no peer can
push our clock to where a later ``tick`` would overflow; only a faulty peer sends more, and
then only the order of log lines is affected.

Owned by ``p2p.peers.PeerManager`` (one clock per node).
"""

from __future__ import annotations

__all__ = ["LAMPORT_MAX", "LAMPORT_OBSERVE_MAX", "LamportClock"]

#: Largest timestamp we send or accept (2**63 - 1: ~9e18 events before it could matter).
LAMPORT_MAX = (1 << 63) - 1
#: Largest peer timestamp :meth:`LamportClock.observe` adopts (leaves 2**62 ticks of room).
LAMPORT_OBSERVE_MAX = LAMPORT_MAX >> 1


class LamportClock:
    """A Lamport clock.

    Args:
        start: the initial time (for example restored after a restart).
    """

    def __init__(self, start: int = 0) -> None:
        if not 0 <= start <= LAMPORT_MAX:
            raise ValueError(f"Lamport start out of range: {start}")
        self._time = start

    @property
    def time(self) -> int:
        """The current timestamp (the last one issued or observed)."""
        return self._time

    def tick(self) -> int:
        """Advance for a local or send event and return the new timestamp."""
        if self._time >= LAMPORT_MAX:
            raise OverflowError("Lamport clock exhausted")
        self._time += 1
        return self._time

    def observe(self, timestamp: int) -> int:
        """Merge a received timestamp: ``max(local, timestamp) + 1``; return the new time.

        ``timestamp`` counts as at most :data:`LAMPORT_OBSERVE_MAX`.

        Args:
            timestamp: the sender's timestamp, already bounded by the envelope decoder.

        Raises:
            ValueError: ``timestamp`` is outside ``0..LAMPORT_MAX`` (a caller bug: the
                decoder refuses those).
        """
        if not 0 <= timestamp <= LAMPORT_MAX:
            raise ValueError(f"Lamport timestamp out of range: {timestamp}")
        adopted = min(timestamp, LAMPORT_OBSERVE_MAX)
        self._time = min(max(self._time, adopted) + 1, LAMPORT_MAX)
        return self._time

"""Vector clocks (Fidge/Mattern), sans-IO: stamps, comparison, a per-node clock, log merging.

Theory of operation
-------------------
A :class:`VectorStamp` maps node ids to counters (absent ids count 0). Node ``i`` keeps a
:class:`VectorClock`: ``tick()`` before a local or send event increments entry ``i``;
``observe(stamp)`` on receive takes the entry-wise maximum and then increments entry ``i``.
With that discipline the *vector characterization* holds: event ``a`` happened before ``b``
(``a -> b``) iff ``V(a) < V(b)`` (every entry ``<=`` and at least one ``<``); two events are
concurrent iff neither stamp is below the other. A Lamport clock (:mod:`p2p.lamport`) only
gives the one-way *clock condition* (``a -> b`` implies ``L(a) < L(b)``).

:func:`merge_logs` uses the characterization to merge the log lines of several nodes into
one order that respects happens-before (a topological order, ties broken by node id and
position, so the result is deterministic).

Invariants: a stamp has at most ``entries_max`` entries (:data:`VECTOR_ENTRIES_MAX` by
default), every counter is in ``0..LAMPORT_MAX``, entries are kept sorted by node id and
zero entries are never stored, so equal stamps have equal bytes. Stamps from peers that
break a bound raise :class:`InvalidVectorStamp` (a :class:`~p2p.errors.P2PError`).

Who calls it: :mod:`p2p.broadcast` (causal delivery), log merging tools, the simulator's
clock checks (``testnet.sim.algos.clocks``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import rlp
from rlp.sedes import CountableList, List, big_endian_int

from p2p.errors import P2PError
from p2p.lamport import LAMPORT_MAX, LAMPORT_OBSERVE_MAX

__all__ = [
    "VECTOR_ENTRIES_MAX",
    "InvalidVectorStamp",
    "VectorClock",
    "VectorStamp",
    "decode_vector_stamp",
    "merge_logs",
]

#: Most entries a stamp may carry (one per validator; generous for a permissioned network).
VECTOR_ENTRIES_MAX = 1024
_SEDES = CountableList(List([big_endian_int, big_endian_int], strict=True))

T = TypeVar("T")


class InvalidVectorStamp(P2PError):
    """Raised when a vector stamp (bytes or entries) breaks a bound or is not canonical."""


@dataclass(frozen=True, slots=True)
class VectorStamp:
    """An immutable vector timestamp: sorted ``(node, counter)`` pairs, zeros omitted.

    Build one with :meth:`of`; the constructor checks the canonical form.
    """

    entries: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if len(self.entries) > VECTOR_ENTRIES_MAX:
            raise InvalidVectorStamp(f"vector stamp has {len(self.entries)} entries")
        prev = -1
        for node, count in self.entries:
            if (
                isinstance(node, bool) or not isinstance(node, int)
                or isinstance(count, bool) or not isinstance(count, int)
            ):
                raise InvalidVectorStamp("vector stamp entries must be ints")
            if node <= prev or node < 0 or node > LAMPORT_MAX:
                raise InvalidVectorStamp("vector stamp nodes must be unique, sorted, >= 0")
            if not 1 <= count <= LAMPORT_MAX:
                raise InvalidVectorStamp(f"vector stamp counter out of range: {count}")
            prev = node

    @classmethod
    def of(cls, counters: Mapping[int, int]) -> VectorStamp:
        """Build the canonical stamp of a ``{node: counter}`` mapping (zeros dropped)."""
        return cls(tuple(sorted((n, c) for n, c in counters.items() if c != 0)))

    def get(self, node: int) -> int:
        """The counter of ``node`` (0 when absent)."""
        for n, c in self.entries:
            if n == node:
                return c
        return 0

    def as_dict(self) -> dict[int, int]:
        return dict(self.entries)

    def merge(self, other: VectorStamp) -> VectorStamp:
        """The entry-wise maximum of two stamps."""
        merged = self.as_dict()
        for n, c in other.entries:
            if c > merged.get(n, 0):
                merged[n] = c
        return VectorStamp.of(merged)

    def __le__(self, other: VectorStamp) -> bool:
        mine = other.as_dict()
        return all(c <= mine.get(n, 0) for n, c in self.entries)

    def __lt__(self, other: VectorStamp) -> bool:
        return self <= other and self != other

    def __ge__(self, other: VectorStamp) -> bool:
        return other <= self

    def __gt__(self, other: VectorStamp) -> bool:
        return other < self

    def happened_before(self, other: VectorStamp) -> bool:
        """``self -> other``: strictly below (the vector characterization of causality)."""
        return self < other

    def concurrent(self, other: VectorStamp) -> bool:
        """Neither stamp is below or equal to the other."""
        return not self <= other and not other <= self

    def encode(self) -> bytes:
        """Canonical RLP: a list of ``[node, counter]`` pairs sorted by node."""
        data: bytes = rlp.encode([[n, c] for n, c in self.entries])
        return data


def decode_vector_stamp(data: bytes) -> VectorStamp:
    """Decode a stamp strictly (canonical integers, sorted unique nodes, no zeros).

    Raises:
        InvalidVectorStamp: not the canonical encoding of a valid stamp.
    """
    if len(data) > VECTOR_ENTRIES_MAX * 20 + 9:
        raise InvalidVectorStamp("vector stamp bytes too long")
    try:
        pairs = rlp.decode(bytes(data), sedes=_SEDES, strict=True)
    except (rlp.exceptions.RLPException, TypeError, ValueError) as e:
        raise InvalidVectorStamp(f"vector stamp: {e}") from e
    stamp = VectorStamp(tuple((int(n), int(c)) for n, c in pairs))
    if stamp.encode() != bytes(data):
        raise InvalidVectorStamp("vector stamp: non-canonical encoding")
    return stamp


class VectorClock:
    """The vector clock of one node.

    Args:
        node: this node's id.
        start: an initial stamp (for example restored after a restart).
    """

    def __init__(self, node: int, start: VectorStamp | None = None) -> None:
        if isinstance(node, bool) or not 0 <= node <= LAMPORT_MAX:
            raise ValueError(f"node id out of range: {node}")
        self.node = node
        self._counters: dict[int, int] = start.as_dict() if start is not None else {}

    @property
    def stamp(self) -> VectorStamp:
        """The current stamp (of the last event)."""
        return VectorStamp.of(self._counters)

    def tick(self) -> VectorStamp:
        """A local or send event: increment this node's entry; return the new stamp."""
        own = self._counters.get(self.node, 0)
        if own >= LAMPORT_MAX:
            raise OverflowError("vector clock exhausted")
        self._counters[self.node] = own + 1
        return self.stamp

    def observe(self, stamp: VectorStamp) -> VectorStamp:
        """A receive event: merge ``stamp`` entry-wise, then tick; return the new stamp.

        A counter counts as at most :data:`~p2p.lamport.LAMPORT_OBSERVE_MAX`, so a faulty
        peer's stamp cannot leave this clock unable to tick.

        Raises:
            InvalidVectorStamp: the merge would exceed :data:`VECTOR_ENTRIES_MAX` entries.
        """
        merged = dict(self._counters)
        for n, c in stamp.entries:
            c = min(c, LAMPORT_OBSERVE_MAX)  # leave room to tick (see p2p.lamport)
            if c > merged.get(n, 0):
                merged[n] = c
        if len(merged) > VECTOR_ENTRIES_MAX:
            raise InvalidVectorStamp("vector clock would exceed its entry bound")
        self._counters = merged
        return self.tick()


def merge_logs(logs: Mapping[int, Sequence[tuple[VectorStamp, T]]]) -> list[tuple[int, T]]:
    """Merge per-node logs into one order consistent with happens-before.

    Each node's log must be in its own order (stamps increasing). The result lists
    ``(node, item)`` so that whenever ``V(a) < V(b)``, ``a`` comes first; concurrent lines are
    ordered by the sum of their stamp entries, then by node id, deterministically.

    Args:
        logs: ``{node: [(stamp, item), ...]}``.

    Returns:
        Every line of every log, once, in a causally consistent order.

    Raises:
        ValueError: a node's own log is not increasing (its stamps are corrupt).
    """
    for node, lines in logs.items():
        for (a, _), (b, _) in itertools.pairwise(lines):
            if not a < b:
                raise ValueError(f"log of node {node} is not in causal order")
    heads = {node: 0 for node in logs}
    out: list[tuple[int, T]] = []
    total = sum(len(lines) for lines in logs.values())
    while len(out) < total:
        ready: list[tuple[int, int, int]] = []
        for node in sorted(heads):
            i = heads[node]
            if i >= len(logs[node]):
                continue
            stamp = logs[node][i][0]
            blocked = any(
                heads[m] < len(logs[m]) and logs[m][heads[m]][0] < stamp
                for m in heads if m != node
            )
            if not blocked:
                ready.append((sum(c for _, c in stamp.entries), node, i))
        if not ready:  # impossible for well-formed stamps: the minimal head is never blocked
            raise ValueError("log stamps are cyclic")
        _, node, i = min(ready)
        out.append((node, logs[node][i][1]))
        heads[node] = i + 1
    return out


"""Clock synchronization, sans-IO: Cristian offsets from round trips, Berkeley averaging.

Theory of operation
-------------------
Clock readings enter only as :class:`ClockReading` inputs (the driver reads its clock in
microseconds and hands the value in); nothing here reads a clock.

*Cristian.* A client sends a :class:`TimeRequest` at local time ``t0``; the server answers
with its own time ``S`` in a :class:`TimeReply`; the reply arrives at local ``t1``. The
server read its clock somewhere inside the round trip, so the estimate
``offset = S + rtt/2 - t1`` (``rtt = t1 - t0``) is off by at most ``rtt/2``: that is the
``error_us`` every :class:`OffsetEstimate` carries (exact for drift-free clocks; with drift
``rho`` it grows by ``rho * rtt``). Of several estimates for one peer, the one with the
smallest round trip (the tightest bound) is kept.

*Berkeley.* A coordinator polls every peer with Cristian requests, takes its own offset as
0, drops *outliers* (offsets more than ``outlier_us`` from the median, e.g. a broken or lying
clock), averages the rest, and sends each replying node the signed adjustment that moves its
clock to that average (:class:`Adjust`). A single liar cannot drag the average further than
``outlier_us`` from the median of the honest majority.

:func:`median_time` (the lower median) and :func:`timestamp_within` bound a timestamp
around the validators' median time; the per-peer Cristian estimates are for ``net_info``.

Invariants: at most ``pending_max`` requests are outstanding (the oldest is forgotten
first); replies that answer no pending request, or whose round trip is negative or above
``rtt_us_max``, are dropped and counted; every kept estimate has ``error_us == rtt_us / 2``.

*Freshness.* :class:`OffsetTable` keeps, per peer, the last ``samples_max`` estimates with
the (monotonic) time they were taken, and reports the tightest one younger than
``age_max``: a peer whose clock jumps is re-measured within ``age_max`` instead of being
remembered by an old, tight estimate forever. :func:`median_offset_us` is the validators'
median time expressed as an offset from our clock (ours counts as 0).

Who calls it: the simulation :mod:`testnet.sim.clocksync_sim`, the node's clock-sync
service :mod:`p2p.clocksync_service` (per-peer offsets for ``net_info``, the median for the
block timestamp check in ``node.app``), and tests.
"""

from __future__ import annotations

import statistics
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import rlp
from rlp.sedes import List, big_endian_int

from p2p.errors import P2PError

__all__ = [
    "Adjust",
    "BerkeleyCoordinator",
    "BerkeleyRound",
    "ClockReading",
    "CristianClient",
    "InvalidClockMessage",
    "OffsetEstimate",
    "OffsetTable",
    "TimeReply",
    "TimeRequest",
    "decode_clock_message",
    "median_offset_us",
    "median_time",
    "timestamp_within",
]

_UINT64_MAX = (1 << 64) - 1
_Time = TypeVar("_Time", int, float)
_KIND_REQUEST, _KIND_REPLY, _KIND_ADJUST = 1, 2, 3
_SEDES = List([big_endian_int, big_endian_int, big_endian_int, big_endian_int,
               big_endian_int], strict=True)


class InvalidClockMessage(P2PError):
    """A clock-sync message from a peer is malformed (bad bytes or out-of-range fields)."""


def _uint(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _UINT64_MAX:
        raise InvalidClockMessage(f"{name} must be a uint64, got {value!r}")


@dataclass(frozen=True, slots=True)
class ClockReading:
    """The driver's reading of the local clock, in microseconds (the only clock input)."""

    local_us: int


@dataclass(frozen=True, slots=True)
class TimeRequest:
    """``sender`` asks for the receiver's time; ``nonce`` matches the reply."""

    sender: int
    nonce: int

    def __post_init__(self) -> None:
        _uint("TimeRequest.sender", self.sender)
        _uint("TimeRequest.nonce", self.nonce)

    def encode(self) -> bytes:
        """Canonical RLP ``[1, sender, nonce, 0, 0]``."""
        data: bytes = rlp.encode([_KIND_REQUEST, self.sender, self.nonce, 0, 0])
        return data


@dataclass(frozen=True, slots=True)
class TimeReply:
    """``sender``'s clock read ``server_us`` when it answered request ``nonce``."""

    sender: int
    nonce: int
    server_us: int

    def __post_init__(self) -> None:
        _uint("TimeReply.sender", self.sender)
        _uint("TimeReply.nonce", self.nonce)
        _uint("TimeReply.server_us", self.server_us)

    def encode(self) -> bytes:
        """Canonical RLP ``[2, sender, nonce, server_us, 0]``."""
        data: bytes = rlp.encode([_KIND_REPLY, self.sender, self.nonce, self.server_us, 0])
        return data


@dataclass(frozen=True, slots=True)
class Adjust:
    """Berkeley coordinator ``sender`` tells the receiver to add ``delta_us`` (signed)."""

    sender: int
    round: int
    delta_us: int

    def __post_init__(self) -> None:
        _uint("Adjust.sender", self.sender)
        _uint("Adjust.round", self.round)
        if isinstance(self.delta_us, bool) or not isinstance(self.delta_us, int) \
                or abs(self.delta_us) > _UINT64_MAX:
            raise InvalidClockMessage(f"Adjust.delta_us out of range: {self.delta_us!r}")

    def encode(self) -> bytes:
        """Canonical RLP ``[3, sender, round, |delta|, sign]`` (sign 1 when negative)."""
        neg = 1 if self.delta_us < 0 else 0
        data: bytes = rlp.encode([_KIND_ADJUST, self.sender, self.round, abs(self.delta_us),
                                  neg])
        return data


ClockMessage = TimeRequest | TimeReply | Adjust


def decode_clock_message(data: bytes) -> ClockMessage:
    """Decode one clock-sync message strictly.

    Raises:
        InvalidClockMessage: not the canonical encoding of a valid message.
    """
    try:
        kind, a, b, c, d = rlp.decode(bytes(data), sedes=_SEDES, strict=True)
    except (rlp.exceptions.RLPException, TypeError, ValueError) as e:
        raise InvalidClockMessage(f"clock message: {e}") from e
    msg: ClockMessage
    if kind == _KIND_REQUEST and c == 0 and d == 0:
        msg = TimeRequest(a, b)
    elif kind == _KIND_REPLY and d == 0:
        msg = TimeReply(a, b, c)
    elif kind == _KIND_ADJUST and d in (0, 1) and not (d == 1 and c == 0):
        msg = Adjust(a, b, -c if d else c)
    else:
        raise InvalidClockMessage(f"clock message: bad kind or fields {kind}")
    if msg.encode() != bytes(data):
        raise InvalidClockMessage("clock message: non-canonical encoding")
    return msg


@dataclass(frozen=True, slots=True)
class OffsetEstimate:
    """``peer``'s clock minus ours is ``offset_us`` give or take ``error_us`` (= rtt/2)."""

    peer: int
    offset_us: float
    error_us: float
    rtt_us: int


class CristianClient:
    """Cristian's algorithm for one node, both as client and as time server.

    Args:
        node_id: this node.
        pending_max: bound on outstanding requests.
        rtt_us_max: replies with a longer round trip are dropped (too loose to use).
    """

    def __init__(self, node_id: int, pending_max: int = 256,
                 rtt_us_max: int = 10_000_000) -> None:
        if pending_max < 1 or rtt_us_max < 0:
            raise ValueError("need pending_max >= 1 and rtt_us_max >= 0")
        self.node_id = node_id
        self.pending_max = pending_max
        self.rtt_us_max = rtt_us_max
        self._nonce = 0
        self._pending: OrderedDict[int, tuple[int, int]] = OrderedDict()  # nonce -> (peer, t0)
        self._best: dict[int, OffsetEstimate] = {}
        self.dropped = 0

    def request(self, peer: int, reading: ClockReading) -> TimeRequest:
        """Start one round trip to ``peer`` at local time ``reading``; send the result."""
        self._nonce += 1
        self._pending[self._nonce] = (peer, reading.local_us)
        while len(self._pending) > self.pending_max:
            self._pending.popitem(last=False)
        return TimeRequest(self.node_id, self._nonce)

    def serve(self, request: TimeRequest, reading: ClockReading) -> TimeReply:
        """Answer ``request`` with our clock ``reading`` (the time-server side)."""
        return TimeReply(self.node_id, request.nonce, max(0, reading.local_us))

    def on_reply(self, sender: int, reply: TimeReply,
                 reading: ClockReading) -> OffsetEstimate | None:
        """Turn a reply received at local ``reading`` into an estimate (None if dropped)."""
        entry = self._pending.get(reply.nonce)
        if entry is None or entry[0] != sender or reply.sender != sender:
            self.dropped += 1
            return None
        del self._pending[reply.nonce]
        rtt = reading.local_us - entry[1]
        if not 0 <= rtt <= self.rtt_us_max:
            self.dropped += 1
            return None
        est = OffsetEstimate(sender, reply.server_us + rtt / 2 - reading.local_us, rtt / 2, rtt)
        best = self._best.get(sender)
        if best is None or est.rtt_us <= best.rtt_us:
            self._best[sender] = est
        return est

    def best(self, peer: int) -> OffsetEstimate | None:
        """The estimate with the smallest round trip seen for ``peer`` since :meth:`forget`."""
        return self._best.get(peer)

    def forget(self) -> None:
        """Drop kept estimates (clocks drift: a new round starts fresh)."""
        self._best.clear()


@dataclass(frozen=True, slots=True)
class BerkeleyRound:
    """The outcome of one Berkeley round (offsets are relative to the coordinator)."""

    round: int
    offsets_us: Mapping[int, float]
    dropped: frozenset[int]
    average_us: float
    adjustments: Mapping[int, int] = field(default_factory=dict)


class BerkeleyCoordinator:
    """The Berkeley algorithm's coordinator (followers just apply :class:`Adjust`).

    Args:
        node_id: the coordinator.
        peers: the nodes it polls.
        outlier_us: offsets farther than this from the median are left out of the average.
        reject_outliers: ``False`` averages every offset (a negative control only).
    """

    def __init__(self, node_id: int, peers: Iterable[int], outlier_us: int,
                 reject_outliers: bool = True) -> None:
        if outlier_us < 0:
            raise ValueError("outlier_us must be >= 0")
        self.node_id = node_id
        self.peers = tuple(sorted(p for p in set(peers) if p != node_id))
        self.outlier_us = outlier_us
        self.reject_outliers = reject_outliers
        self.client = CristianClient(node_id, pending_max=max(4 * len(self.peers), 4))
        self.round = 0

    def start_round(self, reading: ClockReading) -> list[tuple[int, TimeRequest]]:
        """Begin a round: one request per peer, to send now."""
        self.round += 1
        self.client.forget()
        return [(p, self.client.request(p, reading)) for p in self.peers]

    def on_reply(self, sender: int, reply: TimeReply, reading: ClockReading) -> None:
        """Record one peer's reply to this round."""
        self.client.on_reply(sender, reply, reading)

    def finish_round(self) -> tuple[BerkeleyRound, list[tuple[int, Adjust]]]:
        """Average the offsets heard this round; return the round and adjustments to send.

        The coordinator's own adjustment is in ``adjustments[node_id]`` (apply it locally).
        """
        offsets: dict[int, float] = {self.node_id: 0.0}
        for p in self.peers:
            est = self.client.best(p)
            if est is not None:
                offsets[p] = est.offset_us
        med = statistics.median(offsets.values())
        dropped = frozenset(
            n for n, o in offsets.items()
            if self.reject_outliers and abs(o - med) > self.outlier_us)
        kept = [o for n, o in sorted(offsets.items()) if n not in dropped]
        # Nothing survives only when two clocks disagree beyond outlier_us with no third to
        # side with one of them: the coordinator then keeps its own time (no tie-breaker).
        avg = statistics.fmean(kept) if kept else 0.0
        adjustments = {n: round(avg - o) for n, o in offsets.items()}
        result = BerkeleyRound(self.round, offsets, dropped, avg, adjustments)
        sends = [(n, Adjust(self.node_id, self.round, d))
                 for n, d in sorted(adjustments.items()) if n != self.node_id]
        return result, sends


class OffsetTable:
    """Recent Cristian estimates per peer; the tightest fresh one is the peer's offset.

    Sans-IO: ``now`` is any monotonic reading (seconds) the driver passes in.

    Args:
        age_max: estimates older than this (seconds) no longer count.
        samples_max: estimates kept per peer (the oldest is dropped first).
        peers_max: peers tracked at most (a bound for a table fed from the network).
    """

    def __init__(self, age_max: float, samples_max: int = 8, peers_max: int = 1024) -> None:
        if age_max <= 0 or samples_max < 1 or peers_max < 1:
            raise ValueError("need age_max > 0, samples_max >= 1 and peers_max >= 1")
        self.age_max = age_max
        self.samples_max = samples_max
        self.peers_max = peers_max
        self._samples: dict[int, list[tuple[float, OffsetEstimate]]] = {}

    def observe(self, estimate: OffsetEstimate, now: float) -> None:
        """Record ``estimate`` taken at ``now``."""
        samples = self._samples.get(estimate.peer)
        if samples is None:
            if len(self._samples) >= self.peers_max:
                return
            samples = self._samples[estimate.peer] = []
        samples.append((now, estimate))
        del samples[: -self.samples_max]

    def best(self, peer: int, now: float) -> tuple[OffsetEstimate, float] | None:
        """``peer``'s tightest estimate younger than ``age_max`` and its age, or None."""
        fresh = [(e.rtt_us, now - at, e) for at, e in self._samples.get(peer, ())
                 if now - at <= self.age_max]
        if not fresh:
            return None
        _, age, est = min(fresh, key=lambda t: (t[0], t[1]))
        return est, age

    def fresh(self, now: float) -> dict[int, tuple[OffsetEstimate, float]]:
        """Every peer with a fresh estimate: ``peer -> (estimate, age)``."""
        out = {}
        for peer in sorted(self._samples):
            got = self.best(peer, now)
            if got is not None:
                out[peer] = got
        return out

    def prune(self, now: float) -> None:
        """Forget estimates older than ``age_max`` (and peers left with none)."""
        for peer in list(self._samples):
            kept = [(at, e) for at, e in self._samples[peer] if now - at <= self.age_max]
            if kept:
                self._samples[peer] = kept
            else:
                del self._samples[peer]


def median_offset_us(peer_offsets_us: Iterable[float], times_min: int = 1) -> float | None:
    """The validators' median time as an offset from our clock (our own offset is 0).

    Args:
        peer_offsets_us: the other validators' estimated offsets (their clock minus ours).
        times_min: with fewer clocks than this (ours included), None: too few to trust.

    Returns:
        The lower median of ``{0} + offsets``, or None.
    """
    values = [0.0, *peer_offsets_us]
    if len(values) < times_min:
        return None
    return median_time(values)


def median_time(times_us: Iterable[_Time]) -> _Time:
    """The median of the validators' times (the lower median for an even count).

    Raises:
        ValueError: no times.
    """
    values = sorted(times_us)
    if not values:
        raise ValueError("median_time of no times")
    return values[(len(values) - 1) // 2]


def timestamp_within(timestamp_us: int, times_us: Iterable[int], tolerance_us: int) -> bool:
    """Whether a block timestamp lies within ``tolerance_us`` of the validators' median time."""
    return abs(timestamp_us - median_time(times_us)) <= tolerance_us

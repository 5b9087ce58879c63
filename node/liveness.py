"""Liveness: the node's failure detector and suspicion gossip, driven by real heartbeats.

Theory of operation
-------------------
p2p's :class:`~p2p.heartbeat.HeartbeatService` sends every connected peer a heartbeat each
``p2p.heartbeat_ms``; its opaque status bytes are a :class:`Beat` (this module's codec):
our committed height, our consensus view and our own :class:`SuspicionReport`. Each beat
received is handed to :meth:`NodeLiveness.run`, which

1. feeds a sans-IO :class:`~consensus.phi_detector.PhiAccrualFailureDetector` (on the same
   :class:`~consensus.failure_detector.HeartbeatDetectorBase` as the Paxos election's
   detector): ``Tick(arrival tick)`` then ``Receive(peer, Heartbeat)``. A Trio timer ticks
   it every ``check_ms`` as well, so a silent peer's phi grows and crosses the threshold.
   The silence that ends a suspicion (a crash and restart) is not learnt as an interval,
   so a restart does not slow the detection of the next crash;
2. feeds the detector's ``Suspect`` / ``Trust`` events, and each peer's report, to a sans-IO
   :class:`~consensus.suspicion_gossip.SuspicionGossip`, which *confirms* a suspicion once
   ``quorum = f + 1`` validators (this one included) report it: at least one of them is
   correct, so one lying or badly connected validator cannot get a live one confirmed.
   Reports of validators this node suspects are not counted (a crashed validator's last
   report is stale and, with one liar, would otherwise reach the quorum);
3. hands the beat to ``on_beat`` (block sync learns peer heights there) and logs every
   suspected / trusted / confirmed / cleared change.

Why reports ride on heartbeats rather than on a message kind of their own: heartbeats already
reach every connected peer every interval, which is both the push-on-change and the
anti-entropy repair the gossip core asks for (its own ``send`` outputs and the detector's
``Heartbeat`` sends are therefore not put on the wire); a report's author is the
transport-authenticated sender, exactly what the core requires (reports are not relayed);
and no new subscription, queue or kind is needed. A change reaches the peers at most one
heartbeat interval later, which is small next to the detection time.

Wire-level versions: the core numbers our reports 0, 1, 2... from start, and keeps only a
reporter's highest version. A restarted validator must not look older than before its
crash, so the version on the wire is ``(boot_ms << 20) + local_version``, ``boot_ms`` being
the wall clock when this process started: each millisecond of uptime leaves room for 2**20
changes, far more than one change per detector tick can use.

Heartbeat arrivals are numbered per peer by this driver (``seq``; epoch 0): the encrypted
session already rejects replayed or reordered frames, so arrival order is sender order.

Beat format (RLP, strict, canonical): ``[height, view]`` (the original form, still accepted:
such a peer carries no report) or ``[height, view, report]`` with ``report`` the bytes of
:meth:`SuspicionReport.encode`. Anything else is :class:`BadBeat`: logged, counted, dropped.

Invariants: detector peers == the validators but us; one arrival counter per peer; the
reports known are bounded by the validator set (the core enforces it); every beat decoded
here is at most ``BEAT_BYTES_MAX`` bytes.

Called by :mod:`node.runtime` (wiring, ``status`` / ``net_info`` via :meth:`to_json`,
metrics via :meth:`update_metrics`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import rlp
import trio
from rlp.sedes import List, big_endian_int, binary

from consensus.contract import InvalidMessage, NodeId, Receive, Tick
from consensus.failure_detector import Heartbeat, Suspect, Trust
from consensus.phi_detector import PhiAccrualFailureDetector
from consensus.suspicion_gossip import (
    Cleared,
    Confirmed,
    SuspicionGossip,
    SuspicionReport,
    decode_suspicion_report,
)

__all__ = [
    "BEAT_BYTES_MAX",
    "BadBeat",
    "Beat",
    "LivenessConfig",
    "LivenessError",
    "LivenessStatistics",
    "NodeLiveness",
    "PeerLiveness",
    "decode_beat",
    "encode_beat",
]

log = logging.getLogger("phalanx.node.liveness")

#: Largest heartbeat status we decode (a report of 1024 validators fits easily).
BEAT_BYTES_MAX = 16 * 1024
_UINT64_MAX = (1 << 64) - 1
_VERSION_BITS = 20
_BOOT_MS_MAX = (1 << (64 - _VERSION_BITS)) - 1
_OLD_BEAT = List([big_endian_int, big_endian_int], strict=True)
_NEW_BEAT = List([big_endian_int, big_endian_int, binary], strict=True)


class LivenessError(Exception):
    """Base of the liveness errors."""


class BadBeat(LivenessError):
    """A peer's heartbeat status bytes are not a canonical :class:`Beat` (dropped)."""


# ---------------------------------------------------------------------------- the beat codec


@dataclass(frozen=True, slots=True)
class Beat:
    """What a heartbeat says: the sender's height and view, and its suspicion report."""

    height: int
    view: int
    report: SuspicionReport | None = None

    def __post_init__(self) -> None:
        for name in ("height", "view"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _UINT64_MAX:
                raise BadBeat(f"Beat.{name} must be a uint64, got {v!r}")


def encode_beat(height: int, view: int, report: SuspicionReport | None = None) -> bytes:
    """Heartbeat status bytes: ``[height, view]``, or ``[height, view, report]``.

    Raises:
        BadBeat: height or view is not a uint64 (our own bug when we call it).
    """
    beat = Beat(height, view, report)
    items: list[Any] = [beat.height, beat.view]
    if report is not None:
        items.append(report.encode())
    return bytes(rlp.encode(items))


def decode_beat(payload: bytes) -> Beat:
    """Decode heartbeat status bytes strictly (either form, canonical only).

    Raises:
        BadBeat: too long, not RLP, wrong shape, non-minimal integers, trailing bytes, or
            an invalid report.
    """
    data = bytes(payload)
    if len(data) > BEAT_BYTES_MAX:
        raise BadBeat(f"heartbeat of {len(data)} bytes (max {BEAT_BYTES_MAX})")
    try:
        items = rlp.decode(data, strict=True)
        if not isinstance(items, list) or len(items) not in (2, 3):
            raise BadBeat("heartbeat: expected [height, view] or [height, view, report]")
        sedes = _OLD_BEAT if len(items) == 2 else _NEW_BEAT
        fields = sedes.deserialize(items)
        report = decode_suspicion_report(fields[2]) if len(fields) == 3 else None
        beat = Beat(int(fields[0]), int(fields[1]), report)
    except BadBeat:
        raise
    except (rlp.exceptions.RLPException, InvalidMessage, TypeError, ValueError) as e:
        raise BadBeat(f"heartbeat: {e}") from None
    if encode_beat(beat.height, beat.view, beat.report) != data:
        raise BadBeat("heartbeat: non-canonical encoding")
    return beat


# ---------------------------------------------------------------------------- the driver


@dataclass(frozen=True, slots=True)
class LivenessConfig:
    """Failure-detection settings (milliseconds; converted to p2p ticks here).

    Args:
        heartbeat_ms: the interval peers send heartbeats at (the detector's prior).
        phi_threshold: suspect a peer when its phi reaches this (8: a live peer this late
            about once in 10**8 intervals, under the fitted law).
        pause_ms: silence always tolerated on top of the mean interval (GC, a busy loop).
        std_ms_min: floor of the fitted standard deviation.
        window_max: recent intervals per peer the fit uses.
        check_ms: how often the timer ticks the detector.
        tick_seconds: length of one tick (the p2p tick, so arrival ticks need no conversion).
    """

    heartbeat_ms: int = 500
    phi_threshold: float = 8.0
    pause_ms: int = 2000
    std_ms_min: int = 100
    window_max: int = 100
    check_ms: int = 100
    tick_seconds: float = 0.01

    def __post_init__(self) -> None:
        if (self.heartbeat_ms <= 0 or self.phi_threshold <= 0 or self.pause_ms < 0
                or self.std_ms_min <= 0 or self.window_max < 2 or self.check_ms <= 0
                or self.tick_seconds <= 0):
            raise ValueError("LivenessConfig: intervals, threshold and window must be positive")

    def ticks(self, ms: float) -> int:
        """``ms`` milliseconds in ticks (at least 1)."""
        return max(1, round(ms / 1000 / self.tick_seconds))


@dataclass(frozen=True, slots=True)
class PeerLiveness:
    """One peer as this node's detector sees it."""

    peer: int
    phi: float
    suspected: bool
    silence_ms: int | None
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class LivenessStatistics:
    """Counters and the current verdicts."""

    beats: int
    bad_beats: int
    reports_ignored: int
    suspicions: int
    false_suspicions: int
    suspected: frozenset[int]
    confirmed: dict[int, frozenset[int]]


class NodeLiveness:
    """Drive the phi-accrual detector and the suspicion gossip from real heartbeats.

    Args:
        node_id: this validator's index.
        members: every validator index (this one included).
        quorum: reporters needed to confirm a suspicion (``f + 1``).
        config: detector settings.
        boot_ms: wall-clock milliseconds at process start (orders our reports across restarts).
        rng: randomness for the gossip core (unused on the wire; see module docstring).
    """

    def __init__(self, node_id: int, members: Iterable[int], quorum: int,
                 config: LivenessConfig, *, boot_ms: int, rng: random.Random) -> None:
        if not 0 <= boot_ms <= _BOOT_MS_MAX:
            raise ValueError(f"boot_ms out of range: {boot_ms}")
        self.node_id = NodeId(node_id)
        self.config = config
        self._base = boot_ms << _VERSION_BITS
        members_ = sorted({NodeId(m) for m in members} | {self.node_id})
        c = config
        self.detector = PhiAccrualFailureDetector(
            self.node_id, members_, heartbeat_ticks=c.ticks(c.heartbeat_ms),
            threshold=c.phi_threshold, window_max=c.window_max,
            std_ticks_min=float(c.ticks(c.std_ms_min)),
            pause_ticks=c.ticks(c.pause_ms) if c.pause_ms else 0,
            skip_outage_intervals=True,
        )
        self.gossip = SuspicionGossip(self.node_id, members_, quorum, rng,
                                      ignore_suspected_reporters=True)
        self._arrivals: dict[NodeId, int] = dict.fromkeys(self.detector.peers, 0)
        self._heard_at: dict[NodeId, int] = {}
        self._now = 0
        self._first_tick: int | None = None
        self._beats = self._bad_beats = 0

    # -- what we send --------------------------------------------------------------------

    def wire_report(self) -> SuspicionReport:
        """Our current report, with the restart-proof wire version."""
        own = self.gossip.own_report()
        return SuspicionReport(own.reporter, self._base + own.version, own.suspects)

    def status_bytes(self, height: int, view: int) -> bytes:
        """The heartbeat status to send now: height, view and our report."""
        return encode_beat(height, view, self.wire_report())

    # -- inputs ------------------------------------------------------------------------

    def tick(self, now: int) -> None:
        """Advance the detector to tick ``now`` (suspicions of silent peers happen here)."""
        self._now = max(self._now, now)
        if self._first_tick is None:
            self._first_tick = now
        self._on_detector(self.detector.step(Tick(now)).events)

    def observe(self, peer: int, tick: int, status: bytes) -> Beat | None:
        """A heartbeat from ``peer`` arrived at ``tick``: feed both cores.

        Returns:
            The decoded beat, or None when it was malformed (logged, counted, dropped) or
            came from a node that is not a peer.
        """
        sender = NodeId(peer)
        if sender not in self._arrivals:
            self._bad_beats += 1
            log.warning("heartbeat from %s, who is not a validator peer: dropped", peer)
            return None
        try:
            beat = decode_beat(status)
        except BadBeat as e:
            self._bad_beats += 1
            log.warning("bad heartbeat from %d dropped: %s", peer, e)
            return None
        self._beats += 1
        self.tick(tick)
        self._arrivals[sender] += 1
        self._heard_at[sender] = self._now
        hb = Heartbeat(sender, 0, self._arrivals[sender])
        self._on_detector(self.detector.step(Receive(sender, hb)).events)
        if beat.report is not None:
            self._on_gossip(self.gossip.step(Receive(sender, beat.report)).events)
        return beat

    async def run(self, received: trio.abc.ReceiveChannel[Any],
                  on_beat: Callable[[int, Beat], None] = lambda peer, beat: None, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tick every ``check_ms`` and consume p2p heartbeats until cancelled.

        Args:
            received: ``HeartbeatService.received`` (records with ``peer``, ``status``,
                ``received_tick``).
            on_beat: called with each well-formed beat (block sync takes the height).
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._timer)
            task_status.started()
            async for hb in received:
                beat = self.observe(int(hb.peer), int(hb.received_tick), hb.status)
                if beat is not None:
                    on_beat(int(hb.peer), beat)
            nursery.cancel_scope.cancel()

    async def _timer(self) -> None:
        period = self.config.check_ms / 1000
        while True:
            self.tick(int(trio.current_time() / self.config.tick_seconds))
            await trio.sleep(period)

    # -- events --------------------------------------------------------------------------

    def _on_detector(self, events: list[Suspect | Trust]) -> None:
        for ev in events:
            peer = int(ev.node)
            if isinstance(ev, Suspect):
                silence = self._silence_ms(ev.node)
                since = (f"{silence} ms of silence" if silence is not None else
                         f"{self._ms(self._now - (self._first_tick or 0))} ms without a word")
                log.warning("peer %d suspected: phi %.1f >= %g after %s", peer,
                            self.detector.phi_of(ev.node), self.config.phi_threshold, since)
            else:
                log.info("peer %d trusted again: it sent a heartbeat", peer)
            self._on_gossip(self.gossip.step(ev).events)

    def _on_gossip(self, events: list[Confirmed | Cleared]) -> None:
        for ev in events:
            reporters = sorted(int(r) for r in self.gossip.reporters_of(ev.node))
            if isinstance(ev, Confirmed):
                log.warning("node %d confirmed suspected by %d validators %s (quorum %d)",
                            int(ev.node), len(reporters), reporters, self.gossip.quorum)
            else:
                log.info("node %d no longer confirmed suspected (reporters now %s)",
                         int(ev.node), reporters)

    # -- queries ---------------------------------------------------------------------------

    def _silence_ms(self, peer: NodeId) -> int | None:
        heard = self._heard_at.get(peer)
        return None if heard is None else self._ms(self._now - heard)

    def _ms(self, ticks: int) -> int:
        return round(ticks * self.config.tick_seconds * 1000)

    def suspected(self) -> list[int]:
        """Peers this node's detector suspects, sorted."""
        return sorted(int(p) for p in self.detector.suspected())

    def confirmed(self) -> dict[int, list[int]]:
        """Node -> sorted reporters, for every suspicion a quorum confirms."""
        return {int(n): sorted(int(r) for r in self.gossip.reporters_of(n))
                for n in sorted(self.gossip.confirmed())}

    def peers(self) -> list[PeerLiveness]:
        """Each peer's phi, verdict, silence and current effective timeout."""
        ms = self.config.tick_seconds * 1000
        suspected = self.detector.suspected()
        return [PeerLiveness(int(p), self.detector.phi_of(p), p in suspected,
                             self._silence_ms(p), round(self.detector.timeout_of(p) * ms))
                for p in self.detector.peers]

    def statistics(self) -> LivenessStatistics:
        """Counters and current verdicts."""
        st = self.detector.statistics()
        return LivenessStatistics(
            beats=self._beats, bad_beats=self._bad_beats, reports_ignored=self.gossip.ignored,
            suspicions=st.suspicions, false_suspicions=st.false_suspicions,
            suspected=frozenset(int(p) for p in st.suspected),
            confirmed={n: frozenset(r) for n, r in self.confirmed().items()},
        )

    def to_json(self) -> dict[str, Any]:
        """The ``liveness`` section of ``status`` and ``net_info``."""
        st = self.statistics()
        return {
            "detector": "phi-accrual",
            "phi_threshold": self.config.phi_threshold,
            "quorum": self.gossip.quorum,
            "peers": [{"id": p.peer, "phi": round(min(p.phi, 1e6), 2), "suspected": p.suspected,
                       "silence_ms": p.silence_ms, "timeout_ms": p.timeout_ms}
                      for p in self.peers()],
            "suspected": self.suspected(),
            "confirmed": [{"node": n, "reporters": r} for n, r in self.confirmed().items()],
            "suspicions": st.suspicions,
            "suspicions_retracted": st.false_suspicions,
            "bad_beats": st.bad_beats,
        }

    def update_metrics(self, metrics: Any) -> None:
        """Set the liveness gauges of a :class:`node.metrics.NodeMetrics`."""
        metrics.suspected_peers.set(len(self.detector.suspected()))
        metrics.confirmed_suspicions.set(len(self.gossip.confirmed()))
        for p in self.detector.peers:
            metrics.peer_phi.labels(str(int(p))).set(min(self.detector.phi_of(p), 1e6))

"""Gossip dissemination of suspicions, sans-IO, with a Byzantine-safe confirmation quorum.

Theory of operation
-------------------
Each node runs a local failure detector (heartbeat or phi-accrual) and feeds its
:class:`~consensus.failure_detector.Suspect` / :class:`~consensus.failure_detector.Trust`
events here. The node's *own report* is its current suspicion set with a version number
that grows with every change. Reports spread by gossip: on every change the new report goes
to every peer, and every ``gossip_ticks`` it is pushed again to ``fanout`` peers drawn with
the injected ``random.Random`` (anti-entropy repairs lost messages). Every node keeps the
newest report of each reporter (higher versions replace lower ones; old or duplicate ones
change nothing).

A node is *confirmed* suspected when at least ``quorum`` distinct reporters (this node
included) currently suspect it; with ``quorum = f + 1`` at least one of them is correct, so
up to ``f`` Byzantine reporters cannot get a live node excluded on their own, and a single
jittery link does not either. A :class:`Confirmed` event is emitted when the count reaches
the quorum and :class:`Cleared` when it falls below it again.

With ``ignore_suspected_reporters`` the reports of reporters this node itself suspects are
not counted: a crashed reporter's last report is stale and would otherwise keep helping to
confirm others until it restarts (a stale report plus one liar would reach ``f + 1``). The
price, which the fd study shows under heavy delay with a jittery detector, is completeness:
an observer that falsely suspects reporters may not confirm a real crash. The node turns it
on (its detector is adaptive and its links are fast); the study keeps the plain rule.

Reports are not relayed: a report's author is the transport-authenticated sender, so no
signature is needed, and a Byzantine node can only lie about its own suspicions.

Invariants: one report per known reporter, each listing only known nodes (at most
``len(members)``); ``confirmed() == {n : count(n) >= quorum}`` after every step.

Who calls it: drivers next to a failure detector, the fd study, tests.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

import rlp
from rlp.sedes import CountableList, List, big_endian_int

from consensus.contract import ConsensusBug, InvalidMessage, NodeId, Receive, Tick
from consensus.failure_detector import Suspect, Trust

__all__ = [
    "Cleared",
    "Confirmed",
    "GossipOutput",
    "SuspicionGossip",
    "SuspicionReport",
    "decode_suspicion_report",
]

_UINT64_MAX = (1 << 64) - 1
SUSPECTS_MAX = 1024
_SEDES = List([big_endian_int, big_endian_int, CountableList(big_endian_int)], strict=True)


@dataclass(frozen=True, slots=True)
class SuspicionReport:
    """``reporter`` suspects exactly ``suspects`` (sorted, no duplicates), as of ``version``."""

    reporter: NodeId
    version: int
    suspects: tuple[NodeId, ...]

    def __post_init__(self) -> None:
        for name in ("reporter", "version"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _UINT64_MAX:
                raise InvalidMessage(f"SuspicionReport.{name} must be a uint64, got {v!r}")
        if len(self.suspects) > SUSPECTS_MAX or list(self.suspects) != sorted(set(self.suspects)):
            raise InvalidMessage("SuspicionReport.suspects must be sorted, unique and bounded")
        if any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= _UINT64_MAX
               for s in self.suspects):
            raise InvalidMessage("SuspicionReport.suspects must be uint64 node ids")

    def encode(self) -> bytes:
        """Canonical RLP ``[reporter, version, [suspect...]]``."""
        data: bytes = rlp.encode([self.reporter, self.version, list(self.suspects)])
        return data


def decode_suspicion_report(data: bytes) -> SuspicionReport:
    """Decode a report strictly.

    Raises:
        InvalidMessage: not the canonical encoding of a valid report.
    """
    try:
        reporter, version, suspects = rlp.decode(bytes(data), sedes=_SEDES, strict=True)
    except (rlp.exceptions.RLPException, TypeError, ValueError) as e:
        raise InvalidMessage(f"SuspicionReport: {e}") from e
    report = SuspicionReport(NodeId(reporter), version, tuple(NodeId(s) for s in suspects))
    if report.encode() != bytes(data):
        raise InvalidMessage("SuspicionReport: non-canonical encoding")
    return report


@dataclass(frozen=True, slots=True)
class Confirmed:
    """Event: at least ``quorum`` reporters now suspect ``node``."""

    node: NodeId


@dataclass(frozen=True, slots=True)
class Cleared:
    """Event: fewer than ``quorum`` reporters suspect ``node`` any more."""

    node: NodeId


@dataclass(slots=True)
class GossipOutput:
    """Reports to send (``(peer, report)``), then confirmation changes."""

    send: list[tuple[NodeId, SuspicionReport]] = field(default_factory=list)
    events: list[Confirmed | Cleared] = field(default_factory=list)


class SuspicionGossip:
    """Sans-IO suspicion dissemination (see module docstring).

    Args:
        node_id: this node.
        members: every node of the group (this one included or not).
        quorum: reporters needed to confirm a suspicion (``f + 1`` against Byzantine ones).
        rng: the injected randomness for choosing gossip targets.
        gossip_ticks: ticks between two anti-entropy pushes.
        fanout: peers per anti-entropy push.
        ignore_suspected_reporters: do not count the reports of reporters this node
            suspects (see the module docstring).
    """

    def __init__(self, node_id: NodeId, members: Iterable[NodeId], quorum: int,
                 rng: random.Random, gossip_ticks: int = 5, fanout: int = 2, *,
                 ignore_suspected_reporters: bool = False) -> None:
        self.node_id = node_id
        self.members: tuple[NodeId, ...] = tuple(sorted(set(members) | {node_id}))
        self.peers = tuple(m for m in self.members if m != node_id)
        if not 1 <= quorum <= len(self.members) or gossip_ticks < 1 or fanout < 1:
            raise ValueError("need 1 <= quorum <= members, gossip_ticks >= 1, fanout >= 1")
        if len(self.members) > SUSPECTS_MAX:
            raise ValueError("too many members")
        self.quorum = quorum
        self.rng = rng
        self.gossip_ticks = gossip_ticks
        self.fanout = fanout
        self.ignore_suspected_reporters = ignore_suspected_reporters
        self._mine: set[NodeId] = set()
        self._version = 0
        self._reports: dict[NodeId, SuspicionReport] = {}
        self._confirmed: set[NodeId] = set()
        self._last_push: int | None = None
        self.ignored = 0

    def confirmed(self) -> frozenset[NodeId]:
        """Nodes suspected by at least ``quorum`` reporters."""
        return frozenset(self._confirmed)

    def reporters_of(self, node: NodeId) -> frozenset[NodeId]:
        """Who currently suspects ``node`` (as far as this node has heard)."""
        return frozenset(r for r, rep in self._reports.items() if node in rep.suspects)

    def own_report(self) -> SuspicionReport:
        """This node's current report."""
        return SuspicionReport(self.node_id, self._version, tuple(sorted(self._mine)))

    def step(self, event: Suspect | Trust | Receive | Tick) -> GossipOutput:
        """Feed a local detector event, a received report or a tick."""
        out = GossipOutput()
        if isinstance(event, Suspect | Trust):
            self._on_local(event, out)
        elif isinstance(event, Receive):
            self._on_report(event.sender, event.message)
        elif isinstance(event, Tick):
            self._on_tick(event.now, out)
        else:
            raise TypeError(f"unexpected input {event!r}")
        self._recount(out)
        self._check_invariants()
        return out

    def _on_local(self, event: Suspect | Trust, out: GossipOutput) -> None:
        if event.node not in self.peers:
            return
        before = set(self._mine)
        if isinstance(event, Suspect):
            self._mine.add(event.node)
        else:
            self._mine.discard(event.node)
        if self._mine != before:
            self._version += 1
            report = self.own_report()
            self._reports[self.node_id] = report
            out.send.extend((p, report) for p in self.peers)

    def _on_report(self, sender: NodeId, report: object) -> None:
        if (not isinstance(report, SuspicionReport) or report.reporter != sender
                or sender not in self.peers
                or not set(report.suspects) <= set(self.members)):
            self.ignored += 1
            return
        old = self._reports.get(sender)
        if old is not None and report.version <= old.version:
            self.ignored += 1
            return
        self._reports[sender] = report

    def _on_tick(self, now: int, out: GossipOutput) -> None:
        if self._last_push is not None and now - self._last_push < self.gossip_ticks:
            return
        self._last_push = now
        if self._version == 0:
            return      # nothing ever suspected: nothing to repair
        report = self.own_report()
        targets = self.rng.sample(self.peers, min(self.fanout, len(self.peers)))
        out.send.extend((p, report) for p in sorted(targets))

    def _recount(self, out: GossipOutput) -> None:
        # With ignore_suspected_reporters, a reporter this node suspects does not count: its
        # last report is stale (it may have crashed holding it).
        skip = self._mine if self.ignore_suspected_reporters else set()
        live = [rep for r, rep in self._reports.items() if r not in skip]
        for node in self.members:
            count = sum(1 for rep in live if node in rep.suspects)
            if count >= self.quorum and node not in self._confirmed:
                self._confirmed.add(node)
                out.events.append(Confirmed(node))
            elif count < self.quorum and node in self._confirmed:
                self._confirmed.discard(node)
                out.events.append(Cleared(node))

    def _check_invariants(self) -> None:
        if not set(self._reports) <= set(self.members):
            raise ConsensusBug("a report from a non-member")
        if not self._confirmed <= set(self.members):
            raise ConsensusBug("confirmed a non-member")

"""Rolling restart of a testnet's validators, one at a time, under Ricart-Agrawala mutual exclusion.

Theory of operation
-------------------
One participant per validator runs in this process, each on its own thread with its own
:class:`consensus.mutex.RicartAgrawala` core. The cores talk over :class:`MutexBus`, an
in-process bus that encodes every message to bytes and decodes it strictly on delivery (the
same wire format a networked run would use). Every participant asks for the critical section
at once; the cores grant it in ``(timestamp, node id)`` order. Inside the section a participant:

1. records ``down`` and restarts its node (SIGTERM, then start on the same home);
2. reads the other nodes' heights and waits until its own node answers with a height at least
   their highest (healthy and caught up), re-reading until that holds at release time;
3. records ``up`` (with that height) and releases the section.

Every step goes into a :class:`Timeline` (appended under one lock, so its order is the real
order). :func:`check_timeline` verifies it afterwards: never two nodes down at once, never two
holders, a node is only down while it holds the section, every node restarted exactly once.
With ``use_mutex=False`` the participants skip the mutex (a negative control only): the
checker must flag the overlap.

Invariants: each participant enters at most once; the bus queue is bounded
(``bus_queue_max``); a participant waits at most ``timeout_s`` for the section or for
catch-up, then the run fails with :class:`RollingError`.

Called by ``phalanx testnet restart --rolling`` (:mod:`cli.cmd_testnet`) and the tests.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from consensus.contract import NodeId, Receive
from consensus.mutex import Acquire, Granted, Release, RicartAgrawala, decode_mutex_message
from testnet.check import Violation

__all__ = [
    "MutexBus",
    "NodeOps",
    "RollingError",
    "TestnetOps",
    "Timeline",
    "TimelineEvent",
    "check_timeline",
    "render_timeline",
    "rolling_restart",
]

BUS_QUEUE_MAX = 10_000
EVENT_KINDS = ("enter", "down", "up", "release")


class RollingError(Exception):
    """Raised when a rolling restart cannot finish (section or catch-up not reached in time)."""


class NodeOps(Protocol):
    """What the controller does to nodes (a real testnet, or fakes in tests)."""

    def restart(self, index: int) -> None:
        """Stop node ``index`` and start it again on the same home (returns once started)."""

    def height(self, index: int) -> int | None:
        """The node's committed height, or None if it does not answer."""


@dataclass(frozen=True)
class TimelineEvent:
    """One step: seconds since the start, node, kind (``enter/down/up/release``), height."""

    t: float
    node: int
    kind: str
    height: int | None = None


@dataclass
class Timeline:
    """The run's events in real order (thread-safe append)."""

    events: list[TimelineEvent] = field(default_factory=list)
    events_max: int = 10_000
    _t0: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, node: int, kind: str, height: int | None = None) -> None:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown timeline event {kind!r}")
        with self._lock:
            if len(self.events) >= self.events_max:
                raise RollingError(f"timeline past events_max {self.events_max}")
            self.events.append(TimelineEvent(round(time.monotonic() - self._t0, 3), node, kind,
                                             height))  # fmt: skip

    def to_json(self) -> list[dict[str, Any]]:
        return [{"t": e.t, "node": e.node, "kind": e.kind, "height": e.height}
                for e in self.events]  # fmt: skip


def check_timeline(events: list[TimelineEvent], nodes: int) -> list[Violation]:
    """Never two down, never two holders, down only inside the section, each node once.

    Args:
        events: the timeline in real order.
        nodes: how many nodes the roll covered.
    """
    out: list[Violation] = []
    down: set[int] = set()
    holders: set[int] = set()
    restarts = dict.fromkeys(range(nodes), 0)
    for e in events:
        if e.kind == "enter":
            holders.add(e.node)
            if len(holders) > 1:
                out.append(Violation("mutex", f"t={e.t}: nodes {sorted(holders)} hold the "
                                     "section at once"))  # fmt: skip
        elif e.kind == "release":
            holders.discard(e.node)
        elif e.kind == "down":
            down.add(e.node)
            restarts[e.node] = restarts.get(e.node, 0) + 1
            if e.node not in holders:
                out.append(Violation("mutex", f"t={e.t}: node {e.node} went down outside the "
                                     "critical section"))  # fmt: skip
            if len(down) > 1:
                out.append(Violation("two-down", f"t={e.t}: nodes {sorted(down)} down at once"))
        elif e.kind == "up":
            down.discard(e.node)
    if down:
        out.append(Violation("two-down", f"nodes {sorted(down)} never came back up"))
    for node, count in sorted(restarts.items()):
        if count != 1:
            out.append(Violation("coverage", f"node {node} restarted {count} times (want 1)"))
    return out


class MutexBus:
    """In-process delivery between mutex cores; messages cross it as canonical bytes."""

    def __init__(self, nodes: int, queue_max: int = BUS_QUEUE_MAX) -> None:
        members = [NodeId(i) for i in range(nodes)]
        self.cores = {m: RicartAgrawala(m, members) for m in members}
        self.granted = {m: threading.Event() for m in members}
        self.queue_max = queue_max
        self.delivered = 0
        self._lock = threading.Lock()

    def step(self, node: int, event: Acquire | Release) -> None:
        """Feed ``event`` to ``node``'s core and deliver every resulting message."""
        with self._lock:
            pending: deque[tuple[NodeId, NodeId, bytes]] = deque()
            self._apply(NodeId(node), event, pending)
            while pending:
                src, dst, data = pending.popleft()
                self.delivered += 1
                self._apply(dst, Receive(src, decode_mutex_message(data)), pending)

    def _apply(self, node: NodeId, event: Acquire | Release | Receive,
               pending: deque[tuple[NodeId, NodeId, bytes]]) -> None:  # fmt: skip
        out = self.cores[node].step(event)
        for dst, msg in out.send:
            if len(pending) >= self.queue_max:
                raise RollingError(f"mutex bus queue past queue_max {self.queue_max}")
            pending.append((node, dst, msg.encode()))
        if any(isinstance(ev, Granted) for ev in out.events):
            self.granted[node].set()


def rolling_restart(ops: NodeOps, nodes: int, *, timeout_s: float = 120.0,
                    poll_s: float = 0.2, use_mutex: bool = True,
                    progress: Callable[[str], Any] | None = None) -> Timeline:  # fmt: skip
    """Restart nodes ``0..nodes-1`` one at a time; return the timeline.

    Args:
        ops: node operations (restart, height).
        nodes: number of validators.
        timeout_s: longest wait for the section, or for a node to catch up.
        poll_s: height polling period.
        use_mutex: False skips the mutex (negative control; never for real use).
        progress: called with one line per step.

    Raises:
        RollingError: a participant failed (the first error is re-raised after all threads end).
    """
    say = progress or (lambda _m: None)
    timeline = Timeline()
    bus = MutexBus(nodes)
    errors: list[BaseException] = []

    def participant(i: int) -> None:
        try:
            if use_mutex:
                bus.step(i, Acquire())
                if not bus.granted[NodeId(i)].wait(timeout_s):
                    raise RollingError(f"node {i}: critical section not granted in {timeout_s:g} s")
            timeline.record(i, "enter")
            timeline.record(i, "down")
            say(f"node {i}: restarting")
            ops.restart(i)
            height = _wait_caught_up(ops, i, nodes, timeout_s, poll_s)
            timeline.record(i, "up", height)
            say(f"node {i}: healthy at height {height}")
            timeline.record(i, "release", height)
            if use_mutex:
                bus.step(i, Release())
        except BaseException as e:  # re-raised by the caller after every thread ends
            errors.append(e)

    threads = [threading.Thread(target=participant, args=(i,), daemon=True) for i in range(nodes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s * (nodes + 1))
    if errors:
        raise errors[0]
    if any(t.is_alive() for t in threads):
        raise RollingError("a participant did not finish in time")
    return timeline


def _wait_caught_up(ops: NodeOps, i: int, nodes: int, timeout_s: float, poll_s: float) -> int:
    """Wait until node ``i`` answers with a height >= every other answering node's height."""
    deadline = time.monotonic() + timeout_s
    last: tuple[int | None, int] = (None, 0)
    while time.monotonic() < deadline:
        others = [h for j in range(nodes) if j != i and (h := ops.height(j)) is not None]
        target = max(others, default=0)
        mine = ops.height(i)
        last = (mine, target)
        if mine is not None and mine >= target and mine > 0:
            return mine
        time.sleep(poll_s)
    raise RollingError(f"node {i} not caught up in {timeout_s:g} s (height {last[0]}, "
                       f"others at {last[1]})")  # fmt: skip


class TestnetOps:
    """:class:`NodeOps` over a real :class:`~testnet.local.Testnet`."""

    __test__ = False  # not a pytest class

    def __init__(self, net: Any, start_timeout_s: float = 60.0) -> None:
        self.net = net
        self.start_timeout_s = start_timeout_s

    def restart(self, index: int) -> None:
        self.net.restart(index, wait=True, timeout=self.start_timeout_s)

    def height(self, index: int) -> int | None:
        h: int | None = self.net.height(index, timeout=1.0)
        return h


def render_timeline(timeline: Timeline, violations: list[Violation]) -> str:
    """Human timeline: one line per event, then the verdict."""
    lines = [f"  t={e.t:7.2f}s  node {e.node}  {e.kind}"
             + (f"  (height {e.height})" if e.height is not None else "")
             for e in timeline.events]  # fmt: skip
    verdict = "OK: never two down" if not violations else "VIOLATIONS"
    lines.append(verdict)
    lines += [f"  {v.check}: {v.detail}" for v in violations]
    return "\n".join(lines)

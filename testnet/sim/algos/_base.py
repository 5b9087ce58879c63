"""Shared parts of the classic-algorithm simulations: config, result, and a message loop.

Theory of operation
-------------------
:class:`MessageLoop` moves messages between nodes in virtual ticks over the simulator's own
:class:`~testnet.sim.network.Network` (seeded delay, drop, duplicate, reorder per link),
with the same ``(tick, sequence)`` heap discipline as :mod:`testnet.sim.world`, so a seed
replays exactly and :class:`~testnet.sim.trace.Trace` gives the same digest. Every message
is encoded, decoded again (the codec round trip is checked) and handed to the harness. A
FIFO option keeps each link in send order (Lamport's mutex needs it); a ``drop`` hook lets a
negative control lose chosen messages.

The algorithms' cores have their own inputs and outputs (not the engine contract), which is
why they run here rather than inside :class:`~testnet.sim.world.World`.

Statuses and exit codes are the simulator's: pass 0, crash 1, liveness 2, safety 3.

Called by: the harness modules of this package.
"""

from __future__ import annotations

import heapq
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from testnet.sim.network import LinkProfile, Network
from testnet.sim.runner import EXIT_CODES
from testnet.sim.trace import Trace, short_hash
from testnet.sim.world import derive_rng

__all__ = ["SEVERITY", "AlgoConfig", "AlgoResult", "MessageLoop"]

SEVERITY = {"pass": 0, "crash": 1, "liveness": 2, "safety": 3}
_IN_FLIGHT_MAX = 200_000


@dataclass(frozen=True)
class AlgoConfig:
    """One run of one algorithm's simulation.

    ``control`` names a negative control (assumption broken on purpose), ``""`` for none;
    ``byzantine`` is the number of Byzantine nodes (Bracha only; ``None``: ``f``).
    """

    algo: str
    seed: int = 0
    nodes: int = 4
    control: str = ""
    byzantine: int | None = None
    ticks: int = 200
    keep_trace: bool = False

    def replay_command(self) -> str:
        parts = ["phalanx", "sim", "--algo", self.algo, "--nodes", str(self.nodes),
                 "--seed", str(self.seed)]
        if self.control:
            parts += ["--control", self.control]
        if self.ticks != 200:
            parts += ["--ticks", str(self.ticks)]
        return shlex.join(parts)


@dataclass(slots=True)
class AlgoResult:
    config: AlgoConfig
    status: str = "pass"
    detail: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)
    digest: str = ""
    trace_lines: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def replay(self) -> str:
        return self.config.replay_command()

    def fail(self, status: str, detail: str) -> None:
        """Record a failure; the most severe one wins, the first of equal severity stays.

        Every failure is tallied in ``counts`` under ``violations_<property>`` (the first
        word of ``detail``) so a run shows all the properties it broke.
        """
        prop = detail.split(":", 1)[0].split(" ", 1)[0]
        key = f"violations_{prop}"
        self.counts[key] = self.counts.get(key, 0) + 1
        if SEVERITY[status] > SEVERITY[self.status]:
            self.status, self.detail = status, detail

    def line(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        figs = ", ".join(f"{k} {v:.2f}" for k, v in sorted(self.figures.items()))
        text = (f"{self.config.algo} n={self.config.nodes} seed={self.config.seed}"
                f"{' control=' + self.config.control if self.config.control else ''}: "
                f"{self.status} | {counts}{' | ' + figs if figs else ''}")
        if self.status != "pass":
            text += f"\n  FAILED ({self.status}): {self.detail}\n  replay: {self.replay}"
        return text

    def summary(self) -> dict[str, Any]:
        return {"algo": self.config.algo, "seed": self.config.seed, "nodes": self.config.nodes,
                "control": self.config.control or None, "status": self.status,
                "detail": self.detail or None, "counts": dict(self.counts),
                "figures": dict(self.figures), "digest": self.digest, "replay": self.replay}


class MessageLoop:
    """Seeded message delivery between ``nodes`` nodes (see the module docstring).

    Args:
        seed: the run's seed (a child RNG named ``network`` drives the links).
        nodes: node ids ``0..nodes-1``.
        profile: how every link behaves.
        decode: the codec under test; every message is round-tripped through it.
        fifo: keep each directed link in send order.
        keep_trace: keep trace lines for printing.
    """

    def __init__(self, seed: int, nodes: int, profile: LinkProfile,
                 decode: Callable[[bytes], Any], fifo: bool = False,
                 keep_trace: bool = False) -> None:
        ids = list(range(nodes))
        links = {(a, b): profile for a in ids for b in ids if a != b}
        self.network = Network(derive_rng(seed, "network"), ids, links)
        self.trace = Trace(keep_lines=keep_trace)
        self.decode = decode
        self.fifo = fifo
        self.tick = 0
        self.sent: dict[str, int] = {}
        self.received = 0
        self.control_drops = 0
        self.drop: Callable[[int, int, Any], bool] | None = None
        self.down: set[int] = set()
        self._heap: list[tuple[int, int, int, int, Any]] = []
        self._seq = 0
        self._last: dict[tuple[int, int], int] = {}

    @property
    def in_flight(self) -> int:
        return len(self._heap)

    def messages_sent(self) -> int:
        return sum(self.sent.values())

    def send(self, src: int, dst: int, msg: Any) -> None:
        """Put one message on the link ``src -> dst`` (lost if the link drops it)."""
        data = msg.encode()
        again = self.decode(data)
        if again != msg or again.encode() != data:
            raise AssertionError(f"codec round trip changed {msg!r}")
        name = type(msg).__name__
        self.sent[name] = self.sent.get(name, 0) + 1
        digest = short_hash(data)
        self.trace.record(self.tick, "send", src, dst, digest)
        if self.drop is not None and self.drop(src, dst, msg):
            self.control_drops += 1
            self.trace.record(self.tick, "ctl-drop", src, dst, digest)
            return
        for arrival in self.network.transmit(src, dst, self.tick):
            if self.fifo:
                arrival = max(arrival, self._last.get((src, dst), 0))
                self._last[(src, dst)] = arrival
            self._seq += 1
            heapq.heappush(self._heap, (arrival, self._seq, src, dst, again))
        if len(self._heap) > _IN_FLIGHT_MAX:
            raise AssertionError("too many messages in flight: the harness loops")

    def advance(self) -> list[tuple[int, int, Any]]:
        """Move to the next tick; return ``(src, dst, msg)`` arriving now, in order."""
        self.tick += 1
        due = []
        while self._heap and self._heap[0][0] <= self.tick:
            _, _, src, dst, msg = heapq.heappop(self._heap)
            if dst in self.down:
                self.trace.record(self.tick, "downloss", src, dst)
                continue
            self.received += 1
            self.trace.record(self.tick, "recv", src, dst, type(msg).__name__)
            due.append((src, dst, msg))
        return due

    def finish(self, result: AlgoResult) -> AlgoResult:
        """Copy the loop's counters and digest into ``result``."""
        result.counts.update({f"sent_{k}": v for k, v in sorted(self.sent.items())})
        result.counts["messages"] = self.messages_sent()
        result.counts["received"] = self.received
        result.counts["dropped"] = self.network.dropped + self.control_drops
        result.counts["duplicated"] = self.network.duplicated
        result.counts["ticks"] = self.tick
        result.digest = self.trace.digest()
        result.trace_lines = list(self.trace.lines or [])
        return result

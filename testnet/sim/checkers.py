"""Safety and liveness checkers, run by the world after every event.

Properties (over honest endpoints only; Byzantine ones and both copies of a twin are exempt):

* **agreement** -- no two honest replicas deliver different values for one seq;
* **order** -- per replica, deliveries within one incarnation go seq by seq without gaps or
  repeats; the first delivery of an incarnation (after a restart or a state install) may
  re-deliver seqs the application already holds, which must then be the same values;
* **validity** -- a delivered value was proposed by the workload, forged by a Byzantine
  wrapper, or is ``b""`` (a null request);
* **certificate** -- every delivery carries a quorum certificate that the engine's own
  verification function accepts;
* **evidence** -- no honest replica is blamed by evidence (an honest replica never signs two
  conflicting messages, also not across a crash);
* **liveness** -- after heal, every honest replica's application height grows by the demanded
  number of deliveries within the tick budget.

A violation records the property, the seq and *both* conflicting values with the replicas
that delivered them. The first violation stops the run.

Called by: :mod:`testnet.sim.world` (``on_*`` hooks) and :mod:`testnet.sim.runner`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from consensus.contract import Delivery, Evidence

__all__ = ["SafetyChecker", "Violation"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken property, with both sides of the conflict where there are two."""

    prop: str
    tick: int
    seq: int = -1
    first_endpoint: int = -1
    first_value: bytes = b""
    second_endpoint: int = -1
    second_value: bytes = b""
    detail: str = ""

    def describe(self) -> str:
        text = f"{self.prop} violated at tick {self.tick}"
        if self.seq >= 0:
            text += f", seq {self.seq}"
        if self.first_endpoint >= 0:
            text += f": e{self.first_endpoint} delivered {self.first_value!r}"
        if self.second_endpoint >= 0:
            text += f", e{self.second_endpoint} delivered {self.second_value!r}"
        if self.detail:
            text += f" ({self.detail})"
        return text


class _ReplicaView:
    __slots__ = ("fresh", "last_seq")

    def __init__(self) -> None:
        self.last_seq = 0      # last seq delivered in this incarnation (or installed)
        self.fresh = True      # no delivery yet since start, restart or state install


class SafetyChecker:
    """Incremental safety checks; ``violation`` holds the first failure, if any."""

    def __init__(self, honest: set[int], node_of: dict[int, int],
                 verify: Callable[[Delivery], bool], is_valid_value: Callable[[bytes], bool],
                 honest_nodes: set[int]) -> None:
        self._honest = honest
        self._honest_nodes = honest_nodes
        self._node_of = node_of
        self._verify = verify
        self._is_valid_value = is_valid_value
        self._views = {e: _ReplicaView() for e in sorted(node_of)}
        self.committed: dict[int, tuple[bytes, int]] = {}   # seq -> (value, first endpoint)
        self.violation: Violation | None = None
        self.checked = 0

    def _fail(self, v: Violation) -> None:
        if self.violation is None:
            self.violation = v

    def on_restart(self, endpoint: int) -> None:
        self._views[endpoint] = _ReplicaView()

    def on_install(self, endpoint: int, seq: int) -> None:
        view = self._views[endpoint]
        view.last_seq = max(view.last_seq, seq)
        view.fresh = True

    def on_delivery(self, tick: int, endpoint: int, d: Delivery, app_log: list[bytes]) -> bool:
        """Check one delivery against the replica's application log (values at seq 1..h).

        Returns True if the application should append the value (it is the next seq).
        """
        self.checked += 1
        honest = endpoint in self._honest
        view = self._views[endpoint]
        height = len(app_log)
        if honest:
            if view.fresh:
                if d.seq < 1 or d.seq > height + 1:
                    self._fail(Violation("order", tick, d.seq, endpoint, d.value,
                                         detail=f"first delivery after (re)start or install "
                                                f"skips from height {height}"))
            elif d.seq != view.last_seq + 1:
                self._fail(Violation("order", tick, d.seq, endpoint, d.value,
                                     detail=f"expected seq {view.last_seq + 1}"))
            if 1 <= d.seq <= height and app_log[d.seq - 1] != d.value:
                self._fail(Violation("agreement", tick, d.seq, endpoint, app_log[d.seq - 1],
                                     endpoint, d.value, "one replica re-delivered another value"))
            if not self._is_valid_value(d.value):
                self._fail(Violation("validity", tick, d.seq, endpoint, d.value,
                                     detail="value neither proposed nor null"))
            if not self._verify(d):
                self._fail(Violation("certificate", tick, d.seq, endpoint, d.value,
                                     detail=f"certificate rejected, signers "
                                            f"{list(d.certificate.signers())}"))
            self._agree(tick, endpoint, d.seq, d.value)
        view.fresh = False
        view.last_seq = d.seq
        return d.seq == height + 1

    def on_app_value(self, tick: int, endpoint: int, seq: int, value: bytes) -> None:
        """A value entered an honest replica's application state (delivery or install)."""
        if endpoint in self._honest:
            self._agree(tick, endpoint, seq, value)

    def _agree(self, tick: int, endpoint: int, seq: int, value: bytes) -> None:
        first = self.committed.get(seq)
        if first is None:
            self.committed[seq] = (value, endpoint)
        elif first[0] != value:
            self._fail(Violation("agreement", tick, seq, first[1], first[0], endpoint, value))

    def on_evidence(self, tick: int, endpoint: int, ev: Evidence) -> None:
        if endpoint in self._honest and int(ev.offender) in self._honest_nodes:
            self._fail(Violation("evidence", tick, first_endpoint=endpoint,
                                 detail=f"honest node {int(ev.offender)} blamed for {ev.kind}"))

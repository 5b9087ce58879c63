"""The simulated network: seeded per-link delays, drops, duplicates, reordering, partitions.

Theory of operation
-------------------
Messages move between *endpoints* (one per engine instance; twins give one node two
endpoints). :meth:`Network.transmit` decides, at send time, how many copies of a message
arrive (0 when dropped or the link is cut, 2 when duplicated) and the tick of each arrival.
Each directed link has its own :class:`LinkProfile`, drawn once from the seed; partitions
cut directed links (a symmetric partition cuts both directions, a one-way partition one).
A cut is checked at send time and again at arrival (:meth:`Network.is_cut`), so a message in
flight when a partition starts is lost too.

Invariants: every arrival is at least one tick after the send, so the world never loops
within a tick; all randomness comes from the one ``random.Random`` handed in; iteration is
over sorted endpoints only.

Called by: :mod:`testnet.sim.world`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["DELAY_KINDS", "LinkProfile", "Network"]

DELAY_KINDS = ("uniform", "exponential")


@dataclass(frozen=True, slots=True)
class LinkProfile:
    """How one directed link behaves. Probabilities are per message copy."""

    delay_kind: str = "uniform"
    delay_ticks_min: int = 1
    delay_ticks_max: int = 3        # the cap, also for the exponential kind
    delay_ticks_mean: float = 2.0   # exponential kind only
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0            # chance of an extra delay that overtakes later messages
    reorder_ticks_max: int = 6

    def __post_init__(self) -> None:
        if self.delay_kind not in DELAY_KINDS:
            raise ValueError(f"unknown delay kind {self.delay_kind!r}")
        if not 1 <= self.delay_ticks_min <= self.delay_ticks_max:
            raise ValueError("need 1 <= delay_ticks_min <= delay_ticks_max")
        for p in (self.drop, self.duplicate, self.reorder):
            if not 0.0 <= p <= 1.0:
                raise ValueError("probabilities must be within [0, 1]")


RELIABLE = LinkProfile()


class Network:
    """Per-link behaviour plus the set of cut links."""

    def __init__(self, rng: random.Random, endpoints: list[int],
                 profiles: dict[tuple[int, int], LinkProfile] | None = None) -> None:
        self._rng = rng
        self.endpoints = sorted(endpoints)
        self._profiles = dict(profiles or {})
        self._cuts: dict[tuple[int, int], int] = {}   # link -> number of active cuts
        self.reliable = False
        self.sent = 0
        self.dropped = 0
        self.duplicated = 0
        self.cut_losses = 0

    def profile(self, src: int, dst: int) -> LinkProfile:
        if self.reliable:
            return RELIABLE
        return self._profiles.get((src, dst), RELIABLE)

    def cut(self, links: list[tuple[int, int]]) -> None:
        """Start one partition over ``links`` (directed). Cuts nest: see :meth:`mend`."""
        for link in links:
            self._cuts[link] = self._cuts.get(link, 0) + 1

    def mend(self, links: list[tuple[int, int]]) -> None:
        """End one partition started by :meth:`cut` with the same ``links``."""
        for link in links:
            left = self._cuts.get(link, 0) - 1
            if left > 0:
                self._cuts[link] = left
            else:
                self._cuts.pop(link, None)

    def heal(self) -> None:
        """Remove every cut and make every link reliable from now on."""
        self._cuts.clear()
        self.reliable = True

    def is_cut(self, src: int, dst: int) -> bool:
        return (src, dst) in self._cuts

    def transmit(self, src: int, dst: int, now: int) -> list[int]:
        """Return the arrival ticks of the copies of one message sent now from src to dst."""
        self.sent += 1
        if self.is_cut(src, dst):
            self.cut_losses += 1
            return []
        prof = self.profile(src, dst)
        rng = self._rng
        if prof.drop and rng.random() < prof.drop:
            self.dropped += 1
            return []
        copies = 1
        if prof.duplicate and rng.random() < prof.duplicate:
            copies = 2
            self.duplicated += 1
        arrivals = []
        for _ in range(copies):
            arrivals.append(now + self._delay(prof))
        return arrivals

    def _delay(self, prof: LinkProfile) -> int:
        rng = self._rng
        if prof.delay_kind == "uniform":
            delay = rng.randint(prof.delay_ticks_min, prof.delay_ticks_max)
        else:
            delay = prof.delay_ticks_min + int(rng.expovariate(1.0 / prof.delay_ticks_mean))
            delay = min(delay, prof.delay_ticks_max)
        if prof.reorder and rng.random() < prof.reorder:
            delay += rng.randint(1, prof.reorder_ticks_max)
        return delay

"""The fault plan: which links misbehave, which partitions, crashes and clock drift, from a seed.

Theory of operation
-------------------
:func:`draw_plan` turns a :class:`FaultConfig` (the *maxima*) and a ``random.Random`` into
one concrete :class:`FaultPlan`: a :class:`LinkProfile` per directed link, a list of timed
:class:`Fault` events inside the safety phase, and a tick rate per endpoint. The plan is a
pure value: printing it (``describe()``) tells a reader exactly what a failing seed did.

Partitions are drawn over endpoints, so they can separate twins; when twins exist, half of
the symmetric partitions put the two copies of each twin on opposite sides (the scenarios the
Twins method enumerates; with several twins, half of those put every first copy on one
side, so the twins act in concert). Crashes only hit honest endpoints; a crashed endpoint restarts at
the end of its fault window, or at heal.

Called by: :mod:`testnet.sim.runner`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from testnet.sim.network import LinkProfile

__all__ = ["FAULT_PRESETS", "Fault", "FaultConfig", "FaultPlan", "draw_plan"]


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Upper bounds for the faults drawn per seed. ``FaultConfig.none()`` disables all."""

    drop_max: float = 0.15
    duplicate_max: float = 0.05
    reorder_max: float = 0.1
    delay_ticks_max: int = 6
    partitions_max: int = 2
    oneway_partitions_max: int = 2
    partition_ticks_max: int = 60
    crashes_max: int = 1
    crash_ticks_max: int = 80
    drift_nodes_max: int = 1
    drift_rate_min: float = 0.5   # a drifting node ticks at this fraction of the world rate

    @classmethod
    def none(cls) -> FaultConfig:
        return cls(drop_max=0.0, duplicate_max=0.0, reorder_max=0.0, delay_ticks_max=1,
                   partitions_max=0, oneway_partitions_max=0, crashes_max=0,
                   drift_nodes_max=0)

    @classmethod
    def crash_only(cls) -> FaultConfig:
        """Crashes and partitions but every link loses nothing: useful for quick checks."""
        return cls(drop_max=0.0, duplicate_max=0.0, reorder_max=0.0)


@dataclass(frozen=True, slots=True)
class Fault:
    """One timed fault. ``kind`` is ``partition``, ``oneway`` or ``crash``.

    For partitions ``links`` lists the directed endpoint pairs cut from ``start`` to ``end``;
    for a crash ``endpoint`` is down from ``start`` and restarts at ``end``.
    """

    kind: str
    start: int
    end: int
    endpoint: int = -1
    groups: tuple[tuple[int, ...], ...] = ()
    links: tuple[tuple[int, int], ...] = ()

    def describe(self) -> str:
        if self.kind == "crash":
            return f"crash e{self.endpoint} @{self.start}..{self.end}"
        arrow = "|" if self.kind == "partition" else "->x"
        sides = f" {arrow} ".join("{" + ",".join(f"e{e}" for e in g) + "}" for g in self.groups)
        return f"{self.kind} {sides} @{self.start}..{self.end}"


@dataclass(frozen=True, slots=True)
class FaultPlan:
    profiles: dict[tuple[int, int], LinkProfile] = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()
    rates: dict[int, float] = field(default_factory=dict)   # endpoint -> ticks per world tick

    def describe(self) -> list[str]:
        lines = [f.describe() for f in self.faults]
        lines += [f"drift e{e} rate {r:.2f}" for e, r in sorted(self.rates.items()) if r != 1.0]
        lossy = [p for p in self.profiles.values() if p.drop or p.duplicate or p.reorder]
        if self.profiles:
            worst = max(self.profiles.values(), key=lambda p: p.drop)
            lines.append(
                f"links: {len(lossy)}/{len(self.profiles)} lossy, drop<={worst.drop:.2f}, "
                f"delay<={max(p.delay_ticks_max for p in self.profiles.values())}")
        return lines


def _profile(rng: random.Random, cfg: FaultConfig) -> LinkProfile:
    cap = max(1, cfg.delay_ticks_max)
    kind = rng.choice(("uniform", "exponential"))
    low = rng.randint(1, max(1, cap // 2))
    return LinkProfile(
        delay_kind=kind,
        delay_ticks_min=low,
        delay_ticks_max=rng.randint(low, cap),
        delay_ticks_mean=rng.uniform(1.0, max(1.0, cap / 2)),
        drop=rng.uniform(0.0, cfg.drop_max) if cfg.drop_max else 0.0,
        duplicate=rng.uniform(0.0, cfg.duplicate_max) if cfg.duplicate_max else 0.0,
        reorder=rng.uniform(0.0, cfg.reorder_max) if cfg.reorder_max else 0.0,
    )


def _window(rng: random.Random, ticks: int, length_max: int) -> tuple[int, int]:
    start = rng.randrange(0, max(1, ticks))
    end = min(ticks, start + rng.randint(1, max(1, length_max)))
    return start, end


def _split(rng: random.Random, endpoints: list[int],
           twins: list[tuple[int, int]], separate_twins: bool) -> tuple[list[int], list[int]]:
    left: list[int] = []
    right: list[int] = []
    placed: set[int] = set()
    if separate_twins:
        aligned = rng.random() < 0.5   # all first copies on one side: twins acting in concert
        flip = rng.random() < 0.5
        for a, b in twins:
            if (flip if aligned else rng.random() < 0.5):
                a, b = b, a
            left.append(a)
            right.append(b)
            placed.update((a, b))
    for e in endpoints:
        if e not in placed:
            (left if rng.random() < 0.5 else right).append(e)
    if not left or not right:   # never an empty side: move one endpoint over
        both = sorted(left + right)
        pick = both[rng.randrange(len(both))]
        left, right = [pick], [e for e in both if e != pick]
    return sorted(left), sorted(right)


def draw_plan(rng: random.Random, cfg: FaultConfig, endpoints: list[int], honest: list[int],
              ticks: int, twins: list[tuple[int, int]] | None = None) -> FaultPlan:
    """Draw one fault plan for a safety phase of ``ticks`` ticks.

    Args:
        rng: the faults' own random stream.
        cfg: maxima for each kind of fault.
        endpoints: every endpoint, sorted.
        honest: endpoints that may crash or drift.
        ticks: length of the safety phase; every fault starts inside it.
        twins: endpoint pairs that share one key.

    Returns:
        The concrete plan.
    """
    twins = twins or []
    endpoints = sorted(endpoints)
    profiles = {(a, b): _profile(rng, cfg) for a in endpoints for b in endpoints if a != b}
    faults: list[Fault] = []
    for _ in range(rng.randint(0, cfg.partitions_max)):
        start, end = _window(rng, ticks, cfg.partition_ticks_max)
        left, right = _split(rng, endpoints, twins, bool(twins) and rng.random() < 0.5)
        links = tuple((a, b) for a in left for b in right) + tuple(
            (b, a) for a in left for b in right)
        faults.append(Fault("partition", start, end, groups=(tuple(left), tuple(right)),
                            links=links))
    for _ in range(rng.randint(0, cfg.oneway_partitions_max)):
        start, end = _window(rng, ticks, cfg.partition_ticks_max)
        src, dst = _split(rng, endpoints, twins, False)
        faults.append(Fault("oneway", start, end, groups=(tuple(src), tuple(dst)),
                            links=tuple((a, b) for a in src for b in dst)))
    crashable = sorted(honest)
    for _ in range(rng.randint(0, cfg.crashes_max) if crashable else 0):
        start, end = _window(rng, ticks, cfg.crash_ticks_max)
        faults.append(Fault("crash", start, end, endpoint=rng.choice(crashable)))
    rates = {e: 1.0 for e in endpoints}
    for _ in range(rng.randint(0, cfg.drift_nodes_max) if crashable else 0):
        rates[rng.choice(crashable)] = round(rng.uniform(cfg.drift_rate_min, 1.0), 2)
    faults.sort(key=lambda f: (f.start, f.end, f.kind, f.endpoint, f.groups))
    return FaultPlan(profiles=profiles, faults=tuple(faults), rates=rates)


#: Named fault configurations (``phalanx sim --faults NAME``).
FAULT_PRESETS: dict[str, FaultConfig] = {
    "default": FaultConfig(),
    "none": FaultConfig.none(),
    "crash": FaultConfig.crash_only(),
    "lossy": FaultConfig(drop_max=0.3, duplicate_max=0.1, reorder_max=0.3, delay_ticks_max=10),
    "heavy": FaultConfig(partitions_max=3, oneway_partitions_max=2, crashes_max=2,
                         drift_nodes_max=2),
    "twins": FaultConfig(drop_max=0.05, partitions_max=3, oneway_partitions_max=0,
                         partition_ticks_max=150, crashes_max=0),
}

"""Seed sweeps: run many seeded simulations, optionally over worker processes, and tally them.

Every run is independent and deterministic, so running them in ``jobs`` processes changes
nothing but the wall time; results come back in seed order. A :class:`SweepReport` keeps
the tally and, for every failing seed, its one-paragraph description and replay command.

Called by: tests/testnet/test_sweeps.py, test_negative_controls.py, ``phalanx sim --seeds``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace

from testnet.sim.runner import SimConfig, SimResult, run

__all__ = ["SweepOutcome", "SweepReport", "default_jobs", "sweep"]


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    """The part of a :class:`SimResult` a sweep keeps (small, picklable)."""

    seed: int
    status: str
    digest: str
    text: str          # violation, crash or liveness description ("" when passing)
    replay: str
    faults: tuple[str, ...]
    counts: tuple[tuple[str, int], ...] = ()


@dataclass(slots=True)
class SweepReport:
    name: str
    outcomes: list[SweepOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def failures(self, *statuses: str) -> list[SweepOutcome]:
        wanted = statuses or ("crash", "liveness", "safety")
        return [o for o in self.outcomes if o.status in wanted]

    def total(self, counter: str) -> int:
        """Sum of one of the runs' counters (``sent``, ``cut_losses``, ``wants_served``...)."""
        return sum(dict(o.counts).get(counter, 0) for o in self.outcomes)

    def faulted(self, *kinds: str) -> int:
        """Runs whose fault plan had a fault of one of ``kinds`` (crash, partition, oneway)."""
        return sum(1 for o in self.outcomes if any(f.startswith(kinds) for f in o.faults))

    def line(self) -> str:
        return (f"sweep {self.name}: {len(self.outcomes)} seeds, {self.count('safety')} safety, "
                f"{self.count('liveness')} liveness, {self.count('crash')} crash "
                f"(runs with crashes {self.faulted('crash')}, partitions "
                f"{self.faulted('partition', 'oneway')}; messages "
                f"{self.total('sent')}, dropped {self.total('dropped')}, undecodable "
                f"{self.total('decode_errors')}, state installs {self.total('wants_served')})")

    def explain(self, limit: int = 5) -> str:
        parts = []
        for o in self.failures()[:limit]:
            parts.append(f"seed {o.seed} {o.status}: {o.text}\n  faults: {'; '.join(o.faults)}"
                         f"\n  replay: {o.replay}")
        return "\n".join(parts)


def outcome(result: SimResult) -> SweepOutcome:
    if result.violation is not None:
        text = result.violation.describe()
    elif result.crash is not None:
        text = (f"e{result.crash.endpoint} raised during {result.crash.event} at tick "
                f"{result.crash.tick}: {result.crash.error}")
    else:
        text = result.liveness_detail
    return SweepOutcome(result.config.seed, result.status, result.digest, text, result.replay,
                        tuple(result.faults), tuple(sorted(result.counts.items())))


def _run_one(cfg: SimConfig) -> SweepOutcome:
    return outcome(run(cfg))


def default_jobs() -> int:
    """Worker processes for sweeps: ``PHALANX_SIM_JOBS`` or min(2, cpu count)."""
    env = os.environ.get("PHALANX_SIM_JOBS")
    if env:
        return max(1, int(env))
    return max(1, min(2, os.cpu_count() or 1))


def sweep(name: str, base: SimConfig, seeds: Iterable[int], jobs: int | None = None) -> SweepReport:
    """Run ``base`` once per seed (in ``jobs`` processes) and tally the outcomes in seed order."""
    configs = [replace(base, seed=s) for s in seeds]
    jobs = default_jobs() if jobs is None else max(1, jobs)
    report = SweepReport(name)
    if jobs == 1 or len(configs) < 2:
        report.outcomes = [_run_one(c) for c in configs]
        return report
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        chunk = max(1, len(configs) // (jobs * 4))
        report.outcomes = list(pool.map(_run_one, configs, chunksize=chunk))
    return report

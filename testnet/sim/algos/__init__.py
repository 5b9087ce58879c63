"""Simulations and checkers for the classic algorithms: clocks, broadcast, mutex, election.

Each harness runs one seeded execution of one algorithm's sans-IO core over the simulator's
seeded network (:class:`~testnet.sim.algos._base.MessageLoop`), checks the algorithm's
properties, and returns an :class:`AlgoResult` with the simulator's statuses and exit codes
(pass 0, crash 1, liveness 2, safety 3), message counts and figures. Negative controls
(``control=``) break one assumption on purpose; the checkers must flag them.

========================  ======================================  ==========================
algo                      checks                                  negative controls
========================  ======================================  ==========================
``lamport``               clock condition                         ``no-merge``
``vector``                vector characterization                 ``no-merge``
``bracha``                agreement, integrity, validity,         ``over-f``
                          totality with f Byzantine
``causal``                causal delivery order, all delivered    ``no-holdback``
``ricart-agrawala``       mutual exclusion, progress, 2(n-1)      ``dropped-reply``,
                                                                  ``greedy``
``lamport-mutex``         mutual exclusion, progress, 3(n-1)      ``dropped-reply``,
                                                                  ``greedy``
``ring``                  one leader, highest live id wins        ``lost-token``
``bully``                 one leader, highest live id wins        (none)
``fd-study``              completeness (all detectors), eventual  ``fixed-timeout``
                          accuracy (adaptive); prints a table
``clocksync``             Cristian rtt/2 bound, Berkeley          ``no-outlier-rejection``
                          precision and accuracy with a liar
========================  ======================================  ==========================

Entry points: :func:`run_algo`, :func:`sweep_algo`, ``phalanx sim --algo NAME``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from testnet.sim.algos import bracha, causal, clocks, election, mutex
from testnet.sim.algos._base import SEVERITY, AlgoConfig, AlgoResult

__all__ = ["ALGOS", "CONTROLS", "AlgoConfig", "AlgoResult", "AlgoSweep", "run_algo",
           "sweep_algo"]

ALGOS: dict[str, Callable[[AlgoConfig], AlgoResult]] = {
    "lamport": clocks.run_clocks,
    "vector": clocks.run_clocks,
    "bracha": bracha.run_bracha,
    "causal": causal.run_causal,
    "ricart-agrawala": mutex.run_mutex,
    "lamport-mutex": mutex.run_mutex,
    "ring": election.run_election,
    "bully": election.run_election,
}

CONTROLS: dict[str, tuple[str, ...]] = {
    "lamport": clocks.CONTROLS, "vector": clocks.CONTROLS, "bracha": bracha.CONTROLS,
    "causal": causal.CONTROLS, "ricart-agrawala": mutex.CONTROLS,
    "lamport-mutex": mutex.CONTROLS, "ring": election.CONTROLS, "bully": (),
}


# The failure-detection study and the clock-sync simulation live in testnet.sim and import
# this package's _base, so they are imported on first use (no import cycle).
def _fd_study(cfg: AlgoConfig) -> AlgoResult:
    from testnet.sim.fd_study import run_fd_study

    return run_fd_study(cfg)


def _clocksync(cfg: AlgoConfig) -> AlgoResult:
    from testnet.sim.clocksync_sim import run_clocksync

    return run_clocksync(cfg)


ALGOS["fd-study"] = _fd_study
ALGOS["clocksync"] = _clocksync
CONTROLS["fd-study"] = ("fixed-timeout",)           # == testnet.sim.fd_study.CONTROLS
CONTROLS["clocksync"] = ("no-outlier-rejection",)   # == testnet.sim.clocksync_sim.CONTROLS


def run_algo(cfg: AlgoConfig) -> AlgoResult:
    """Run one seeded simulation of ``cfg.algo``; a harness or core exception is ``crash``.

    Raises:
        ValueError: unknown algorithm or control, or an unusable node count.
    """
    fn = ALGOS.get(cfg.algo)
    if fn is None:
        raise ValueError(f"unknown algorithm {cfg.algo!r}; known: {', '.join(ALGOS)}")
    if cfg.control and cfg.control not in CONTROLS[cfg.algo]:
        raise ValueError(f"unknown control {cfg.control!r} for {cfg.algo}; known: "
                         f"{', '.join(CONTROLS[cfg.algo]) or 'none'}")
    if cfg.nodes < 2 or cfg.ticks < 1:
        raise ValueError("need at least 2 nodes and 1 tick")
    try:
        return fn(cfg)
    except ValueError:
        raise
    except Exception as exc:   # a core raised: report it like the simulator does
        result = AlgoResult(cfg)
        result.fail("crash", f"crash: {type(exc).__name__}: {exc}")
        return result


@dataclass(slots=True)
class AlgoSweep:
    """The results of one algorithm over many seeds."""

    base: AlgoConfig
    results: list[AlgoResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def total(self, counter: str) -> int:
        return sum(r.counts.get(counter, 0) for r in self.results)

    def worst(self) -> int:
        return max((r.exit_code for r in self.results), default=0)

    def median(self, figure: str) -> float:
        values = sorted(r.figures[figure] for r in self.results if figure in r.figures)
        if not values:
            return 0.0
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2

    def line(self) -> str:
        seeds = [r.config.seed for r in self.results]
        tally = ", ".join(f"{s} {self.count(s)}" for s in sorted(SEVERITY, key=lambda k: SEVERITY[k])
                          if self.count(s))
        figures = sorted({k for r in self.results for k in r.figures})
        figs = ", ".join(f"{k} {self.median(k):.2f}" for k in figures)
        ctl = f" control={self.base.control}" if self.base.control else ""
        return (f"sweep {self.base.algo} n={self.base.nodes}{ctl} seeds "
                f"{min(seeds, default=0)}..{max(seeds, default=0)}: {len(self.results)} runs, "
                f"{tally}; messages {self.total('messages')}"
                f"{'; median ' + figs if figs else ''}")


def sweep_algo(base: AlgoConfig, seeds: Iterable[int]) -> AlgoSweep:
    """Run ``base`` once per seed, in seed order."""
    out = AlgoSweep(base)
    out.results = [run_algo(replace(base, seed=s)) for s in seeds]
    return out

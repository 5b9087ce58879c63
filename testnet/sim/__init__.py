"""The deterministic simulator: N engines, a seeded faulty network, checkers, one seed replays.

Entry points: :func:`run` (one seed), :func:`sweep` (many seeds), ``phalanx sim`` on the
command line. Modules: ``world`` (the (tick, seq) event loop), ``network`` (links and
partitions), ``faults`` (the plan drawn from a seed), ``checkers`` (safety and liveness),
``runner`` (phases and report), ``trace`` (the digest), ``engines`` (adapters), ``toy`` (a
minimal engine for the simulator's own tests), ``sweep`` (seed ranges over processes).
"""

from testnet.sim.checkers import SafetyChecker, Violation
from testnet.sim.engines import ENGINES, EngineSpec
from testnet.sim.faults import FAULT_PRESETS, FaultConfig, FaultPlan
from testnet.sim.runner import EXIT_CODES, SimConfig, SimResult, run, summarize
from testnet.sim.sweep import SweepReport, sweep

__all__ = [
    "ENGINES",
    "EXIT_CODES",
    "FAULT_PRESETS",
    "EngineSpec",
    "FaultConfig",
    "FaultPlan",
    "SafetyChecker",
    "SimConfig",
    "SimResult",
    "SweepReport",
    "Violation",
    "run",
    "summarize",
    "sweep",
]

"""The benchmark targets ``phalanx bench TARGET`` knows, by name.

Each entry names a module (imported only when its target runs or its options are listed)
that provides:

* ``add_arguments(parser: argparse.ArgumentParser) -> None`` -- optional, target-specific
  options, added to the one ``bench`` parser (prefix them with the target name to avoid
  clashes, e.g. ``--sim-nodes``);
* ``run(args: argparse.Namespace) -> dict`` -- runs the benchmark and returns a JSON-able
  report (``args.runs``, ``args.quick`` and ``args.json`` are always present);
* ``render(report: dict) -> str`` -- the human table.

To add a target, append one line to :data:`BENCH_TARGETS`; ``cli/cmd_bench.py`` does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BENCH_TARGETS", "BenchTarget"]


@dataclass(frozen=True)
class BenchTarget:
    """One ``phalanx bench`` target: its module path and a one-line description."""

    module: str
    help: str


BENCH_TARGETS: dict[str, BenchTarget] = {
    "chain": BenchTarget(
        "testnet.bench_chain",
        "mempool admission and block apply+commit, as ratios to raw Ed25519 verification",
    ),
    "sim": BenchTarget(
        "testnet.bench_sim",
        "simulator: PBFT instances committed per CPU-second (n=4, no faults), hash vs Ed25519",
    ),
    "vm": BenchTarget(
        "testnet.bench_vm",
        "contract VM: instructions/s and gas/s on a loop contract, token transfers/s",
    ),
}

"""``phalanx bench TARGET``: run one of the benchmarks listed in :mod:`testnet.bench_registry`.

Options shared by every target: ``--runs N`` (medians over N runs, default 5), ``--quick``
(smaller payloads, for smoke tests) and ``--json`` (machine-readable report on stdout).
Targets add their own options through ``add_arguments``. Figures are printed, never judged
by a test: each report carries its payload and the exact command that produced it.

Called by: :mod:`cli.main` (discovered through ``register``).
"""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Any

from testnet.bench_registry import BENCH_TARGETS

__all__ = ["register"]


def register(subparsers: Any) -> None:
    lines = "\n".join(f"  {name:<8} {t.help}" for name, t in sorted(BENCH_TARGETS.items()))
    p = subparsers.add_parser(
        "bench",
        help="run a benchmark (chain, ...) and print medians",
        description="Run a benchmark and print medians over several runs.\n\ntargets:\n" + lines,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "target",
        choices=sorted(BENCH_TARGETS),
        metavar="TARGET",
        help="what to measure: " + ", ".join(sorted(BENCH_TARGETS)),
    )
    p.add_argument("--runs", type=int, default=5, help="runs to take the median of (default 5)")
    p.add_argument("--quick", action="store_true", help="small payloads (smoke test)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    for target in BENCH_TARGETS.values():
        module = importlib.import_module(target.module)
        add = getattr(module, "add_arguments", None)
        if add is not None:
            add(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from cli.main import CliError

    if args.runs < 1:
        raise CliError("--runs must be at least 1")
    module = importlib.import_module(BENCH_TARGETS[args.target].module)
    report = module.run(args)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(module.render(report))
    return 0

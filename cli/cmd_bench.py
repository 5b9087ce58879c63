"""``phalanx bench [TARGET]``: the network benchmark, or one listed in :mod:`testnet.bench_registry`.

Without a target, ``phalanx bench [--nodes 4] [--engine pbft|paxos] [--duration S]
[--rate R|--max] [--clients C] [--attach DIR] [--runs N] [--json]`` runs the network
benchmark (:mod:`testnet.bench`): a local testnet driven with signed transfers through its
API, once or (``--runs N``) N times with medians. ``--compare`` runs the whole question for
PBFT and Paxos (:mod:`testnet.bench_suite`).

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
import shlex
import sys
from pathlib import Path
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
        nargs="?",
        default=None,
        choices=sorted(BENCH_TARGETS),
        metavar="TARGET",
        help="what to measure: " + ", ".join(sorted(BENCH_TARGETS))
        + " (none: the network benchmark)",
    )
    net = p.add_argument_group("network benchmark (no TARGET)")
    net.add_argument("--nodes", type=int, default=None,
                     help="validators (default 4 for pbft, 3 for paxos)")
    net.add_argument("--engine", choices=("pbft", "paxos"), default="pbft")
    net.add_argument("--duration", type=float, default=20.0, help="seconds of load (default 20)")
    rate = net.add_mutually_exclusive_group()
    rate.add_argument("--rate", type=float, default=800.0, help="offered tx/s (default 800)")
    rate.add_argument("--max", action="store_true", help="offer as fast as the nodes accept")
    net.add_argument("--clients", type=int, default=2, help="load processes (default 2)")
    net.add_argument("--senders", type=int, default=200, help="sender accounts (default 200)")
    net.add_argument("--attach", type=Path, default=None, metavar="DIR",
                     help="use the running testnet in DIR instead of starting one")
    net.add_argument("--compare", action="store_true",
                     help="PBFT (--nodes, default 4) and Paxos (3): sustained tx/s at --max, "
                          "then latency at 80%% of it, --runs runs each (default 3)")
    p.add_argument("--runs", type=int, default=None,
                   help="runs to take the median of (default 5; network benchmark 1, "
                        "--compare 3)")
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

    if args.target is None:
        return _run_network(args)
    if args.runs is None:
        args.runs = 5
    if args.runs < 1:
        raise CliError("--runs must be at least 1")
    module = importlib.import_module(BENCH_TARGETS[args.target].module)
    report = module.run(args)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(module.render(report))
    return 0


def _run_network(args: argparse.Namespace) -> int:
    from cli.main import CliError
    from testnet.bench import NetBenchConfig, render, run_bench
    from testnet.bench_suite import compare, render_compare, render_runs, repeat
    from testnet.local import TestnetError

    if args.duration <= 0 or args.clients < 1 or args.senders < 2:
        raise CliError("--duration must be positive, --clients >= 1 and --senders >= 2")
    if args.rate is not None and args.rate <= 0 and not args.max:
        raise CliError("--rate must be positive")
    runs = args.runs if args.runs is not None else (3 if args.compare else 1)
    if runs < 1:
        raise CliError("--runs must be at least 1")
    if args.compare and (args.attach is not None or args.engine != "pbft"):
        raise CliError("--compare starts its own testnets for both engines: drop --attach "
                       "and --engine")
    nodes = args.nodes if args.nodes is not None else (3 if args.engine == "paxos" else 4)
    config = NetBenchConfig(
        nodes=nodes, engine=args.engine, duration_s=args.duration,
        rate=None if args.max else args.rate, clients=args.clients, senders=args.senders,
        attach=args.attach, command="phalanx " + shlex.join(sys.argv[1:]),
    )  # fmt: skip

    def one(c: NetBenchConfig) -> dict[str, Any]:
        return run_bench(c, progress=not args.json)

    try:
        if args.compare:
            report = compare(config, runs, one)
            text = render_compare(report)
        elif runs > 1:
            report = repeat(config, runs, one)
            text = render_runs(report, render)
        else:
            report = one(config)
            text = render(report)
    except TestnetError as e:
        raise CliError(str(e), 1) from None
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else text)
    return 0

"""``phalanx sim``: run the deterministic simulator for one seed or a sweep of seeds.

Exit codes: 0 pass, 1 crash (an engine raised), 2 liveness, 3 safety; for a sweep, the most
severe status seen. A failure prints the seed, the faults drawn, the violated property with
both conflicting values, and the exact replay command.

Called by: :mod:`cli.main` (discovered through ``register``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def _seeds(text: str) -> range:
    try:
        if ".." in text:
            low, high = text.split("..", 1)
            return range(int(low), int(high) + 1)
        return range(int(text), int(text) + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A..B or N, got {text!r}") from None


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sim", help="run the deterministic simulator (faults, Byzantine nodes, checkers)",
        description="Run N simulated replicas under seeded faults and check safety and liveness.")
    p.add_argument("--engine", default="pbft", help="pbft | paxos | toy (default pbft)")
    p.add_argument("--nodes", type=int, default=4, help="number of replicas (default 4)")
    p.add_argument("--byzantine", default="", metavar="KIND[,KIND]",
                   help="Byzantine behaviour per faulty node, e.g. equivocate,silent or twins")
    p.add_argument("--seed", type=int, default=0, help="the seed (default 0)")
    p.add_argument("--seeds", type=_seeds, default=None, metavar="A..B",
                   help="sweep the seeds A..B inclusive instead of one --seed")
    p.add_argument("--ticks", type=int, default=200, help="safety-phase ticks (default 200)")
    p.add_argument("--liveness-ticks", type=int, default=400,
                   help="tick budget for progress after heal (default 400)")
    p.add_argument("--faults", default="default",
                   help="fault preset: default | none | crash | lossy | twins")
    p.add_argument("--f", type=int, default=None, dest="f",
                   help="force the tolerated faults (negative control: n = 3f)")
    p.add_argument("--keys", default="hash", help="hash (fast) | ed25519")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes for a --seeds sweep (text output; default 1)")
    p.add_argument("--trace", action="store_true", help="print the event trace of the run")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--algo", default=None, metavar="NAME",
                   help="simulate a classic algorithm instead of an engine: lamport | vector | "
                        "bracha | causal | ricart-agrawala | lamport-mutex | ring | bully | "
                        "fd-study | clocksync")
    p.add_argument("--control", default="", metavar="NAME",
                   help="with --algo: a negative control that breaks one assumption "
                        "(e.g. lost-token, greedy, dropped-reply, over-f, no-holdback, "
                        "fixed-timeout, no-outlier-rejection)")
    p.set_defaults(func=_run)


def _config(args: argparse.Namespace, seed: int) -> Any:
    from testnet.sim.runner import SimConfig

    kinds = tuple(k.strip() for k in args.byzantine.split(",") if k.strip())
    return SimConfig(engine=args.engine, nodes=args.nodes, byzantine=kinds, seed=seed,
                     ticks=args.ticks, liveness_ticks=args.liveness_ticks, faults=args.faults,
                     f=args.f, keys=args.keys, keep_trace=args.trace)


def _run(args: argparse.Namespace) -> int:
    from testnet.sim.runner import run, summarize

    seeds = args.seeds if args.seeds is not None else range(args.seed, args.seed + 1)
    if len(seeds) == 0:
        raise ValueError("empty seed range")
    if getattr(args, "algo", None):
        from testnet.sim.algos.report import run_cli

        return run_cli(args.algo, seeds, args.nodes, args.control, args.ticks,
                       as_json=args.json, trace=args.trace)
    if len(seeds) > 1 and args.jobs > 1 and not (args.json or args.trace):
        return _parallel_sweep(args, seeds)
    worst = 0
    tally: dict[str, int] = {}
    summaries = []
    for seed in seeds:
        result = run(_config(args, seed))
        tally[result.status] = tally.get(result.status, 0) + 1
        worst = max(worst, result.exit_code)
        if args.json:
            summaries.append(summarize(result))
        elif len(seeds) > 1:
            line = f"seed {seed}: {result.status} digest {result.digest[:16]}"
            print(line if result.status == "pass" else line + "\n" + _failure_text(result))
        else:
            print(_text(result))
        if args.trace and not args.json:
            for t in result.trace_lines:
                print("  " + t)
    if args.json:
        doc: Any = summaries[0] if len(seeds) == 1 else {"seeds": summaries, "tally": tally}
        print(json.dumps(doc, indent=2, sort_keys=True))
    elif len(seeds) > 1:
        print(f"sweep {seeds.start}..{seeds.stop - 1}: {len(seeds)} seeds, "
              + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))
    return worst


def _parallel_sweep(args: argparse.Namespace, seeds: range) -> int:
    from testnet.sim.runner import EXIT_CODES
    from testnet.sim.sweep import sweep

    report = sweep(f"{seeds.start}..{seeds.stop - 1}", _config(args, seeds.start), seeds,
                   jobs=args.jobs)
    for o in report.outcomes:
        print(f"seed {o.seed}: {o.status} digest {o.digest[:16]}")
        if o.status != "pass":
            print(f"  FAILED ({o.status}) seed {o.seed}: {o.text}\n"
                  f"  faults: {'; '.join(o.faults) or 'none'}\n  replay: {o.replay}")
    tally: dict[str, int] = {}
    for o in report.outcomes:
        tally[o.status] = tally.get(o.status, 0) + 1
    print(f"sweep {seeds.start}..{seeds.stop - 1}: {len(seeds)} seeds, "
          + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))
    return max(EXIT_CODES[o.status] for o in report.outcomes)


def _text(result: Any) -> str:
    cfg = result.config
    lines = [f"phalanx sim: {cfg.engine} n={cfg.nodes} byzantine="
             f"{','.join(cfg.byzantine) or 'none'} seed={cfg.seed} -> {result.status.upper()}"]
    lines.append(f"  ticks run: {result.ticks_run}   digest: {result.digest}")
    per = ", ".join(f"e{ep}(node {node}, {role}): {result.heights[ep]}"
                    for ep, (node, role) in result.endpoints.items())
    lines.append(f"  deliveries: {per}")
    c = result.counts
    lines.append(f"  messages: sent {c['sent']}, received {c['received']}, dropped {c['dropped']}, "
                 f"duplicated {c['duplicated']}, cut {c['cut_losses']}, to-down "
                 f"{c['lost_to_down']}, undecodable {c['decode_errors']}; state installs "
                 f"{c['wants_served']}")
    lines.append("  faults: " + ("; ".join(result.faults) or "none"))
    if result.status != "pass":
        lines.append(_failure_text(result))
    return "\n".join(lines)


def _failure_text(result: Any) -> str:
    lines = [f"  FAILED ({result.status}) seed {result.config.seed}"]
    if result.violation is not None:
        v = result.violation
        lines.append(f"  property: {v.prop}  seq: {v.seq}  tick: {v.tick}")
        if v.first_endpoint >= 0:
            lines.append(f"    e{v.first_endpoint}: {v.first_value!r}")
        if v.second_endpoint >= 0:
            lines.append(f"    e{v.second_endpoint}: {v.second_value!r}")
        if v.detail:
            lines.append(f"    {v.detail}")
    if result.crash is not None:
        lines.append(f"  crash at tick {result.crash.tick} on e{result.crash.endpoint} during "
                     f"{result.crash.event}: {result.crash.error}")
        lines.extend("    " + t for t in result.crash.traceback.rstrip().splitlines()[-6:])
    if result.liveness_detail:
        lines.append(f"  liveness: {result.liveness_detail}")
    lines.append("  faults: " + ("; ".join(result.faults) or "none"))
    lines.append(f"  replay: {result.replay}")
    return "\n".join(lines)

"""``phalanx testnet``: local multi-process testnets, link faults, checks, chaos and export.

* ``up [--nodes 4] [--engine pbft|paxos] [--byzantine 3=equivocate,...] [--proxy] [--detach]``
* ``status | down [--purge] | logs [--limit N]``
* ``kill N | pause N | resume N | restart N``             node faults (SIGKILL, SIGSTOP, ...)
* ``restart --rolling``                                   every validator, one at a time (mutex)
* ``partition 0,1/2,3 | heal | delay N --ms X | loss N --percent P``   link faults (--proxy)
* ``check``                                              the safety checkers on the live chain
* ``chaos --duration S --seed N [--nodes 4]``            nemesis + workload + checkers
* ``export --hosts h1,h2,... --out DIR``                 per-host configs and a Compose file

Every subcommand takes ``--dir DIR`` (default ``$PHALANX_TESTNET`` or ``./phalanx-testnet``),
where ``up`` keeps the testnet's state (``testnet.json``), so commands from any terminal act on
the running testnet.

Called by: :mod:`cli.main` (discovered through ``register``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

DEFAULT_DIR = "phalanx-testnet"


def _dir_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=Path, default=Path(os.environ.get("PHALANX_TESTNET", DEFAULT_DIR)),
                   help="testnet directory (default $PHALANX_TESTNET or ./phalanx-testnet)")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def register(subparsers: Any) -> None:
    """Add ``phalanx testnet ...``."""
    p = subparsers.add_parser("testnet", help="run and break a local multi-process testnet",
                              description=__doc__.split("\n\n")[1] if __doc__ else None,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="testnet_command", metavar="ACTION")
    sub.required = True

    up = sub.add_parser("up", help="generate and start a testnet")
    _dir_option(up)
    up.add_argument("--nodes", type=int, default=4, help="validators (default 4)")
    up.add_argument("--engine", choices=("pbft", "paxos"), default="pbft")
    up.add_argument("--byzantine", default="", metavar="I=KIND,...",
                    help="Byzantine behaviours, e.g. 3=equivocate")
    up.add_argument("--proxy", action="store_true", help="route p2p links through the fault proxy")
    up.add_argument("--detach", action="store_true", help="leave the nodes running and return")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for health")
    up.set_defaults(func=_up)

    for name, helptext in (("status", "show the nodes"), ("check", "run the safety checkers")):
        s = sub.add_parser(name, help=helptext)
        _dir_option(s)
        s.set_defaults(func={"status": _status, "check": _check}[name])

    down = sub.add_parser("down", help="stop every node (and the proxy)")
    _dir_option(down)
    down.add_argument("--purge", action="store_true", help="also delete the testnet directory")
    down.set_defaults(func=_down)

    logs = sub.add_parser("logs", help="nodes' JSON logs merged by Lamport time")
    _dir_option(logs)
    logs.add_argument("--limit", type=int, default=0, help="print only the last N lines")
    logs.set_defaults(func=_logs)

    for name, helptext in (("kill", "SIGKILL a node"), ("pause", "SIGSTOP a node"),
                           ("resume", "SIGCONT a node"), ("restart", "stop and start a node")):  # fmt: skip
        s = sub.add_parser(name, help=helptext)
        _dir_option(s)
        s.add_argument("node", type=int, metavar="N", nargs="?" if name == "restart" else None)
        s.set_defaults(func=_node_fault, action=name)
        if name == "restart":
            s.add_argument("--rolling", action="store_true",
                           help="restart every validator, one at a time (Ricart-Agrawala)")
            s.add_argument("--timeout", type=float, default=120.0,
                           help="seconds per node to get the section and catch up")
            s.set_defaults(func=_restart)

    part = sub.add_parser("partition", help="split links into groups, e.g. 0,1/2,3 (--proxy)")
    _dir_option(part)
    part.add_argument("groups", metavar="A,B/C,D")
    part.set_defaults(func=_partition)
    heal = sub.add_parser("heal", help="remove every link fault (--proxy)")
    _dir_option(heal)
    heal.set_defaults(func=_heal)
    delay = sub.add_parser("delay", help="delay every link of node N (--proxy)")
    _dir_option(delay)
    delay.add_argument("node", type=int, metavar="N")
    delay.add_argument("--ms", type=int, required=True)
    delay.set_defaults(func=_delay)
    loss = sub.add_parser("loss", help="drop node N's links with a probability (--proxy)")
    _dir_option(loss)
    loss.add_argument("node", type=int, metavar="N")
    loss.add_argument("--percent", type=float, required=True)
    loss.set_defaults(func=_loss)

    chaos = sub.add_parser("chaos", help="faults + workload + checkers, seeded")
    _dir_option(chaos)
    chaos.add_argument("--duration", type=float, default=60.0, help="seconds of faults (default 60)")
    chaos.add_argument("--seed", type=int, default=1)
    chaos.add_argument("--nodes", type=int, default=4)
    chaos.add_argument("--engine", choices=("pbft", "paxos"), default="pbft")
    chaos.add_argument("--byzantine", default="", metavar="I=KIND,...")
    chaos.add_argument("--faults", type=int, default=None, metavar="K",
                       help="most nodes faulty at once (default f; above f is a negative control)")
    chaos.add_argument("--keep", action="store_true", help="keep the testnet directory")
    chaos.set_defaults(func=_chaos)

    export = sub.add_parser("export", help="per-host configs and a docker-compose.yml")
    export.add_argument("--hosts", required=True, metavar="H1,H2,...")
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--engine", choices=("pbft", "paxos"), default="pbft")
    export.add_argument("--p2p-port", type=int, default=26656)
    export.add_argument("--rpc-port", type=int, default=26657)
    export.add_argument("--json", action="store_true")
    export.set_defaults(func=_export)


def _errors() -> tuple[type[Exception], ...]:
    from testnet._layout import LayoutError
    from testnet._rolling import RollingError
    from testnet.local import TestnetError
    from testnet.proxy import ProxyError

    return (LayoutError, RollingError, TestnetError, ProxyError)


def _run(args: argparse.Namespace, body: Any) -> int:
    from cli.main import CliError

    try:
        return int(body() or 0)
    except _errors() as e:
        raise CliError(str(e), 1) from None


def _emit(args: argparse.Namespace, data: Any, human: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print(human)


def _table(rows: list[dict[str, Any]]) -> str:
    cols = ("id", "state", "height", "api", "p2p_port", "role", "pid", "suspected_by")
    data = [[str(r.get(c) if r.get(c) is not None else "-") for c in cols] for r in rows]
    for row, r in zip(data, rows, strict=True):    # "suspected by N": how many peers say so
        row[-1] = str(len(r["suspected_by"])) if r.get("suspected_by") else "-"
    widths = [max(len(c), *(len(row[k]) for row in data)) for k, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in data]
    return "\n".join(lines)


def _up(args: argparse.Namespace) -> int:
    from testnet._layout import parse_byzantine
    from testnet.local import Testnet

    def body() -> int:
        byz = parse_byzantine(args.byzantine, args.nodes)
        net = Testnet.create(args.dir, nodes=args.nodes, engine=args.engine, byzantine=byz,
                             proxy=args.proxy)  # fmt: skip
        if len(byz) > net.layout.f:
            print(f"warning: {len(byz)} Byzantine nodes exceed f = {net.layout.f}: "
                  "safety and liveness are not guaranteed", file=sys.stderr)  # fmt: skip
        try:
            net.start(timeout=args.timeout)
        except BaseException:
            net.stop()
            raise
        rows = net.status()
        _emit(args, {"dir": net.layout.dir, "faucet_key": net.layout.faucet_key, "nodes": rows},
              _table(rows) + f"\nfaucet key: {net.layout.faucet_key}\nstate: {net.layout.path}")
        if args.detach:
            print(f"detached; stop with: phalanx testnet down --dir {net.layout.dir}")
            return 0
        print("running; Ctrl-C stops the testnet", flush=True)
        try:
            signal.signal(signal.SIGTERM, _interrupt)
            while True:
                signal.pause()
        except KeyboardInterrupt:
            print("stopping...", file=sys.stderr)
        finally:
            net.stop()
        return 0

    return _run(args, body)


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM stops a foreground testnet like Ctrl-C does."""
    raise KeyboardInterrupt


def _status(args: argparse.Namespace) -> int:
    from testnet.local import Testnet

    def body() -> int:
        net = Testnet.open(args.dir)
        rows = net.status()
        extra = ""
        if net.layout.proxy:
            _, rules = net.proxy.rules()
            extra = f"\nlink faults: {json.dumps(rules.to_json())}" if not rules.healthy else ""
        _emit(args, {"nodes": rows}, _table(rows) + extra)
        return 0

    return _run(args, body)


def _down(args: argparse.Namespace) -> int:
    from testnet.local import Testnet

    def body() -> int:
        net = Testnet.open(args.dir)
        net.stop()
        if args.purge:
            shutil.rmtree(net.dir)
        _emit(args, {"stopped": True, "purged": args.purge}, f"stopped {net.dir}")
        return 0

    return _run(args, body)


def _logs(args: argparse.Namespace) -> int:
    from collections import deque

    from testnet.local import Testnet, merged_logs

    def body() -> int:
        net = Testnet.open(args.dir)
        homes = {n.index: Path(n.home) for n in net.layout.nodes}
        lines = merged_logs(homes)
        if args.limit > 0:
            lines = iter(deque(lines, maxlen=args.limit))
        for lamport, index, line in lines:
            print(line if args.json else f"[{lamport:>8}] node{index} {line}")
        return 0

    return _run(args, body)


def _node_fault(args: argparse.Namespace) -> int:
    from testnet.local import Testnet

    def body() -> int:
        net = Testnet.open(args.dir)
        getattr(net, args.action)(args.node)
        net.layout.save()
        _emit(args, {"node": args.node, "action": args.action}, f"{args.action}: node {args.node}")
        return 0

    return _run(args, body)


def _restart(args: argparse.Namespace) -> int:
    from cli.main import CliError

    if args.rolling == (args.node is not None):
        raise CliError("restart: give a node N, or --rolling for every node")
    if not args.rolling:
        return _node_fault(args)
    from testnet._rolling import TestnetOps, check_timeline, render_timeline, rolling_restart
    from testnet.local import Testnet

    def body() -> int:
        net = Testnet.open(args.dir)
        n = net.layout.n
        timeline = rolling_restart(TestnetOps(net), n, timeout_s=args.timeout,
                                   progress=None if args.json else print)  # fmt: skip
        violations = check_timeline(timeline.events, n)
        _emit(args, {"ok": not violations, "timeline": timeline.to_json(),
                     "violations": [vars(v) for v in violations]},
              "rolling restart timeline:\n" + render_timeline(timeline, violations))  # fmt: skip
        return 0 if not violations else 1

    return _run(args, body)


def _set_rules(args: argparse.Namespace, change: Any, what: str) -> int:
    from testnet.local import Testnet

    def body() -> int:
        net = Testnet.open(args.dir)
        _, rules = net.proxy.rules()
        new = change(rules, net.layout.n)
        net.proxy.set(new)
        _emit(args, new.to_json(), what)
        return 0

    return _run(args, body)


def _partition(args: argparse.Namespace) -> int:
    from cli.main import CliError

    try:
        groups = [[int(x) for x in g.split(",") if x.strip()] for g in args.groups.split("/")]
    except ValueError:
        raise CliError(f"partition: expected groups like 0,1/2,3, got {args.groups!r}") from None
    return _set_rules(args, lambda r, n: r.partition(groups, n), f"partitioned {args.groups}")


def _heal(args: argparse.Namespace) -> int:
    from testnet.proxy import Rules

    return _set_rules(args, lambda r, n: Rules(), "healed: every link is clean")


def _delay(args: argparse.Namespace) -> int:
    return _set_rules(args, lambda r, n: r.with_delay(_in_range(args.node, n), args.ms),
                      f"delay: node {args.node} links +{args.ms} ms")  # fmt: skip


def _loss(args: argparse.Namespace) -> int:
    return _set_rules(args, lambda r, n: r.with_loss(_in_range(args.node, n), args.percent),
                      f"loss: node {args.node} links {args.percent}%")  # fmt: skip


def _in_range(node: int, n: int) -> int:
    from testnet.proxy import ProxyError

    if not 0 <= node < n:
        raise ProxyError(f"no node {node} (nodes are 0..{n - 1})")
    return node


def _check(args: argparse.Namespace) -> int:
    from testnet._collect import check_testnet
    from testnet.local import Testnet

    def body() -> int:
        net = Testnet.open(args.dir)
        urls = {n.index: n.rpc_url for n in net.layout.nodes if not n.byzantine}
        verdict = check_testnet(urls, net.dir / "genesis.json")
        lines = [f"{'OK' if verdict.ok else 'VIOLATIONS'}: {json.dumps(verdict.figures)}"]
        lines += [f"  {v.check}: {v.detail}" for v in verdict.violations]
        _emit(args, {"ok": verdict.ok, "figures": verdict.figures,
                     "violations": [vars(v) for v in verdict.violations]}, "\n".join(lines))  # fmt: skip
        return 0 if verdict.ok else 1

    return _run(args, body)


def _chaos(args: argparse.Namespace) -> int:
    from testnet._layout import parse_byzantine
    from testnet.chaos import ChaosConfig, render, run_chaos

    def body() -> int:
        config = ChaosConfig(
            directory=args.dir, duration_s=args.duration, seed=args.seed, nodes=args.nodes,
            engine=args.engine, byzantine=parse_byzantine(args.byzantine, args.nodes),
            faults_max=args.faults, keep=args.keep,
        )  # fmt: skip
        report = run_chaos(config, progress=None if args.json else print)
        _emit(args, report, render(report))
        return 0 if report["verdict"] == "PASS" else 1

    return _run(args, body)


def _export(args: argparse.Namespace) -> int:
    from testnet.export import export

    def body() -> int:
        hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
        result = export(hosts, args.out, engine=args.engine, p2p_port=args.p2p_port,
                        rpc_port=args.rpc_port)  # fmt: skip
        _emit(args, result, f"wrote {len(hosts)} node homes and {result['compose']}\n"
              f"faucet key: {result['faucet_key']}\nsee docs/testnet.md to run them")  # fmt: skip
        return 0

    return _run(args, body)

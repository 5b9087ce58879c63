"""Text and JSON output of ``phalanx sim --algo NAME`` (one seed or a sweep).

Exit code: the most severe status seen (pass 0, crash 1, liveness 2, safety 3). A failing
run prints its property, detail and the replay command.

Called by: ``cli/cmd_sim.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from testnet.sim.algos import AlgoConfig, sweep_algo

__all__ = ["run_cli"]


def run_cli(algo: str, seeds: Sequence[int], nodes: int, control: str, ticks: int,
            as_json: bool = False, trace: bool = False) -> int:
    """Run ``algo`` over ``seeds``, print one line per run and a sweep line; return the code.

    Raises:
        ValueError: unknown algorithm or control, or an empty seed range.
    """
    if len(seeds) == 0:
        raise ValueError("empty seed range")
    base = AlgoConfig(algo=algo, seed=seeds[0], nodes=nodes, control=control, ticks=ticks,
                      keep_trace=trace)
    report = sweep_algo(base, seeds)
    if as_json:
        doc = [r.summary() for r in report.results]
        print(json.dumps(doc[0] if len(doc) == 1 else {"runs": doc, "sweep": report.line()},
                         indent=2, sort_keys=True))
        return report.worst()
    for r in report.results:
        print(r.line())
        if trace:
            for t in r.trace_lines:
                print("  " + t)
    if len(report.results) > 1:
        print(report.line())
    return report.worst()

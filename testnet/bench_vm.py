"""``phalanx bench vm``: contract VM throughput, in instructions and gas per second.

Workloads, each measured ``--runs`` times (median reported):

* **loop**: one call to a loop-heavy contract (stack shuffles, arithmetic, MSTORE/MLOAD, a
  conditional jump per iteration, one SSTORE at the end) run by the VM runtime over a
  StateDB on a MemoryDB: instructions/s and gas/s of the interpreter itself.
* **token**: token-transfer transactions (the example contract) applied by the real
  executor with the VM runtime, signatures already verified: contract transactions/s,
  including receipts, logs and state journaling.

Wall-clock time is read here, in the laboratory, never inside the VM. Rates are reported
per wall-clock second and per CPU second of this process (the latter is steadier on a
shared machine). Called by
``cli/cmd_bench.py`` through :mod:`testnet.bench_registry`; also runnable as
``python -m testnet.bench_vm``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from chain.db.memory import MemoryDB
from chain.executor import Executor
from chain.keys import PrivateKey
from chain.runtime import ExecutionContext
from chain.state import StateDB, apply_writes
from chain.tx import make_transaction
from chain.vm import VMConfig, VMRuntime, assemble, deploy_code, run_call
from chain.vm.abi import address_word, encode_call

__all__ = ["LOOP_SOURCE", "add_arguments", "render", "run"]

ITERATIONS = 100_000
QUICK_ITERATIONS = 10_000
TOKEN_TXS = 1_000
QUICK_TOKEN_TXS = 200
CHAIN_ID = 99
GAS = 10**9
CTX = ExecutionContext(CHAIN_ID, 1, 1_700_000_000_000, b"\xee" * 20)
TOKEN_PATH = Path(__file__).resolve().parents[1] / "examples" / "contracts" / "token.asm"

#: The loop contract: 19 instructions per iteration, then one SSTORE.
LOOP_SOURCE = """
    PUSH 0
    CALLDATALOAD        ; [n] iterations from call data
    PUSH 0              ; [n, acc]
loop:
    DUP2
    ADD                 ; acc += n
    DUP1
    PUSH 0
    MSTORE
    PUSH 0
    MLOAD
    PUSH 7
    XOR
    POP
    SWAP1
    PUSH 1
    SWAP1
    SUB                 ; n -= 1
    SWAP1
    DUP2
    PUSH @loop
    JUMPI               ; while n != 0
    PUSH 0
    SSTORE              ; slot 0 = acc
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vm-iterations", type=int, default=None,
        help=f"loop iterations per run (default {ITERATIONS}, --quick {QUICK_ITERATIONS})",
    )  # fmt: skip
    parser.add_argument(
        "--vm-token-txs", type=int, default=None,
        help=f"token transfers per run (default {TOKEN_TXS}, --quick {QUICK_TOKEN_TXS})",
    )  # fmt: skip


def _fresh_state() -> StateDB:
    return StateDB(MemoryDB(), bytes(32))


def _loop_run(iterations: int) -> dict[str, float]:
    state = _fresh_state()
    contract = b"\x10" * 20
    state.set_code(contract, assemble(LOOP_SOURCE).code)
    config = VMConfig(steps_max=50 * iterations + 100)
    data = iterations.to_bytes(32, "big")
    start, cpu_start = time.perf_counter(), time.process_time()
    outcome = run_call(state, CTX, sender=b"\x01" * 20, to=contract, value=0, data=data,
                       gas=GAS, config=config)  # fmt: skip
    seconds = time.perf_counter() - start
    cpu = max(time.process_time() - cpu_start, 1e-9)
    assert outcome.success, outcome.reason
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "steps": outcome.steps,
        "gas": outcome.gas_used,
        "steps_per_s": outcome.steps / seconds,
        "gas_per_s": outcome.gas_used / seconds,
        "steps_per_cpu_s": outcome.steps / cpu,
        "gas_per_cpu_s": outcome.gas_used / cpu,
    }


def _token_run(count: int) -> dict[str, float]:
    key = PrivateKey.from_seed(hashlib.sha256(b"bench-vm/alice").digest())
    db = MemoryDB()
    state = StateDB(db, bytes(32))
    state.set_balance(key.address, 10**18)
    apply_writes(db, state.commit().writes)
    executor = Executor(CHAIN_ID, VMRuntime())

    def tx(nonce: int, to: bytes, data: bytes) -> Any:
        return make_transaction(key, chain_id=CHAIN_ID, nonce=nonce, to=to, amount=0, fee=1,
                                gas_limit=1_000_000, data=data)  # fmt: skip

    deploy = executor.apply_transaction(
        state, CTX, tx(0, b"", deploy_code(TOKEN_PATH.read_text())), verified=True
    )
    assert deploy.succeeded, deploy.reason_text
    token = bytes(deploy.contract_address)
    txs = [
        tx(1 + i, token, encode_call(0x01, address_word(bytes([i % 251 + 1]) * 20), 1))
        for i in range(count)
    ]
    gas = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for t in txs:
        receipt = executor.apply_transaction(state, CTX, t, verified=True)
        gas += receipt.gas_used
    seconds = time.perf_counter() - start
    cpu = max(time.process_time() - cpu_start, 1e-9)
    assert receipt.succeeded, receipt.reason_text
    return {"seconds": seconds, "cpu_seconds": cpu, "txs": count, "txs_per_s": count / seconds,
            "txs_per_cpu_s": count / cpu, "gas_per_tx": gas / count}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the VM benchmark; returns the JSON-able report."""
    runs = max(1, int(args.runs))
    quick = bool(getattr(args, "quick", False))
    iterations = getattr(args, "vm_iterations", None) or (QUICK_ITERATIONS if quick else ITERATIONS)
    token_txs = getattr(args, "vm_token_txs", None) or (QUICK_TOKEN_TXS if quick else TOKEN_TXS)
    loops = [_loop_run(iterations) for _ in range(runs)]
    tokens = [_token_run(token_txs) for _ in range(runs)]
    command = f"phalanx bench vm --runs {runs}" + (" --quick" if quick else "")
    if getattr(args, "vm_iterations", None):
        command += f" --vm-iterations {iterations}"
    if getattr(args, "vm_token_txs", None):
        command += f" --vm-token-txs {token_txs}"

    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    return {
        "target": "vm",
        "command": command,
        "runs": runs,
        "quick": quick,
        "loop": {
            "iterations": iterations,
            "instructions_per_iteration": 19,
            "steps": median(loops, "steps"),
            "gas": median(loops, "gas"),
            "seconds": median(loops, "seconds"),
            "steps_per_s": median(loops, "steps_per_s"),
            "gas_per_s": median(loops, "gas_per_s"),
            "steps_per_cpu_s": median(loops, "steps_per_cpu_s"),
            "gas_per_cpu_s": median(loops, "gas_per_cpu_s"),
            "per_run": loops,
        },
        "token": {
            "txs": token_txs,
            "txs_per_s": median(tokens, "txs_per_s"),
            "txs_per_cpu_s": median(tokens, "txs_per_cpu_s"),
            "gas_per_tx": median(tokens, "gas_per_tx"),
            "per_run": tokens,
        },
        "environment": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
        },
    }


def render(report: dict[str, Any]) -> str:
    """The human table for :func:`run`'s report."""
    loop, token = report["loop"], report["token"]
    return "\n".join(
        [
            f"phalanx bench vm: median of {report['runs']} run(s)",
            "",
            f"loop contract ({loop['iterations']} iterations, {loop['steps']:.0f} instructions, "
            f"{loop['gas']:.0f} gas):",
            f"  {'':>14}  {'wall clock':>16}  {'per CPU second':>16}",
            f"  {'instructions/s':>14}  {loop['steps_per_s']:>16,.0f}  {loop['steps_per_cpu_s']:>16,.0f}",
            f"  {'gas/s':>14}  {loop['gas_per_s']:>16,.0f}  {loop['gas_per_cpu_s']:>16,.0f}",
            f"  {'ms per call':>14}  {loop['seconds'] * 1000:>16.1f}",
            f"token transfers through the executor ({token['txs']} txs, "
            f"{token['gas_per_tx']:.0f} gas each):",
            f"  {'transactions/s':>14}  {token['txs_per_s']:>16,.0f}  {token['txs_per_cpu_s']:>16,.0f}",
            "",
            f"command: {report['command']}",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="VM benchmark")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    add_arguments(parser)
    print(render(run(parser.parse_args())))

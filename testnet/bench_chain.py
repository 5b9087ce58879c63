"""``phalanx bench chain``: the single-node chain pipeline against raw Ed25519 verification.

Each run measures, in the same process and moment, the raw pynacl verification rate
(``crypto_sign_open`` over the very transactions used) and:

(a) **mempool admission**: ``Mempool.add(encoded bytes)`` for N transfers from many senders
    (strict decode, hash, signature verification, nonce/balance/fee checks, insertion), as a
    rate ratio to raw verification. Goal >= 0.6.
(b) **block apply + commit**: :meth:`Executor.apply_block` on a block of 2,000 transfers
    from 125 senders to 2,000 new accounts (~2,100 state writes; signatures already verified
    at admission, as a node does), the state commitment, and
    :meth:`Ledger.commit_block` to a fresh LevelDB with a synced (fsync) batch, as a time
    ratio to 2,000 raw verifications. Goal <= 1.0.

Reported: medians over ``--runs`` runs, per-run figures, the payload, and the exact command.
Also reported (not part of a goal): the cost of the checkpoint full state root over the
state the block leaves, and of exporting and verifying the snapshot (pre-images included);
``--chain-accounts N`` adds N funded accounts to the genesis to measure them on a big state.

Called by ``cli/cmd_bench.py`` through :mod:`testnet.bench_registry`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["add_arguments", "render", "run"]

ADMISSION_GOAL_MIN = 0.6
BLOCK_GOAL_MAX = 1.0
BLOCK_TXS = 2000
QUICK_TXS = 500
SENDER_TXS = 16  # transactions per sender (within the mempool's per-sender bound)
CHAIN_ID = 77


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--chain-txs",
        type=int,
        default=None,
        help=f"transactions per block and per admission run (default {BLOCK_TXS}, "
        f"--quick {QUICK_TXS})",
    )
    parser.add_argument(
        "--chain-accounts",
        type=int,
        default=0,
        help="extra funded accounts in the genesis state, to measure checkpoint and snapshot "
        "costs on a large state (default 0)",
    )


@dataclass
class _Fixture:
    keys: list[Any]
    txs: list[Any]
    encoded: list[bytes]
    genesis: Any
    chain_id: int


def _fixture(count: int, extra_accounts: int = 0) -> _Fixture:
    from chain.genesis import make_dev_genesis
    from chain.keys import PrivateKey
    from chain.params import TX_BASE_GAS
    from chain.tx import make_transaction

    senders = (count + SENDER_TXS - 1) // SENDER_TXS
    keys = [PrivateKey.from_seed(hashlib.sha256(b"bench/%d" % i).digest()) for i in range(senders)]
    validator = PrivateKey.from_seed(hashlib.sha256(b"bench/validator").digest())
    txs = []
    for n in range(count):
        sender = keys[n % senders]
        # A distinct new recipient per transfer: the most state writes a transfer block makes.
        recipient = hashlib.sha256(b"bench/recipient/%d" % n).digest()[:20]
        txs.append(
            make_transaction(
                sender,
                chain_id=CHAIN_ID,
                nonce=n // senders,
                to=recipient,
                amount=1 + n % 97,
                fee=1,
                gas_limit=TX_BASE_GAS,
            )
        )
    genesis = make_dev_genesis(
        [validator],
        chain_id=CHAIN_ID,
        balances={
            **{
                hashlib.sha256(b"bench/extra/%d" % i).digest()[:20]: 1
                for i in range(extra_accounts)
            },
            **{k.address: 10**18 for k in keys},
        },
        checkpoint_interval=1000,
    )
    return _Fixture(keys, txs, [tx.encoded for tx in txs], genesis, CHAIN_ID)


def _raw_verify_seconds(items: list[tuple[bytes, bytes, bytes]]) -> float:
    from nacl.bindings import crypto_sign_open

    start = time.perf_counter()
    for public_key, message, signature in items:
        crypto_sign_open(signature + message, public_key)
    return time.perf_counter() - start


def _admission_run(fx: _Fixture) -> dict[str, float]:
    from chain.db import MemoryDB
    from chain.ledger import Ledger
    from chain.mempool import Mempool, MempoolConfig

    ledger = Ledger.open(MemoryDB(), fx.genesis)
    state = ledger.state()
    count = len(fx.encoded)
    pool = Mempool(
        fx.chain_id,
        MempoolConfig(tx_count_max=count, per_sender_max=SENDER_TXS, nonce_gap_max=SENDER_TXS),
        state,
    )
    raw = [(tx.sender, tx.signing_bytes(), tx.signature) for tx in fx.txs]
    raw_seconds = _raw_verify_seconds(raw)
    start = time.perf_counter()
    for data in fx.encoded:
        pool.add(data)
    admit_seconds = time.perf_counter() - start
    assert len(pool) == count, "every benchmark transaction must be admitted"
    return {
        "raw_verify_per_s": count / raw_seconds,
        "admission_per_s": count / admit_seconds,
        "ratio": raw_seconds / admit_seconds,
    }


def _block_run(fx: _Fixture, workdir: str, index: int) -> dict[str, float]:
    from chain.block import EMPTY_CERTIFICATE, build_block, decode_block, make_certificate
    from chain.checkpoint import export_snapshot, verify_snapshot
    from chain.db import LevelDB
    from chain.executor import Executor
    from chain.ledger import Ledger
    from chain.state import full_state_root

    path = os.path.join(workdir, f"run{index}")
    db = LevelDB(path)
    try:
        ledger = Ledger.open(db, fx.genesis)
        head = ledger.head
        block = build_block(
            chain_id=fx.chain_id,
            height=1,
            parent_hash=head.block_hash,
            timestamp=fx.genesis.genesis_time + 1,
            proposer=fx.keys[0].address,
            state_root=head.state_root,
            transactions=fx.txs,
            last_commit=EMPTY_CERTIFICATE,
        )
        block = decode_block(block.encoded)  # as received from the proposer
        cert = make_certificate(height=1, view=0, block_hash=block.hash, votes=[])
        verified = frozenset(tx.hash for tx in fx.txs)  # admission verified them
        raw = [(tx.sender, tx.signing_bytes(), tx.signature) for tx in fx.txs]
        raw_seconds = _raw_verify_seconds(raw)

        start = time.perf_counter()
        result = Executor(fx.chain_id).apply_block(ledger.state(), block, verified=verified)
        applied = time.perf_counter()
        ledger.commit_block(block, cert, result)
        committed = time.perf_counter()
        assert result.failed_count == 0, "benchmark transfers must all succeed"

        full_root_start = time.perf_counter()
        full_state_root(db)
        full_root_seconds = time.perf_counter() - full_root_start
        export_start = time.perf_counter()
        snapshot = export_snapshot(db)
        export_seconds = time.perf_counter() - export_start
        verify_snapshot(snapshot, trusted_digest=ledger.latest_checkpoint.digest)
        verify_seconds = time.perf_counter() - export_start - export_seconds
        return {
            "raw_verify_ms": raw_seconds * 1e3,
            "apply_ms": (applied - start) * 1e3,
            "commit_ms": (committed - applied) * 1e3,
            "total_ms": (committed - start) * 1e3,
            "ratio": (committed - start) / raw_seconds,
            "state_writes": float(len(result.writes)),
            "block_bytes": float(len(block.encoded)),
            "checkpoint_full_root_ms": full_root_seconds * 1e3,
            "snapshot_export_ms": export_seconds * 1e3,
            "snapshot_verify_ms": verify_seconds * 1e3,
            "snapshot_entries": float(len(snapshot.entries)),
        }
    finally:
        db.close()


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the chain benchmark; returns the JSON-able report."""
    runs = max(1, int(args.runs))
    count = args.chain_txs or (QUICK_TXS if args.quick else BLOCK_TXS)
    extra = max(0, int(getattr(args, "chain_accounts", 0) or 0))
    fx = _fixture(count, extra)
    admission: list[dict[str, float]] = []
    blocks: list[dict[str, float]] = []
    workdir = tempfile.mkdtemp(prefix="phalanx-bench-")
    try:
        for i in range(runs):
            admission.append(_admission_run(fx))
            blocks.append(_block_run(fx, workdir, i))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    admission_ratio = _median(admission, "ratio")
    block_ratio = _median(blocks, "ratio")
    command = f"phalanx bench chain --runs {runs}" + (" --quick" if args.quick else "")
    if args.chain_txs:
        command += f" --chain-txs {args.chain_txs}"
    if extra:
        command += f" --chain-accounts {extra}"
    return {
        "target": "chain",
        "command": command,
        "runs": runs,
        "quick": bool(args.quick),
        "payload": {
            "transactions": count,
            "tx_bytes": len(fx.encoded[0]),
            "senders": len(fx.keys),
            "signature": "Ed25519 (pynacl), raw baseline = crypto_sign_open",
            "storage": "LevelDB, one synced write batch per block",
        },
        "admission": {
            "raw_verify_per_s": _median(admission, "raw_verify_per_s"),
            "admission_per_s": _median(admission, "admission_per_s"),
            "ratio": admission_ratio,
            "goal": f">= {ADMISSION_GOAL_MIN}",
            "meets_goal": admission_ratio >= ADMISSION_GOAL_MIN,
            "per_run": admission,
        },
        "block": {
            "raw_verify_ms": _median(blocks, "raw_verify_ms"),
            "apply_ms": _median(blocks, "apply_ms"),
            "commit_ms": _median(blocks, "commit_ms"),
            "total_ms": _median(blocks, "total_ms"),
            "ratio": block_ratio,
            "goal": f"<= {BLOCK_GOAL_MAX}",
            "meets_goal": block_ratio <= BLOCK_GOAL_MAX,
            "state_writes": _median(blocks, "state_writes"),
            "block_bytes": _median(blocks, "block_bytes"),
            "checkpoint_full_root_ms": _median(blocks, "checkpoint_full_root_ms"),
            "snapshot_export_ms": _median(blocks, "snapshot_export_ms"),
            "snapshot_verify_ms": _median(blocks, "snapshot_verify_ms"),
            "snapshot_entries": _median(blocks, "snapshot_entries"),
            "per_run": blocks,
        },
        "environment": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
        },
    }


def render(report: dict[str, Any]) -> str:
    """The human table for :func:`run`'s report."""
    a = report["admission"]
    b = report["block"]
    p = report["payload"]

    def mark(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    lines = [
        f"phalanx bench chain: median of {report['runs']} run(s), "
        f"{p['transactions']} transfers of {p['tx_bytes']} B from {p['senders']} senders",
        "",
        f"{'measure':<44}{'value':>14}{'ratio':>9}  goal",
        f"{'raw Ed25519 verify (pynacl)':<44}{a['raw_verify_per_s']:>10.0f} tx/s",
        f"{'(a) mempool admission (decode+verify+checks)':<44}"
        f"{a['admission_per_s']:>10.0f} tx/s{a['ratio']:>9.2f}  {a['goal']} {mark(a['meets_goal'])}",
        f"{'raw verify of the block':<44}{b['raw_verify_ms']:>11.1f} ms",
        f"{'(b) apply + commitment + synced commit':<44}"
        f"{b['total_ms']:>11.1f} ms{b['ratio']:>9.2f}  {b['goal']} {mark(b['meets_goal'])}",
        f"{'    executor apply + state commitment':<44}{b['apply_ms']:>11.1f} ms",
        f"{'    ledger commit (one fsynced batch)':<44}{b['commit_ms']:>11.1f} ms",
        f"{'    state writes / block bytes':<44}{b['state_writes']:>8.0f} / {b['block_bytes']:.0f} B",
        f"{'snapshot entries (state at the checkpoint)':<44}{b['snapshot_entries']:>8.0f}",
        f"{'checkpoint full state root':<44}{b['checkpoint_full_root_ms']:>11.1f} ms",
        f"{'snapshot export / verify':<44}{b['snapshot_export_ms']:>11.1f} ms / "
        f"{b['snapshot_verify_ms']:.1f} ms",
        "",
        f"command: {report['command']}",
    ]
    return "\n".join(lines)

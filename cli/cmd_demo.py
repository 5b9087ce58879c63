"""``phalanx demo``: a one-validator chain on disk, end to end, in a few seconds.

Creates keys and a dev genesis in a directory (a new temporary one, or ``--dir``), opens a
LevelDB ledger there, and commits a few blocks of transfers through the real pipeline:
``Mempool.add`` (decode, verify, checks) -> ``Mempool.select`` -> ``build_block`` ->
``Executor.apply_block`` -> ``Ledger.commit_block`` (one synced batch). It prints each block
(height, hash, transactions, state root), a typed mempool rejection, a transaction looked up
with its receipt, the final head, the latest checkpoint (its snapshot exported, chunked,
decoded and verified) and the balances.

Running it again with the same ``--dir`` reopens the ledger and continues from its head.

Called by: :mod:`cli.main` (discovered through ``register``).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["register"]

USERS = ("alice", "bob", "carol", "dave")
DEMO_CHAIN_ID = 1337
START_BALANCE = 1_000_000_000


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="commit a few blocks of transfers to a LevelDB ledger and show them",
        description="Keys, a dev genesis and a LevelDB ledger in a directory; a few blocks "
        "of transfers through mempool, executor and ledger; the head and balances.",
    )
    p.add_argument("--dir", default=None, help="working directory (default: a new temp dir)")
    p.add_argument("--blocks", type=int, default=3, help="blocks to commit (default 3)")
    p.add_argument("--txs", type=int, default=5, help="transfers per block (default 5)")
    p.add_argument("--seed", type=int, default=None, help="seed for amounts and recipients")
    p.set_defaults(func=_run)


def _short(data: bytes) -> str:
    return data.hex()[:16]


def _setup(home: Path) -> tuple[Any, dict[str, Any], Any]:
    """Load the demo's genesis and keys from ``home``, creating them the first time."""
    from chain.genesis import load_genesis, make_dev_genesis
    from chain.keys import PrivateKey, load_key_file, save_key_file

    keys_dir = home / "keys"
    genesis_path = home / "genesis.json"
    names = ("validator", *USERS)
    if genesis_path.exists():
        keys = {name: load_key_file(keys_dir / f"{name}.json") for name in names}
        return load_genesis(genesis_path), keys, True
    keys_dir.mkdir(parents=True, exist_ok=True)
    keys = {name: PrivateKey.generate() for name in names}
    for name, key in keys.items():
        save_key_file(keys_dir / f"{name}.json", key)
    genesis = make_dev_genesis(
        [keys["validator"]],
        chain_id=DEMO_CHAIN_ID,
        balances={keys[u].address: START_BALANCE for u in USERS},
        genesis_time=int(time.time() * 1000),
        checkpoint_interval=2,
        names=["validator"],
    )
    genesis_path.write_text(genesis.to_json())
    return genesis, keys, False


def _run(args: argparse.Namespace) -> int:
    from chain.block import EMPTY_CERTIFICATE, build_block, make_certificate
    from chain.checkpoint import decode_snapshot, export_snapshot, verify_snapshot
    from chain.db import LevelDB
    from chain.executor import Executor
    from chain.keys import format_address
    from chain.ledger import Ledger
    from chain.mempool import Mempool, MempoolConfig, MempoolRejected
    from chain.params import TX_BASE_GAS
    from chain.tx import make_transaction
    from cli.main import CliError

    if args.blocks < 1 or args.txs < 1:
        raise CliError("--blocks and --txs must be at least 1")
    home = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="phalanx-demo-"))
    genesis, keys, existed = _setup(home)
    validator = keys["validator"]
    rng = random.Random(args.seed)
    db = LevelDB(home / "data" / "chain")
    try:
        ledger = Ledger.open(db, genesis)
        action = "reopened" if existed else "created"
        print(f"phalanx demo: {action} a one-validator chain in {home}")
        print(
            f"  chain id {genesis.chain_id}, genesis {_short(genesis.hash)}, "
            f"checkpoint every {ledger.checkpoint_interval} blocks, head at {ledger.height}"
        )
        executor = Executor(genesis.chain_id)
        pool = Mempool(genesis.chain_id, MempoolConfig(), ledger.state())
        shown_rejection = False
        rejection = ""
        last_tx = None
        print()
        print(f"  {'height':>6}  {'block hash':<16}  {'txs':>3}  {'state root':<16}  gas")
        for _ in range(args.blocks):
            state = ledger.state()
            for _ in range(args.txs):
                sender_name, recipient_name = rng.sample(USERS, 2)
                sender = keys[sender_name]
                nonce = state.nonce(sender.address) + len(pool.pending(sender.address))
                tx = make_transaction(
                    sender,
                    chain_id=genesis.chain_id,
                    nonce=nonce,
                    to=keys[recipient_name].address,
                    amount=rng.randrange(1, 10_000),
                    fee=1,
                    gas_limit=TX_BASE_GAS,
                )
                pool.add(tx.encoded)
                last_tx = tx
            if not shown_rejection and last_tx is not None:
                try:
                    pool.add(last_tx.encoded)  # the same bytes again
                except MempoolRejected as e:
                    rejection = f"{e.reason.name}: {e.message}"
                shown_rejection = True
            head = ledger.head
            height = head.height + 1
            txs = pool.select(count_max=1000, bytes_max=1 << 20)
            block = build_block(
                chain_id=genesis.chain_id,
                height=height,
                parent_hash=head.block_hash,
                timestamp=max(int(time.time() * 1000), head.timestamp + 1),
                proposer=validator.address,
                state_root=head.state_root,
                transactions=txs,
                last_commit=EMPTY_CERTIFICATE if height <= 1 else ledger.certificate(height - 1),
            )
            verified = {tx.hash for tx in txs}  # the mempool verified each signature once
            result = executor.apply_block(ledger.state(), block, verified=verified)
            vote = (0, validator.sign(block.hash))
            certificate = make_certificate(
                height=height, view=0, block_hash=block.hash, votes=[vote]
            )
            ledger.commit_block(block, certificate, result)
            pool.update(block.transactions, ledger.state())
            print(
                f"  {height:>6}  {_short(block.hash)}  {len(txs):>3}  "
                f"{_short(result.state_root)}  {result.gas_used}"
            )
        print()
        if shown_rejection:
            print(f"  mempool rejected a resubmitted transaction: {rejection}")
        if last_tx is not None:
            loc = ledger.transaction(last_tx.hash)
            status = "success" if loc.receipt.succeeded else f"failed ({loc.receipt.reason_text})"
            print(
                f"  tx {_short(last_tx.hash)}: block {loc.height}, index {loc.index}, {status}, "
                f"fee {loc.receipt.fee_paid}"
            )
        head = ledger.head
        cp = ledger.latest_checkpoint
        print(
            f"  head: height {head.height}, hash {_short(head.block_hash)}, "
            f"state root {_short(head.state_root)}"
        )
        print(f"  latest checkpoint: height {cp.height}, full state root {_short(cp.full_root)}")
        snapshot = export_snapshot(db)
        chunks = list(snapshot.chunks())
        verify_snapshot(decode_snapshot(chunks), trusted_digest=cp.digest)
        print(
            f"  snapshot at {snapshot.height}: {len(snapshot.entries)} state entries, "
            f"{sum(map(len, chunks))} bytes in {len(chunks)} chunks, Merkle root verified"
        )
        print()
        print(f"  {'account':<10} {'address':<42} {'balance':>12} {'nonce':>6}")
        for name in ("validator", *USERS):
            account = ledger.account(keys[name].address)
            print(
                f"  {name:<10} {format_address(keys[name].address):<42} "
                f"{account.balance:>12} {account.nonce:>6}"
            )
        print()
        print(f"  run again with --dir {home} to continue this chain")
    finally:
        db.close()
    return 0

"""A deterministic chain of transfer blocks for ledger, checkpoint and crash tests.

The block at height ``h`` depends only on the seed, ``h`` and the ledger state at ``h - 1``
(nonces are read from the state, amounts and pairs come from ``random.Random`` seeded with
the seed and the height, timestamps are ``genesis_time + h``), so two ledgers fed by
:meth:`ChainGen.commit_next` stay identical, and a process restarted at any head continues
with exactly the blocks a fresh run would have made. Certificates are signed by the one
validator (Ed25519 signatures are deterministic).

Also runnable as the crash test's child: ``python chaingen.py serve SEED`` is a zygote that
imports everything once and, per ``run PATH`` line on stdin, forks a writer which opens the
LevelDB ledger at PATH and commits blocks (pruning now and then) until it is killed,
printing ``opened PID H`` and ``committed H`` lines; ``reap PID`` waits for a killed writer and prints ``reaped PID``.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import traceback
from dataclasses import dataclass

from chain.block import EMPTY_CERTIFICATE, Block, CommitCertificate, build_block, make_certificate
from chain.checkpoint import prune
from chain.executor import BlockResult, Executor
from chain.genesis import Genesis, make_dev_genesis
from chain.keys import PrivateKey
from chain.ledger import Ledger
from chain.params import TX_BASE_GAS
from chain.tx import Transaction, make_transaction

CHAIN_ID = 4242
#: The crash test's writer prunes every PRUNE_EVERY blocks, keeping PRUNE_RETENTION.
PRUNE_EVERY = 7
PRUNE_RETENTION = 8
BALANCE = 10**15


@dataclass
class ChainGen:
    """Makes the next block of transfers for a ledger, deterministically from ``seed``."""

    seed: int = 1
    accounts: int = 8
    txs_per_block: int = 6
    checkpoint_interval: int = 5

    def __post_init__(self) -> None:
        def key(tag: str, i: int) -> PrivateKey:
            return PrivateKey.from_seed(hashlib.sha256(f"{tag}/{self.seed}/{i}".encode()).digest())

        self.validator = key("validator", 0)
        self.keys = [key("account", i) for i in range(self.accounts)]
        self.genesis: Genesis = make_dev_genesis(
            [self.validator],
            chain_id=CHAIN_ID,
            balances={k.address: BALANCE for k in self.keys},
            genesis_time=1_700_000_000_000,
            checkpoint_interval=self.checkpoint_interval,
        )
        self.executor = Executor(CHAIN_ID)

    def open(self, db: object, **kwargs: object) -> Ledger:
        return Ledger.open(db, self.genesis, **kwargs)  # type: ignore[arg-type]

    def transactions(self, ledger: Ledger, height: int) -> list[Transaction]:
        rng = random.Random(self.seed * 1_000_003 + height)
        state = ledger.state()
        nonces: dict[int, int] = {}
        txs = []
        for _ in range(self.txs_per_block):
            i = rng.randrange(self.accounts)
            j = rng.randrange(self.accounts)
            sender = self.keys[i]
            nonce = nonces.get(i, state.nonce(sender.address))
            nonces[i] = nonce + 1
            # Now and then a brand-new recipient, so state keys get created between checkpoints.
            to = self.keys[j].address
            if rng.random() < 0.2:
                to = hashlib.sha256(f"fresh/{self.seed}/{height}/{len(txs)}".encode()).digest()[:20]
            txs.append(
                make_transaction(
                    sender,
                    chain_id=CHAIN_ID,
                    nonce=nonce,
                    to=to,
                    amount=rng.randrange(1, 1000),
                    fee=1,
                    gas_limit=TX_BASE_GAS,
                )
            )
        return txs

    def next_block(self, ledger: Ledger, transactions: list[Transaction] | None = None
                   ) -> tuple[Block, CommitCertificate, BlockResult]:
        """Build, execute and certify the block after ``ledger``'s head (nothing written),
        carrying ``transactions`` if given (a proposer may pick any) or the generator's own."""
        head = ledger.head
        height = head.height + 1
        block = build_block(
            chain_id=CHAIN_ID,
            height=height,
            parent_hash=head.block_hash,
            timestamp=self.genesis.genesis_time + height,
            proposer=self.validator.address,
            state_root=head.state_root,
            transactions=self.transactions(ledger, height) if transactions is None
            else transactions,
            last_commit=EMPTY_CERTIFICATE if height <= 1 else ledger.certificate(height - 1),
        )
        result = self.executor.apply_block(ledger.state(), block)
        cert = make_certificate(
            height=height,
            view=0,
            block_hash=block.hash,
            votes=[(0, self.validator.sign(block.hash))],
        )
        return block, cert, result

    def commit_next(self, ledger: Ledger, count: int = 1) -> None:
        for _ in range(count):
            ledger.commit_block(*self.next_block(ledger))


def _serve(seed: int) -> None:  # pragma: no cover - runs in the crash test's child processes
    from chain.db.level import LevelDB

    gen = ChainGen(seed=seed)

    def say(line: str) -> None:
        # One write(2) per line: a kill can never leave half a line in the pipe.
        os.write(1, (line + "\n").encode())

    for line in sys.stdin:
        command, arg = line.split()
        if command == "run":
            pid = os.fork()
            if pid == 0:
                try:
                    ledger = gen.open(LevelDB(arg))
                    say(f"opened {os.getpid()} {ledger.height}")
                    # Finish a prune a kill interrupted (a no-op when there is nothing to do).
                    prune(ledger, PRUNE_RETENTION, batch_heights_max=3)
                    while True:
                        gen.commit_next(ledger)
                        say(f"committed {ledger.height}")
                        if ledger.height % PRUNE_EVERY == 0:
                            # Several small batches, so kills also land between them.
                            prune(ledger, PRUNE_RETENTION, batch_heights_max=3)
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(1)
        elif command == "reap":
            os.waitpid(int(arg), 0)
            say(f"reaped {arg}")


if __name__ == "__main__":  # pragma: no cover
    assert sys.argv[1] == "serve"
    _serve(int(sys.argv[2]))

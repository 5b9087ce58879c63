"""SIGKILL a process committing blocks to a real LevelDB ledger, many times; the ledger must
always reopen consistent, keep every acknowledged (synced) block, and match a replay.

A zygote (``tests/chain/chaingen.py serve SEED``) imports Phalanx once; for each life it forks
a writer that opens the LevelDB ledger and commits deterministic transfer blocks in a loop,
printing ``committed H`` after each synced commit returns. The test kills the writer after a
seeded random delay, then reopens the database and checks:

* the head is the last acknowledged block or the one after it (its batch reached the log
  before the kill), never less (no acknowledged commit lost);
* every block from the floor to the head is readable, chains by parent hash, and equals the
  block a replay in a MemoryDB produced at that height (the replay advances cumulatively);
  the writer prunes in small batches now and then, so kills also land between prune batches:
  below the floor reads say "pruned" and no transaction index entry points there;
* the head state commitment, the full state root and the latest checkpoint equal the
  replay's, and the snapshot of the latest checkpoint verifies against its digest;
* the next writer starts from exactly that head.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chain.checkpoint import export_snapshot, verify_snapshot
from chain.db import LevelDB, MemoryDB, schema
from chain.ledger import Pruned
from chain.state import full_state_root
from tests.chain.chaingen import PRUNE_RETENTION, ChainGen

SEED = 20261128
KILLS = 60
DELAY_SECONDS_MAX = 0.04
LINE_TIMEOUT_SECONDS = 20.0


class _Zygote:
    def __init__(self, seed: int) -> None:
        script = Path(__file__).with_name("chaingen.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "serve", str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("eof")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def next_line(self) -> str:
        line = self.lines.get(timeout=LINE_TIMEOUT_SECONDS)
        assert line != "eof", "the zygote exited (see stderr)"
        return line

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_sigkill_during_commits_never_breaks_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    rng = random.Random(SEED)
    gen = ChainGen(seed=SEED)
    model = gen.open(MemoryDB())
    model_hashes = [model.head.block_hash]
    verified_height = 0
    unacked_but_durable = 0
    pruned_floors: set[int] = set()
    zygote = _Zygote(SEED)
    try:
        for _ in range(KILLS):
            zygote.send(f"run {path}")
            opened, pid_text, start_text = zygote.next_line().split()
            assert opened == "opened"
            assert int(start_text) == verified_height, "the writer must start from the head"
            pid = int(pid_text)
            time.sleep(rng.uniform(0.0, DELAY_SECONDS_MAX))
            os.kill(pid, signal.SIGKILL)
            zygote.send(f"reap {pid}")
            acked = verified_height
            while (line := zygote.next_line()) != f"reaped {pid}":
                word, height = line.split()
                assert word == "committed", line
                acked = int(height)

            db = LevelDB(path, create=False)
            try:
                ledger = gen.open(db)
                height = ledger.height
                assert acked <= height <= acked + 1, (acked, height)
                unacked_but_durable += height == acked + 1
                while model.height < height:
                    gen.commit_next(model)
                    model_hashes.append(model.head.block_hash)
                assert ledger.head == model.head
                floor = ledger.floor
                assert floor <= max(0, height - PRUNE_RETENTION + 1), (floor, height)
                parent = None
                for h in range(floor, height + 1):
                    block = ledger.block(h)
                    assert block.hash == model_hashes[h]
                    if parent is not None:
                        assert block.header.parent_hash == parent
                    parent = block.hash
                    if h >= verified_height:  # new since the last check: look its txs up
                        for index, tx in enumerate(block.transactions):
                            loc = ledger.transaction(tx.hash)
                            assert (loc.height, loc.index) == (h, index)
                if floor > 0:
                    with pytest.raises(Pruned):
                        ledger.block(floor - 1)
                # Pruning never leaves an index entry pointing below the floor.
                for _, raw in db.iterate(schema.TX_INDEX_PREFIX):
                    assert int.from_bytes(raw[:8], "big") >= floor
                pruned_floors.add(floor)
                assert full_state_root(db) == full_state_root(model.db)
                assert ledger.latest_checkpoint == model.latest_checkpoint
                snapshot = export_snapshot(db)
                verify_snapshot(snapshot, trusted_digest=model.latest_checkpoint.digest)
            finally:
                db.close()
            verified_height = height
    finally:
        zygote.close()
    # The writers made real progress, through several checkpoints.
    assert verified_height >= 2 * gen.checkpoint_interval
    assert len(pruned_floors) > 1, "the writers pruned"
    print(
        f"crash test: {KILLS} kills, final height {verified_height}, "
        f"{unacked_but_durable} kills after a durable but unacknowledged commit, "
        f"floors seen {sorted(pruned_floors)}"
    )

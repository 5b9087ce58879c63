"""The CPU split of py-spy samples: innermost kind of work, outermost task, idle dropped."""

from __future__ import annotations

from testnet.profile_split import render, split

LINES = [
    # an API request whose time is in signature verification
    "thread (1): MainThread;run (trio/_core/_run.py:1);HTTPStream.handle (hypercorn/protocol/http_stream.py:9);"
    "Mempool.add (chain/mempool.py:3);verify_signature (chain/keys.py:112);"
    "crypto_sign_open (nacl/bindings/crypto_sign.py:103) 7",
    # the driver decoding a block for the validity check
    "thread (1): MainThread;ConsensusDriver._step (node/driver.py:5);decode_block (chain/block.py:2) 3",
    # a block commit in the worker thread
    "thread (2): Trio thread 0;ChainApp.execute (node/app.py:1);_LevelBatch._apply (chain/db/level.py:65) 5",
    # idle: parked in epoll, and an idle worker thread
    "thread (1): MainThread;run (trio/_core/_run.py:1);EpollIOManager.get_events (trio/_core/_io_epoll.py:243) 40",
    "thread (2): Trio thread 0;WorkerThread._work (trio/_core/_thread_cache.py:211) 9",
    "not a sample line",
]


def test_samples_split_by_innermost_kind_and_outermost_task() -> None:
    kinds, tasks, idle = split(LINES)
    assert idle == 49
    assert kinds == {"verification (Ed25519)": 7, "decoding/encoding": 3, "storage (LevelDB, WAL)": 5}
    assert tasks == {"API requests": 7, "consensus driver": 3,
                     "block execution and commit (worker thread)": 5}
    text = render(kinds, tasks, idle)
    assert "15 busy samples (49 idle dropped)" in text
    assert "verification (Ed25519)" in text and " 46.7%" in text

"""Where a node's CPU goes: split py-spy samples by kind of work and by task.

Reads py-spy's collapsed stacks (``py-spy record --format raw``; one line per distinct
stack: ``frame;frame;...;leaf COUNT``) of one or more node processes and prints two
tables of shares of the busy samples:

* **kind of work**, by the innermost frame that names one (Ed25519 verification, decoding
  and encoding, storage, execution, mempool, consensus, gossip, p2p transport, the API
  stack, the Trio runtime and threads), so nested work lands where the time is really
  spent (a signature check inside an API request counts as verification);
* **task**, by the outermost frame that names one (API requests, gossip intake, the
  consensus driver, block execution and commit in the worker thread, WAL appends, p2p
  connections), so the split reads as "what the node was doing".

Samples of threads parked in ``epoll`` or in Trio's idle worker threads are dropped as
idle. The patterns are plain substrings of py-spy's ``function (file:line)`` frames; the
lists below are the whole method.

Usage (see ``docs/testnet.md``, "Where the CPU goes")::

    python -m testnet.profile_split node0.txt node1.txt ...

Called from the command line only; nothing imports it.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["KINDS", "TASKS", "render", "split"]

KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("verification (Ed25519)", ("verify_signature", "nacl/", "crypto_sign", "Verifier", "_verify")),
    ("storage (LevelDB, WAL)", ("plyvel", "chain/db/", "wal.py", "commit_block", "fsync")),
    ("execution", ("chain/executor", "chain/state", "chain/vm", "chain/merkle")),
    ("decoding/encoding", ("rlp/", "decode", "encode", "read_fields", "Serializable", "json",
                           "_codec", "eth_utils")),
    ("hashing", ("hashlib", "sha256", "_hash", "CachedEncoding.hash")),
    ("mempool and account reads", ("chain/mempool", "LedgerStateView", "chain/ledger")),
    ("consensus (PBFT core)", ("consensus/",)),
    ("gossip", ("p2p/gossip",)),
    ("p2p transport and encryption", ("p2p/", "chacha", "cryptography")),
    ("API (HTTP, JSON-RPC)", ("hypercorn", "starlette", "h11", "node/jsonrpc", "node/rpc",
                              "node/api", "wsproto", "anyio")),
    ("node glue", ("node/",)),
    ("logging", ("logging/",)),
    ("Trio runtime and threads", ("trio/", "outcome/", "selectors", "socket", "threading")),
)

TASKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("API requests", ("hypercorn", "starlette")),
    ("gossip intake and admission", ("_gossip_reader", "TxIntake")),
    ("gossip service", ("GossipService",)),
    ("block execution and commit (worker thread)", ("ChainApp.execute", "apply_synced")),
    ("WAL appends (worker thread)", ("WriteAheadLog",)),
    ("consensus driver", ("ConsensusDriver",)),
    ("p2p connections", ("p2p/transport", "PeerManager", "p2p/peers", "p2p/session")),
    ("heartbeats, liveness, sync", ("Heartbeat", "BlockSync", "Liveness", "Clock")),
)

_IDLE_LEAVES = ("EpollIOManager.get_events", "_thread_cache.py:211)")


def _idle(frames: Sequence[str]) -> bool:
    return len(frames) <= 1 or any(p in frames[-1] for p in _IDLE_LEAVES)


def _kind(frames: Sequence[str]) -> str:
    for frame in reversed(frames):
        for name, patterns in KINDS:
            if any(p in frame for p in patterns):
                return name
    return "other"


def _task(stack: str) -> str:
    for name, patterns in TASKS:
        if any(p in stack for p in patterns):
            return name
    return "Trio scheduler and other"


def split(lines: Iterable[str]) -> tuple[Counter[str], Counter[str], int]:
    """Busy samples by kind and by task, and the idle sample count.

    Args:
        lines: py-spy raw lines (``stack COUNT``).
    """
    kinds: Counter[str] = Counter()
    tasks: Counter[str] = Counter()
    idle = 0
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if _idle(frames):
            idle += n
            continue
        kinds[_kind(frames)] += n
        tasks[_task(stack)] += n
    return kinds, tasks, idle


def render(kinds: Counter[str], tasks: Counter[str], idle: int) -> str:
    """Both tables as text, shares of the busy samples."""
    busy = sum(kinds.values()) or 1
    out = [f"{sum(kinds.values())} busy samples ({idle} idle dropped)", "", "kind of work:"]
    out += [f"  {name:<44} {100 * n / busy:5.1f}%" for name, n in kinds.most_common()]
    out += ["", "task:"]
    out += [f"  {name:<44} {100 * n / busy:5.1f}%" for name, n in tasks.most_common()]
    return "\n".join(out)


def main(argv: Sequence[str]) -> int:
    if not argv:
        print("usage: python -m testnet.profile_split PYSPY_RAW_FILE...", file=sys.stderr)
        return 2
    kinds: Counter[str] = Counter()
    tasks: Counter[str] = Counter()
    idle = 0
    for path in argv:
        k, t, i = split(Path(path).read_text(errors="replace").splitlines())
        kinds += k
        tasks += t
        idle += i
    print(render(kinds, tasks, idle))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

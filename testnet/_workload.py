"""A transfer workload against a testnet that records what the clients were told.

Each worker thread owns a few accounts (so nonces never race), signs a transfer to a random
account, and submits it with ``broadcast_tx_commit`` to a random node. An answer with a
height is an acknowledgement (:class:`~testnet.check.Ack`). A timeout or error leaves the
transaction *indeterminate*: the worker re-submits the very same bytes (same hash, so a
committed one is simply reported again) until it is acknowledged or the workload stops;
only then does that account move on to its next nonce. So no two different transactions
ever share a (sender, nonce), and a double spend in the chain is the nodes' fault.

With ``reads=True`` the workload also records a client history for the linearizability
checker (:func:`testnet.check.check_linearizable`): each transfer is one operation of the
process ``w<thread>.<account>`` (invoked at its first submission, ``ok`` when acknowledged,
``info`` if still unknown at the stop, re-submissions stay inside the operation), and every
third step a worker reads a random account's balance as process ``r<thread>``: it asks every
read URL and keeps the answer from the highest head (a node acknowledges a transaction only
once it executed it, so the highest head includes every transaction acknowledged before the
read began); no answer at all is a ``fail``. The history is bounded by ``history_max``.

Called by :mod:`testnet.chaos` and the e2e tests.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from chain.keys import PrivateKey, format_address
from chain.tx import make_transaction
from testnet.check import Ack

__all__ = ["TRANSFER_GAS", "Workload", "WorkloadStats", "workload_keys"]

TRANSFER_GAS = 21_000
ACCOUNT_BALANCE = 10**15
COMMIT_TIMEOUT_S = 8.0
READ_TIMEOUT_S = 1.0
HISTORY_MAX = 200_000
#: A plain transfer's fee: its intrinsic gas at a fee of 1 per gas.
TRANSFER_FEE = TRANSFER_GAS


def workload_keys(seed: int, count: int) -> list[PrivateKey]:
    """Deterministic account keys for a seeded run."""
    rng = random.Random(f"workload-{seed}")
    return [PrivateKey.from_seed(rng.randbytes(32)) for _ in range(count)]


@dataclass
class WorkloadStats:
    """What the workload saw (filled by worker threads under a lock)."""

    acks: list[Ack] = field(default_factory=list)
    submitted: int = 0
    errors: int = 0
    indeterminate: int = 0
    latencies_s: list[float] = field(default_factory=list)
    #: Client events ``{process, type, op, value, time}`` (see the module docstring).
    history: list[dict[str, Any]] = field(default_factory=list)
    reads: int = 0
    history_truncated: bool = False


class Workload:
    """Background transfer load over ``urls``; ``start()``, then ``stop()`` returns stats."""

    def __init__(self, urls: Sequence[str], keys: Sequence[PrivateKey], chain_id: int, *,
                 seed: int = 0, threads: int = 4, pause_s: float = 0.0, reads: bool = False,
                 read_urls: Sequence[str] | None = None,
                 history_max: int = HISTORY_MAX) -> None:  # fmt: skip
        if not keys or threads < 1:
            raise ValueError("a workload needs keys and at least one thread")
        self.urls = list(urls)
        self.keys = list(keys)
        self.chain_id = chain_id
        self.seed = seed
        self.pause_s = pause_s
        self.reads = reads
        self.read_urls = list(urls if read_urls is None else read_urls)
        self.history_max = history_max
        self._t0 = time.monotonic()
        self.stats = WorkloadStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threads = min(threads, len(self.keys))
        self._threads = [
            threading.Thread(target=self._worker, args=(k, self.keys[k::threads]), daemon=True)
            for k in range(threads)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> WorkloadStats:
        self._stop.set()
        for t in self._threads:
            t.join(COMMIT_TIMEOUT_S + 5)
        return self.stats

    def _worker(self, k: int, mine: Sequence[PrivateKey]) -> None:
        rng = random.Random(f"{self.seed}-{k}")
        nonces = dict.fromkeys(range(len(mine)), 0)
        pending: dict[int, tuple[bytes, str]] = {}
        addresses = [key.address for key in self.keys]
        ops: dict[int, tuple[str, tuple[str, str, int, int]]] = {}   # account -> open op
        step = 0
        with httpx.Client(timeout=COMMIT_TIMEOUT_S + 2) as client:
            while not self._stop.is_set():
                step += 1
                if self.reads and step % 3 == 0:
                    self._read(client, f"r{k}", format_address(rng.choice(addresses)).lower())
                    continue
                a = rng.randrange(len(mine))
                if a not in pending:
                    to = rng.choice(addresses)
                    amount = rng.randint(1, 1000)
                    tx = make_transaction(mine[a], chain_id=self.chain_id, nonce=nonces[a], to=to,
                                          amount=amount, fee=1,
                                          gas_limit=TRANSFER_GAS)  # fmt: skip
                    pending[a] = (tx.encoded, "0x" + tx.hash.hex())
                    value = (format_address(mine[a].address).lower(), format_address(to).lower(),
                             amount, TRANSFER_FEE)  # fmt: skip
                    ops[a] = (f"w{k}.{a}", value)
                    self._event(ops[a][0], "invoke", "transfer", value)
                raw, tx_hash = pending[a]
                url = rng.choice(self.urls)
                started = time.monotonic()
                height = self._submit(client, url, raw)
                with self._lock:
                    self.stats.submitted += 1
                    if height is None:
                        self.stats.errors += 1
                    else:
                        self.stats.acks.append(Ack(tx_hash, height))
                        self.stats.latencies_s.append(time.monotonic() - started)
                if height is not None:
                    del pending[a]
                    nonces[a] += 1
                    self._event(ops[a][0], "ok", "transfer", ops.pop(a)[1])
                elif not self._stop.is_set():
                    time.sleep(0.2)
                if self.pause_s:
                    time.sleep(self.pause_s)
        for process, value in ops.values():
            self._event(process, "info", "transfer", value)
        with self._lock:
            self.stats.indeterminate += len(pending)

    def _event(self, process: str, kind: str, op: str, value: Any) -> None:
        if not self.reads:
            return
        with self._lock:
            if len(self.stats.history) >= self.history_max:
                self.stats.history_truncated = True   # an incomplete history proves nothing
                return
            self.stats.history.append({"process": process, "type": kind, "op": op,
                                       "value": value, "time": time.monotonic() - self._t0})  # fmt: skip

    def _read(self, client: httpx.Client, process: str, address: str) -> None:
        """One balance read: every read URL, the answer from the highest head wins."""
        self._event(process, "invoke", "read", address)
        best: tuple[int, int] | None = None
        body = {"jsonrpc": "2.0", "id": 1, "method": "account", "params": {"address": address}}
        for url in self.read_urls:
            try:
                res = client.post(url, json=body, timeout=READ_TIMEOUT_S).json().get("result")
            except (httpx.HTTPError, ValueError, AttributeError):
                continue
            if not (isinstance(res, dict) and isinstance(res.get("height"), int)
                    and isinstance(res.get("balance"), int)):  # fmt: skip
                continue
            if best is None or res["height"] > best[0]:
                best = (int(res["height"]), int(res["balance"]))
        with self._lock:
            self.stats.reads += 1
        if best is None:
            self._event(process, "fail", "read", address)
        else:
            self._event(process, "ok", "read", (address, best[1]))

    @staticmethod
    def _submit(client: httpx.Client, url: str, raw: bytes) -> int | None:
        body = {"jsonrpc": "2.0", "id": 1, "method": "broadcast_tx_commit",
                "params": {"tx": "0x" + raw.hex(), "timeout": COMMIT_TIMEOUT_S}}  # fmt: skip
        try:
            doc = client.post(url, json=body).json()
        except (httpx.HTTPError, ValueError):
            return None
        result = doc.get("result") if isinstance(doc, dict) else None
        if isinstance(result, dict) and isinstance(result.get("height"), int):
            return int(result["height"])
        return None

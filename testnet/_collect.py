"""Read a testnet's history from its nodes' JSON-RPC APIs and run the checkers on it.

Reads go through JSON-RPC batch requests (at most ``BATCH_MAX`` calls each): blocks from
every honest node, receipts (``tx``) and balances (``account``) from one of them. Call
:func:`collect` once the workload has stopped, so balances are read on a quiet chain.

Called by :mod:`testnet.chaos`, ``phalanx testnet check`` and the e2e tests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx

from testnet.check import (
    Ack,
    BlockRecord,
    TxRecord,
    Verdict,
    check_agreement,
    check_conservation,
    check_double_spend,
    check_lost_acks,
)

__all__ = ["RpcBatchError", "check_testnet", "genesis_balances", "rpc_batch"]

BATCH_MAX = 100
TIMEOUT_S = 20.0


class RpcBatchError(Exception):
    """Raised when a node does not answer a batch, or answers with something unexpected."""


def rpc_batch(url: str, calls: Sequence[tuple[str, dict[str, Any]]],
              timeout: float = TIMEOUT_S) -> list[Any]:  # fmt: skip
    """Run ``calls`` as JSON-RPC batches; each result, or an ``RpcBatchError`` in its place."""
    out: list[Any] = []
    with httpx.Client(timeout=timeout) as client:
        for start in range(0, len(calls), BATCH_MAX):
            chunk = calls[start : start + BATCH_MAX]
            body = [{"jsonrpc": "2.0", "id": k, "method": m, "params": p}
                    for k, (m, p) in enumerate(chunk)]  # fmt: skip
            try:
                answer = client.post(url, json=body).json()
            except (httpx.HTTPError, ValueError) as e:
                raise RpcBatchError(f"{url}: {e}") from None
            if not isinstance(answer, list):
                raise RpcBatchError(f"{url}: batch answered with {str(answer)[:200]}")
            by_id = {item.get("id"): item for item in answer if isinstance(item, dict)}
            for k in range(len(chunk)):
                item = by_id.get(k, {})
                if "result" in item:
                    out.append(item["result"])
                else:
                    out.append(RpcBatchError(str(item.get("error", "no answer"))))
    return out


def genesis_balances(path: Path) -> dict[str, int]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {addr.lower(): int(v) for addr, v in doc["balances"].items()}


def _height(url: str) -> int | None:
    try:
        result = rpc_batch(url, [("status", {})], timeout=3.0)[0]
    except RpcBatchError:
        return None
    return result.get("height") if isinstance(result, dict) else None


def fetch_chain(url: str, top: int) -> dict[int, BlockRecord]:
    """Blocks 1..top of one node (transactions without receipts)."""
    results = rpc_batch(url, [("block", {"height": h}) for h in range(1, top + 1)])
    chain: dict[int, BlockRecord] = {}
    for h, res in zip(range(1, top + 1), results, strict=True):
        if isinstance(res, Exception) or not isinstance(res, dict):
            continue  # pruned or not there: compare what exists
        txs = tuple(
            TxRecord(t["hash"], str(t["from"]).lower(), int(t["nonce"]),
                     str(t.get("to") or "").lower(), int(t.get("amount") or 0))
            for t in res.get("txs", []) if isinstance(t, dict)
        )  # fmt: skip
        chain[h] = BlockRecord(h, str(res["hash"]), txs, str(res.get("proposer", "")).lower())
    return chain


def with_receipts(url: str, chain: dict[int, BlockRecord]) -> dict[int, BlockRecord]:
    """The same chain with each transaction's success flag and fee from its receipt."""
    hashes = [tx.hash for b in chain.values() for tx in b.txs]
    receipts: dict[str, dict[str, Any]] = {}
    for tx_hash, res in zip(hashes, rpc_batch(url, [("tx", {"hash": h}) for h in hashes]), strict=True):
        if isinstance(res, dict) and isinstance(res.get("receipt"), dict):
            receipts[tx_hash] = res["receipt"]
    out: dict[int, BlockRecord] = {}
    for h, b in chain.items():
        txs = []
        for tx in b.txs:
            r = receipts.get(tx.hash, {})
            txs.append(TxRecord(tx.hash, tx.sender, tx.nonce, tx.to, tx.amount,
                                bool(r.get("success", True)), int(r.get("fee_paid", 0))))  # fmt: skip
        out[h] = BlockRecord(b.height, b.hash, tuple(txs), b.proposer)
    return out


def balances_of(url: str, addresses: Iterable[str]) -> tuple[dict[str, int], int]:
    """Balances of ``addresses`` and the highest head height the answers were read at."""
    addrs = sorted(set(addresses))
    results = rpc_batch(url, [("account", {"address": a}) for a in addrs])
    out: dict[str, int] = {}
    height = 0
    for addr, res in zip(addrs, results, strict=True):
        if isinstance(res, Exception) or not isinstance(res, dict):
            raise RpcBatchError(f"{url}: account {addr}: {res}")
        out[addr] = int(res["balance"])
        height = max(height, int(res.get("height", 0)))
    return out, height


def wait_mempools_empty(urls: Iterable[str], timeout: float) -> bool:
    """Wait until no node holds pending transactions (so balances stop moving)."""
    deadline = time.monotonic() + timeout
    while True:
        pending = 0
        for url in urls:
            try:
                res = rpc_batch(url, [("num_unconfirmed_txs", {})], timeout=3.0)[0]
            except RpcBatchError:
                continue
            pending += int(res.get("n_txs", 0)) if isinstance(res, dict) else 0
        if pending == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)


def check_testnet(
    urls: dict[int, str],
    genesis_path: Path,
    acks: Iterable[Ack] = (),
    *,
    settle_s: float = 10.0,
) -> Verdict:
    """Collect every honest node's chain, receipts and balances; run the safety checkers.

    Args:
        urls: honest node index -> RPC URL (Byzantine nodes are left out by the caller).
        genesis_path: the testnet's genesis.json (for balances and the supply).
        acks: transactions clients were told are committed.
        settle_s: how long to wait for the honest nodes to reach a common height.
    """
    verdict = Verdict()
    verdict.figures["mempools_drained"] = wait_mempools_empty(urls.values(), settle_s)
    heights = {i: _height(u) for i, u in urls.items()}
    reachable = {i: h for i, h in heights.items() if h is not None}
    deadline = time.monotonic() + settle_s
    target = max(reachable.values(), default=0)
    while reachable and min(reachable.values()) < target and time.monotonic() < deadline:
        time.sleep(0.3)  # let laggards catch up so the comparison covers the most heights
        reachable = {i: h for i in reachable if (h := _height(urls[i])) is not None}
    verdict.figures["heights"] = {str(i): heights.get(i) for i in urls} | {
        str(i): h for i, h in reachable.items()}  # fmt: skip
    if not reachable:
        from testnet.check import Violation

        verdict.violations.append(Violation("reachability", "no honest node answers status"))
        return verdict
    chains = {i: fetch_chain(urls[i], h) for i, h in reachable.items()}
    ref = max(reachable, key=lambda i: reachable[i])
    chains[ref] = with_receipts(urls[ref], chains[ref])
    acks = list(acks)
    verdict.extend(check_agreement(chains))
    verdict.extend(check_lost_acks(acks, chains))
    verdict.extend(check_double_spend(chains))
    genesis = genesis_balances(genesis_path)
    accounts = set(genesis)
    for b in chains[ref].values():
        accounts.add(b.proposer)
        for tx in b.txs:
            accounts.update({tx.sender, tx.to} - {""})
    accounts.discard("")
    balances, read_at = balances_of(urls[ref], accounts)
    if read_at > max(chains[ref], default=0):  # blocks landed meanwhile: replay them too
        chains[ref] = with_receipts(urls[ref], fetch_chain(urls[ref], read_at))
        for b in chains[ref].values():
            for tx in b.txs:
                if {tx.sender, tx.to, b.proposer} - set(balances) - {""}:
                    balances, read_at = balances_of(urls[ref], accounts | {tx.sender, tx.to, b.proposer} - {""})
    verdict.extend(check_conservation(genesis, balances, chains[ref]))
    verdict.figures.update({
        "height_checked": max(reachable.values()),
        "txs_committed": sum(len(b.txs) for b in chains[ref].values()),
        "acks_checked": len(acks),
        "fees_paid": sum(tx.fee_paid for b in chains[ref].values() for tx in b.txs),
        "accounts_checked": len(balances),
    })  # fmt: skip
    return verdict

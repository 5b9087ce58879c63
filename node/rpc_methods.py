"""The node's JSON-RPC methods (served by :mod:`node.api` through a :class:`~node.jsonrpc.Dispatcher`).

Names and shapes follow what users of BFT nodes know (CometBFT): ``status``, ``health``,
``broadcast_tx_async|sync|commit``, ``block``, ``tx``, ``account``, ``validators``,
``net_info``, ``unconfirmed_txs``, ``num_unconfirmed_txs``, ``commit``, ``call``,
``dump_consensus_state``, ``evidence``; and, only with ``rpc.unsafe = true`` in the config,
``unsafe_flush_mempool`` and ``unsafe_set_log_level``. Parameters: transactions, hashes and addresses as ``0x`` hex
strings; heights as integers (or their decimal strings, as GET routes pass them;
``"latest"`` or no height means the head).

Errors (JSON-RPC ``error.code``):

* ``-32602`` invalid params: bad hex, wrong lengths, negative heights (from ``ValueError``);
* ``-32010`` transaction rejected: ``message`` starts with the reason name in capitals
  (``NONCE_TOO_LOW: ...``), ``data = {"reason": "nonce_too_low", "hash": ...}``;
* ``-32001`` not found (a block above the head, a pruned block, an unknown transaction);
* ``-32002`` timed out waiting for a commit (``broadcast_tx_commit``): the transaction was
  accepted and may still be committed later;
* ``-32003`` a method that changes behaviour was called without ``rpc.unsafe``.

Transactions admitted here are gossiped to peers (the ``gossip`` callback). Waiting for a
commit uses :class:`CommitWaiters`, fed by the driver's commit listener; the number of
concurrent waits is bounded (``waiters_max``). Called by :mod:`node.runtime`; tested through
the real ASGI app in ``tests/node/test_rpc.py``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from chain.errors import ChainError
from chain.genesis import Genesis
from chain.keys import format_address, parse_address
from chain.ledger import LedgerError, NotFound, Pruned
from chain.mempool import MempoolRejected
from chain.tx import decode_transaction
from node.app import ApplyOutcome, ChainApp
from node.jsonrpc import RpcError
from node.logs import set_log_level
from node.rpc_json import block_json, certificate_json, hexstr, receipt_json, tx_json

__all__ = [
    "NOT_FOUND",
    "TIMED_OUT",
    "TX_REJECTED",
    "UNSAFE_REFUSED",
    "CommitWaiters",
    "RpcNode",
    "block_json",
    "receipt_json",
]

log = logging.getLogger("phalanx.node.rpc")

NOT_FOUND = -32001
TIMED_OUT = -32002
UNSAFE_REFUSED = -32003
TX_REJECTED = -32010

COMMIT_TIMEOUT_S_MAX = 120.0
UNCONFIRMED_LIMIT_MAX = 1000
EVIDENCE_LIMIT_MAX = 256
BLOCK_FEED_QUEUE_MAX = 64
#: Longest run of transaction admissions between two yields of the event loop (seconds).
ADMISSION_SLICE_S = 0.005


def _hex(text: Any, name: str, size: int | None = None) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{name}: expected a 0x-hex string")
    body = text[2:] if text[:2] in ("0x", "0X") else text
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raise ValueError(f"{name}: not hex: {text[:20]!r}") from None
    if size is not None and len(raw) != size:
        raise ValueError(f"{name}: expected {size} bytes, got {len(raw)}")
    return raw


def _address(text: Any, name: str = "address") -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{name}: expected a 0x-hex address")
    try:
        return parse_address(text)
    except ChainError as e:
        raise ValueError(f"{name}: {e}") from None


def _height(value: Any, name: str = "height") -> int | None:
    if value is None or value == "latest" or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected an integer")
    if isinstance(value, str):
        if not value.isdigit():
            raise ValueError(f"{name}: expected an integer, got {value[:20]!r}")
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected a non-negative integer")
    return value


class CommitWaiters:
    """Callers waiting for transactions to be committed, and block-stream subscribers.

    ``on_commit`` is the driver's commit listener (runs on the Trio thread).
    """

    def __init__(self, waiters_max: int = 10_000, subscribers_max: int = 64) -> None:
        self.waiters_max = waiters_max
        self.subscribers_max = subscribers_max
        self._waiting: dict[bytes, tuple[trio.Event, list[int]]] = {}
        self._subscribers: list[trio.MemorySendChannel[dict[str, Any]]] = []
        self.blocks_dropped = 0

    def register(self, tx_hash: bytes) -> trio.Event:
        """An event set when ``tx_hash`` is committed.

        Raises:
            RpcError: too many callers are waiting.
        """
        entry = self._waiting.get(tx_hash)
        if entry is None:
            if len(self._waiting) >= self.waiters_max:
                raise RpcError(TX_REJECTED, f"POOL_FULL: {self.waiters_max} commits already awaited",
                               {"reason": "pool_full"})
            entry = (trio.Event(), [0])
            self._waiting[tx_hash] = entry
        entry[1][0] += 1
        return entry[0]

    def release(self, tx_hash: bytes) -> None:
        entry = self._waiting.get(tx_hash)
        if entry is not None:
            entry[1][0] -= 1
            if entry[1][0] <= 0:
                del self._waiting[tx_hash]

    def on_commit(self, outcome: ApplyOutcome) -> None:
        block = outcome.block
        if block is None:
            return
        if self._waiting:
            for tx in block.transactions:
                entry = self._waiting.get(tx.hash)
                if entry is not None:
                    entry[0].set()
        if self._subscribers:
            summary = block_json(block, full_txs=False)
            for ch in list(self._subscribers):
                try:
                    ch.send_nowait(summary)
                except trio.WouldBlock:
                    self.blocks_dropped += 1
                except trio.BrokenResourceError:
                    self._subscribers.remove(ch)

    async def block_feed(self) -> AsyncIterator[dict[str, Any]]:
        """New blocks for one WebSocket subscriber (a slow one misses blocks)."""
        send, recv = trio.open_memory_channel[dict[str, Any]](BLOCK_FEED_QUEUE_MAX)
        self._subscribers.append(send)
        try:
            async for item in recv:
                yield item
        finally:
            if send in self._subscribers:
                self._subscribers.remove(send)
            await send.aclose()


@dataclass
class NodeInfo:
    """Static facts about the node for ``status``."""

    moniker: str
    node_id: int | None
    p2p_listen: str
    rpc_listen: str
    unsafe: bool = False


class RpcNode:
    """The methods, over the node's parts; :meth:`methods` feeds the Dispatcher.

    Args:
        app: the chain application (ledger, mempool).
        genesis: the chain's genesis.
        info: static node facts.
        driver: the consensus driver (None for an API-only test setup).
        peers: the p2p PeerManager (None in tests).
        gossip: called with each transaction admitted here (to gossip it).
        waiters: commit waiters (the runtime registers ``waiters.on_commit`` on the driver).
        metrics: the node's metrics (counts refusals).
        catching_up: True while block sync is behind the network.
        suspicions: the peers the failure detector suspects.
        liveness: the node's :class:`node.liveness.NodeLiveness` (per-peer phi, confirmed
            suspicions), shown as ``liveness`` in ``status`` and ``net_info``.
        runtime: the contract runtime for ``call`` (None: contracts disabled).
        evidence: the :class:`node.evidence.EvidenceStore` of verified, reliably delivered
            evidence (``evidence`` method; per-validator counts in ``status``).
        tx_intake: the :class:`node.tx_intake.TxIntake` (hold-back counts in ``status``).
        tx_rebroadcast: the :class:`node.tx_rebroadcast.TxRebroadcast` (re-gossip counts in
            ``status``).
        clock: the node's :class:`node.clock_sync.NodeClockSync`: ``clock`` in ``status``
            (``median_time_offset_ms``, ``median_time_source``, ``median_time_ms``,
            ``timestamp_bound_ms``, ``clock_skew_ms``) and in ``net_info`` (per peer
            ``offset_ms``, ``error_ms`` = rtt/2, ``rtt_ms``, ``age_ms``; drop counters).
    """

    def __init__(
        self,
        app: ChainApp,
        genesis: Genesis,
        info: NodeInfo,
        *,
        driver: Any = None,
        peers: Any = None,
        gossip: Callable[[bytes], Awaitable[None]] | None = None,
        waiters: CommitWaiters | None = None,
        metrics: Any = None,
        catching_up: Callable[[], bool] = lambda: False,
        suspicions: Callable[[], list[int]] = list,
        runtime: Any = None,
        liveness: Any = None,
        evidence: Any = None,
        tx_intake: Any = None,
        clock: Any = None,
        tx_rebroadcast: Any = None,
    ) -> None:
        self.app = app
        self.genesis = genesis
        self.info = info
        self.driver = driver
        self.peers = peers
        self.gossip = gossip
        self.waiters = waiters or CommitWaiters()
        self.metrics = metrics
        self.catching_up = catching_up
        self.suspicions = suspicions
        self.liveness = liveness
        self.runtime = runtime
        self.evidence_store = evidence
        self.tx_intake = tx_intake
        self.tx_rebroadcast = tx_rebroadcast
        self.clock = clock
        self._slice_start = 0.0

    def methods(self) -> dict[str, Callable[..., Awaitable[Any]]]:
        """Method name -> handler."""
        return {
            "status": self.status,
            "health": self.health,
            "broadcast_tx_async": self.broadcast_tx_async,
            "broadcast_tx_sync": self.broadcast_tx_sync,
            "broadcast_tx_commit": self.broadcast_tx_commit,
            "block": self.block,
            "tx": self.tx,
            "account": self.account,
            "validators": self.validators,
            "net_info": self.net_info,
            "unconfirmed_txs": self.unconfirmed_txs,
            "num_unconfirmed_txs": self.num_unconfirmed_txs,
            "commit": self.commit,
            "call": self.call,
            "dump_consensus_state": self.dump_consensus_state,
            "evidence": self.evidence,
            "unsafe_flush_mempool": self.unsafe_flush_mempool,
            "unsafe_set_log_level": self.unsafe_set_log_level,
        }

    # ------------------------------------------------------------------ info

    async def status(self) -> dict[str, Any]:
        head = self.app.head
        out: dict[str, Any] = {
            "moniker": self.info.moniker,
            "chain_id": self.genesis.chain_id,
            "node_id": self.info.node_id,
            "height": head.height,
            "latest_block_height": head.height,
            "latest_block_hash": hexstr(head.block_hash),
            "latest_state_root": hexstr(head.state_root),
            "latest_block_time": head.timestamp,
            "earliest_block_height": self.app.ledger.floor,
            "engine": self.genesis.engine,
            "catching_up": self.catching_up(),
            "p2p_listen": self.info.p2p_listen,
            "rpc_listen": self.info.rpc_listen,
            "mempool_size": len(self.app.mempool),
        }
        if self.driver is not None:
            st = self.driver.status()
            out.update({
                "view": st.view,
                "primary": st.leader,
                "is_primary": st.is_leader,
                "last_seq": st.last_seq,
                "proposal_pending": st.proposal_pending,
                "noop_deliveries": st.noops,
                "evidence": st.evidence,
                "byzantine": st.byzantine or None,
                "waiting_for": st.waiting_for,
            })
            if st.byzantine:
                out["warning"] = f"BYZANTINE behaviour {st.byzantine!r} is ON at this node"
        if self.peers is not None:
            out["peers"] = [int(p) for p in self.peers.connected_peers()]
        if self.liveness is not None:
            out["liveness"] = self.liveness.to_json()
        if self.clock is not None:
            out["clock"] = self.clock.status()
            if self.clock.clock.skew_ms:
                out["clock_warning"] = (f"CLOCK SKEW of {self.clock.clock.skew_ms:+d} ms is ON at "
                                        f"this node (test networks only)")
        if self.evidence_store is not None:
            out["evidence_by_validator"] = {str(v): n for v, n in self.evidence_store.counts().items()}
        if self.tx_intake is not None:
            out["tx_held_back"] = self.tx_intake.statistics()
        if self.tx_rebroadcast is not None:
            out["tx_rebroadcast"] = self.tx_rebroadcast.statistics()
        return out

    async def evidence(self, limit: int | str = EVIDENCE_LIMIT_MAX) -> dict[str, Any]:
        """Verified evidence of misbehaviour, newest first (at most ``limit``, bounded)."""
        n = _height(limit, "limit") or 0
        if self.evidence_store is None:
            return {"total": 0, "by_validator": {}, "evidence": []}
        store = self.evidence_store
        return {"total": store.total,
                "by_validator": {str(v): c for v, c in store.counts().items()},
                "evidence": [r.to_json() for r in store.newest(min(n, EVIDENCE_LIMIT_MAX))]}

    async def health(self) -> dict[str, Any]:
        return {}

    # ------------------------------------------------------------------ transactions

    def _admit(self, raw: bytes) -> bytes:
        try:
            return self.app.admit(raw)
        except MempoolRejected as e:
            if self.metrics is not None:
                self.metrics.mempool_failed.labels(e.reason.value).inc()
            text = str(e)
            message = text if text.upper().startswith(e.reason.name) else f"{e.reason.name}: {text}"
            raise RpcError(TX_REJECTED, message, {"reason": e.reason.value}) from None

    async def _gossip(self, raw: bytes) -> None:
        if self.gossip is not None:
            await self.gossip(raw)

    async def _yield_slice(self) -> None:
        """Yield the event loop once per ``ADMISSION_SLICE_S`` of admission work.

        A JSON-RPC batch of admissions must not hold the loop the consensus driver and the
        p2p readers share (under a flood that starved them until views timed out), but
        yielding before every admission throttled clients (each yield waits for every other
        runnable task).
        """
        now = trio.current_time()
        if now - self._slice_start >= ADMISSION_SLICE_S:
            await trio.lowlevel.checkpoint()
            self._slice_start = trio.current_time()

    async def broadcast_tx_async(self, tx: str) -> dict[str, Any]:
        raw = _hex(tx, "tx")
        await self._yield_slice()
        tx_hash = self._admit(raw)
        await self._gossip(raw)
        return {"hash": hexstr(tx_hash)}

    async def broadcast_tx_sync(self, tx: str) -> dict[str, Any]:
        raw = _hex(tx, "tx")
        await self._yield_slice()
        tx_hash = self._admit(raw)
        await self._gossip(raw)
        return {"hash": hexstr(tx_hash), "code": 0}

    async def broadcast_tx_commit(self, tx: str, timeout: float | int | str = 30) -> dict[str, Any]:
        raw = _hex(tx, "tx")
        try:
            limit = min(float(timeout), COMMIT_TIMEOUT_S_MAX)
        except (TypeError, ValueError):
            raise ValueError("timeout: expected seconds") from None
        if not limit > 0 or math.isnan(limit):
            raise ValueError("timeout: must be positive")
        try:
            decoded = decode_transaction(raw)
        except ChainError as e:
            raise RpcError(TX_REJECTED, f"BAD_ENCODING: {e}", {"reason": "bad_encoding"}) from None
        tx_hash = decoded.hash
        found = self._committed(tx_hash)
        if found is not None:
            return found
        event = self.waiters.register(tx_hash)
        try:
            try:
                self._admit(raw)
            except RpcError as e:
                if not (isinstance(e.data, dict) and e.data.get("reason") == "duplicate"):
                    raise
            await self._gossip(raw)
            with trio.move_on_after(limit):
                await event.wait()
        finally:
            self.waiters.release(tx_hash)
        found = self._committed(tx_hash)
        if found is None:
            raise RpcError(TIMED_OUT, f"transaction {hexstr(tx_hash)} not committed within {limit:g} s "
                                      "(it was accepted and may still be committed)",
                           {"hash": hexstr(tx_hash)})
        return found

    def _committed(self, tx_hash: bytes) -> dict[str, Any] | None:
        try:
            loc = self.app.ledger.transaction(tx_hash)
        except (NotFound, Pruned):
            return None
        return {"hash": hexstr(tx_hash), "height": loc.height, "index": loc.index,
                "receipt": receipt_json(loc.receipt)}

    async def tx(self, hash: str) -> dict[str, Any]:
        tx_hash = _hex(hash, "hash", 32)
        found = self._committed(tx_hash)
        if found is not None:
            loc = self.app.ledger.transaction(tx_hash)
            found["tx"] = tx_json(loc.tx)
            return found
        pending = self.app.mempool.get(tx_hash)
        if pending is not None:
            raise RpcError(NOT_FOUND, f"transaction {hash} is pending in the mempool, not committed",
                           {"pending": True})
        raise RpcError(NOT_FOUND, f"transaction {hash} not found", {"pending": False})

    async def unconfirmed_txs(self, limit: int | str = 30) -> dict[str, Any]:
        n = _height(limit, "limit") or 0
        n = min(n, UNCONFIRMED_LIMIT_MAX)
        txs = self.app.mempool.select(n, 1 << 40) if n else []
        return {"n_txs": len(self.app.mempool), "total_bytes": self.app.mempool.size_bytes,
                "txs": [tx_json(t) for t in txs]}

    async def num_unconfirmed_txs(self) -> dict[str, Any]:
        return {"n_txs": len(self.app.mempool), "total_bytes": self.app.mempool.size_bytes}

    # ------------------------------------------------------------------ unsafe

    def _require_unsafe(self, method: str) -> None:
        if not self.info.unsafe:
            raise RpcError(UNSAFE_REFUSED, f"{method} changes this node's behaviour and is "
                           f"refused: set rpc.unsafe = true in its config.toml to allow it")

    async def unsafe_flush_mempool(self) -> dict[str, Any]:
        """Drop every pending transaction of this node (peers keep theirs)."""
        self._require_unsafe("unsafe_flush_mempool")
        flushed = self.app.mempool.flush()
        log.warning("mempool flushed over RPC: %d transactions dropped", flushed)
        return {"flushed": flushed}

    async def unsafe_set_log_level(self, level: str) -> dict[str, Any]:
        """Change the level of this node's logs until it restarts."""
        self._require_unsafe("unsafe_set_log_level")
        set_log_level(str(level))
        log.warning("log level set to %s over RPC", level)
        return {"log_level": level}

    # ------------------------------------------------------------------ chain reads

    def _resolve_height(self, height: Any) -> int:
        h = _height(height)
        head = self.app.head.height
        if h is None:
            return head
        if h > head:
            raise RpcError(NOT_FOUND, f"block {h} is not committed yet (head is {head})")
        return h

    async def block(self, height: int | str | None = None) -> dict[str, Any]:
        h = self._resolve_height(height)
        try:
            blk = self.app.ledger.block(h)
        except (NotFound, Pruned, LedgerError) as e:
            raise RpcError(NOT_FOUND, f"block {h}: {e}") from None
        return block_json(blk)

    async def commit(self, height: int | str | None = None) -> dict[str, Any]:
        h = self._resolve_height(height)
        if h == 0:
            raise RpcError(NOT_FOUND, "block 0 (genesis) has no certificate")
        try:
            cert = self.app.ledger.certificate(h)
        except (NotFound, Pruned, LedgerError) as e:
            raise RpcError(NOT_FOUND, f"certificate {h}: {e}") from None
        return {"height": h, "certificate": certificate_json(cert)}

    async def account(self, address: str) -> dict[str, Any]:
        addr = _address(address)
        acct = self.app.ledger.account(addr)
        pending = self.app.mempool.pending(addr)
        next_nonce = max([int(acct.nonce), *[t.nonce + 1 for t in pending]])
        return {
            "address": format_address(addr),
            "balance": int(acct.balance),
            "nonce": int(acct.nonce),
            "next_nonce": next_nonce,
            "code_hash": hexstr(acct.code_hash),
            "height": self.app.head.height,
        }

    async def validators(self) -> dict[str, Any]:
        return {
            "height": self.app.head.height,
            "count": self.genesis.n,
            "f": self.genesis.f,
            "validators": [
                {"index": i, "name": v.name, "address": format_address(v.address),
                 "public_key": hexstr(v.public_key)}
                for i, v in enumerate(self.genesis.validators)
            ],
        }

    async def net_info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"suspected": sorted(int(p) for p in self.suspicions())}
        if self.peers is not None:
            st = self.peers.statistics()
            out.update({
                "n_peers": st.peers_connected,
                "peers": [int(p) for p in st.connected],
                "lamport": st.lamport,
                "bytes_in": st.bytes_in,
                "bytes_out": st.bytes_out,
                "frames_dropped": st.frames_dropped,
                "bans": [str(b) for b in st.bans],
            })
        else:
            out.update({"n_peers": 0, "peers": [], "lamport": 0})
        if self.liveness is not None:
            out["liveness"] = self.liveness.to_json()
        if self.clock is not None:
            out["clock"] = self.clock.net_info()
        return out

    async def dump_consensus_state(self) -> dict[str, Any]:
        if self.driver is None:
            return {}
        stats = self.driver.kit.inner.statistics()
        doc = ({f.name: _plain(getattr(stats, f.name)) for f in dataclasses.fields(stats)}
               if dataclasses.is_dataclass(stats) else _plain(stats))
        evidence = [{"offender": int(e.offender), "kind": e.kind} for e in self.driver.evidence]
        return {"engine": self.driver.kit.kind, "state": doc, "evidence": evidence,
                "status": _plain(dataclasses.asdict(self.driver.status()))}

    async def call(self, to: str, data: str = "0x", sender: str | None = None,
                   gas: int | str = 1_000_000, value: int | str = 0) -> dict[str, Any]:
        to_addr = _address(to, "to")
        payload = _hex(data, "data")
        from_addr = _address(sender, "sender") if sender else bytes(20)
        gas_i = _height(gas, "gas") or 0
        value_i = _height(value, "value") or 0
        if self.runtime is None:
            raise RpcError(NOT_FOUND, "contracts are not enabled on this node")
        from chain.runtime import ExecutionContext

        head = self.app.head
        ctx = ExecutionContext(self.genesis.chain_id, head.height + 1, head.timestamp, bytes(20))
        state = self.app.ledger.state()
        outcome = self.runtime.query(state, ctx, to=to_addr, data=payload, gas=min(gas_i, 10_000_000),
                                     sender=from_addr, value=value_i)
        return {
            "success": bool(outcome.success),
            "gas_used": int(outcome.gas_used),
            "return_data": hexstr(outcome.return_data),
            "reason": str(getattr(outcome, "reason", "") or ""),
            "height": head.height,
        }


def _plain(value: Any) -> Any:
    if isinstance(value, int | str | bool | float) or value is None:
        return value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return hexstr(value)
    return str(value)


"""JSON shapes of chain objects in RPC answers (blocks, transactions, receipts, certificates).

Bytes are ``0x`` hex, addresses use :func:`chain.keys.format_address`, integers stay
integers. Used by :mod:`node.rpc_methods` (answers) and the block WebSocket feed.
"""

from __future__ import annotations

from typing import Any

from chain.block import Block, CommitCertificate
from chain.keys import format_address
from chain.receipt import Receipt
from chain.tx import Transaction

__all__ = ["block_json", "certificate_json", "hexstr", "receipt_json", "tx_json"]


def hexstr(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def receipt_json(r: Receipt) -> dict[str, Any]:
    """A receipt as JSON."""
    return {
        "tx_hash": hexstr(r.tx_hash),
        "status": int(r.status),
        "success": r.succeeded,
        "gas_used": r.gas_used,
        "fee_paid": r.fee_paid,
        "reason": r.reason_text,
        "logs": [
            {"address": hexstr(lg.address), "topics": [hexstr(t) for t in lg.topics], "data": hexstr(lg.data)}
            for lg in r.logs
        ],
        "contract_address": format_address(r.contract_address) if r.contract_address else None,
        "return_data": hexstr(r.return_data),
    }


def tx_json(tx: Transaction) -> dict[str, Any]:
    """A transaction as JSON."""
    return {
        "hash": hexstr(tx.hash),
        "from": format_address(tx.sender_address),
        "to": format_address(tx.to) if tx.to else None,
        "nonce": tx.nonce,
        "amount": tx.amount,
        "fee": tx.fee,
        "gas_limit": tx.gas_limit,
        "data": hexstr(tx.data),
    }


def certificate_json(c: CommitCertificate) -> dict[str, Any]:
    """A commit certificate as JSON."""
    return {
        "height": c.height,
        "view": c.view,
        "seq": c.seq,
        "block_hash": hexstr(c.block_hash),
        "signatures": [{"validator_index": v.validator_index, "signature": hexstr(v.signature)}
                       for v in c.votes],
    }


def block_json(block: Block, *, full_txs: bool = True) -> dict[str, Any]:
    """A block as JSON (header fields, transactions, the parent's certificate)."""
    h = block.header
    return {
        "height": h.height,
        "hash": hexstr(block.hash),
        "chain_id": h.chain_id,
        "parent_hash": hexstr(h.parent_hash),
        "timestamp": h.timestamp,
        "proposer": format_address(h.proposer),
        "tx_root": hexstr(h.tx_root),
        "state_root": hexstr(h.state_root),
        "last_commit_hash": hexstr(h.last_commit_hash),
        "num_txs": len(block.transactions),
        "txs": [tx_json(t) if full_txs else hexstr(t.hash) for t in block.transactions],
        "last_commit": certificate_json(block.last_commit),
    }

"""Receipts: the outcome of one transaction, stored by the ledger next to its block.

A :class:`Receipt` records whether the transaction succeeded, the gas it used, the fee it
paid, a human-readable reason on failure, the events (:class:`Log`) a contract emitted, the
address of a contract it created and the data a call returned. Every variable-size field is
bounded (``*_MAX`` below) so a stored or transmitted receipt has a bounded size; the executor
truncates reasons and return data to fit and turns oversized logs into a failure.

Callers: :mod:`chain.executor` (builds them), the ledger (stores, decodes), the node API.
"""

from __future__ import annotations

import enum
from typing import Final

import rlp

from chain.encoding import (
    CountableList,
    address,
    address_or_empty,
    bounded_binary,
    decode,
    hash32,
    uint8,
    uint64,
    uint256,
)

__all__ = [
    "LOGS_PER_RECEIPT_MAX",
    "LOG_DATA_BYTES_MAX",
    "LOG_TOPICS_MAX",
    "REASON_BYTES_MAX",
    "RETURN_DATA_BYTES_MAX",
    "Log",
    "Receipt",
    "ReceiptStatus",
    "decode_receipt",
    "truncate_reason",
]

#: Topics per log (LOG0..LOG4).
LOG_TOPICS_MAX: Final = 4
#: Data bytes per log.
LOG_DATA_BYTES_MAX: Final = 4096
#: Logs per receipt.
LOGS_PER_RECEIPT_MAX: Final = 64
#: UTF-8 bytes of a failure reason.
REASON_BYTES_MAX: Final = 256
#: Bytes of return data kept in a receipt.
RETURN_DATA_BYTES_MAX: Final = 4096


class ReceiptStatus(enum.IntEnum):
    """Outcome of a transaction."""

    FAILURE = 0
    SUCCESS = 1


class Log(rlp.Serializable):  # type: ignore[misc]
    """An event emitted by a contract: emitting ``address``, up to 4 ``topics``, ``data``."""

    fields = (
        ("address", address),
        ("topics", CountableList(hash32, max_length=LOG_TOPICS_MAX)),
        ("data", bounded_binary(LOG_DATA_BYTES_MAX)),
    )

    address: bytes
    topics: tuple[bytes, ...]
    data: bytes


class Receipt(rlp.Serializable):  # type: ignore[misc]
    """The outcome of one transaction.

    Fields: ``tx_hash``; ``status`` (:class:`ReceiptStatus`); ``gas_used``; ``fee_paid``
    (= gas_used * the transaction's fee per gas, paid to the block proposer); ``reason``
    (UTF-8, empty on success); ``logs``; ``contract_address`` (20 bytes for a successful
    creation, else empty); ``return_data``.
    """

    fields = (
        ("tx_hash", hash32),
        ("status", uint8),
        ("gas_used", uint64),
        ("fee_paid", uint256),
        ("reason", bounded_binary(REASON_BYTES_MAX)),
        ("logs", CountableList(Log, max_length=LOGS_PER_RECEIPT_MAX)),
        ("contract_address", address_or_empty),
        ("return_data", bounded_binary(RETURN_DATA_BYTES_MAX)),
    )

    tx_hash: bytes
    status: int
    gas_used: int
    fee_paid: int
    reason: bytes
    logs: tuple[Log, ...]
    contract_address: bytes
    return_data: bytes

    @property
    def succeeded(self) -> bool:
        """True if the transaction succeeded."""
        return self.status == ReceiptStatus.SUCCESS

    @property
    def reason_text(self) -> str:
        """The failure reason as text (empty on success)."""
        return self.reason.decode("utf-8", errors="replace")


def truncate_reason(text: str) -> bytes:
    """UTF-8 of ``text`` cut to :data:`REASON_BYTES_MAX` bytes on a character boundary."""
    raw = text.encode("utf-8", errors="replace")
    if len(raw) <= REASON_BYTES_MAX:
        return raw
    return raw[:REASON_BYTES_MAX].decode("utf-8", errors="ignore").encode("utf-8")


def decode_receipt(data: bytes) -> Receipt:
    """Decode a receipt strictly.

    Raises:
        DecodeError: ``data`` is not the canonical encoding of a valid receipt.
    """
    receipt: Receipt = decode(data, Receipt, what="Receipt")
    return receipt

"""Gas schedule of the executor: what a transaction costs before any contract code runs.

Every transaction pays *intrinsic gas* up front (counted in ``gas_used`` even when it then
fails):

================================  ==========================================================
``TX_BASE_GAS``                   every transaction that passes the pre-checks (transfer,
                                  contract call)
``CREATE_BASE_GAS``               replaces ``TX_BASE_GAS`` for a contract creation
``TX_DATA_GAS_PER_BYTE``          each byte of ``data`` (call data or init code)
================================  ==========================================================

A plain transfer (recipient without code, empty data) therefore uses exactly
``TX_BASE_GAS`` and pays ``TX_BASE_GAS * tx.fee``. A transaction whose ``gas_limit`` is below
its intrinsic gas is rejected by the pre-checks (no state change). What remains of
``gas_limit`` after the intrinsic gas is handed to the contract runtime; its per-instruction
costs live in :mod:`chain.vm.gas`.

All values are integers and part of consensus: changing one changes every node's state.
Used by :mod:`chain.executor` and :mod:`chain.mempool`.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CREATE_BASE_GAS",
    "TX_BASE_GAS",
    "TX_DATA_GAS_PER_BYTE",
    "intrinsic_gas",
]

#: Intrinsic gas of a transfer or contract call.
TX_BASE_GAS: Final = 21_000
#: Intrinsic gas of a contract creation.
CREATE_BASE_GAS: Final = 53_000
#: Gas per byte of transaction data.
TX_DATA_GAS_PER_BYTE: Final = 16


def intrinsic_gas(data_length: int, *, is_creation: bool) -> int:
    """Gas a transaction uses before any code runs.

    Args:
        data_length: ``len(tx.data)``.
        is_creation: whether the transaction creates a contract.

    Returns:
        ``CREATE_BASE_GAS`` or ``TX_BASE_GAS``, plus ``TX_DATA_GAS_PER_BYTE`` per data byte.
    """
    base = CREATE_BASE_GAS if is_creation else TX_BASE_GAS
    return base + TX_DATA_GAS_PER_BYTE * data_length

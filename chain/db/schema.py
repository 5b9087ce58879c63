"""Every database key Phalanx uses is built here, and only here.

Keys are a short ASCII prefix followed by fixed-width binary parts, so that
``iterate(prefix)`` walks one kind of record in a meaningful order (heights are 8-byte
big-endian, so blocks iterate in height order). Grepping for a prefix finds one place.

Layout (``H`` = 8-byte big-endian height, ``A`` = 20-byte address, ``K`` = 32-byte slot):

=================  ==========================================================
``a:`` A           account record (nonce, balance, code hash)
``s:`` A K         contract storage slot value
``code:`` hash     contract code by its hash
=================  ==========================================================

Further prefixes (blocks, certificates, receipts, indexes, head, checkpoints) are added by
the ledger below this line, each with its own function.
"""

from __future__ import annotations

ACCOUNT_PREFIX = b"a:"
STORAGE_PREFIX = b"s:"
CODE_PREFIX = b"code:"


def height_bytes(height: int) -> bytes:
    """8-byte big-endian height, so keys sort by height."""
    if not 0 <= height < 1 << 64:
        raise ValueError(f"height out of range: {height}")
    return height.to_bytes(8, "big")


def make_account_key(address: bytes) -> bytes:
    assert len(address) == 20, "addresses are 20 bytes"
    return ACCOUNT_PREFIX + address


def make_storage_key(address: bytes, slot: bytes) -> bytes:
    assert len(address) == 20 and len(slot) == 32, "storage keys are address(20) + slot(32)"
    return STORAGE_PREFIX + address + slot


def make_storage_prefix(address: bytes) -> bytes:
    assert len(address) == 20
    return STORAGE_PREFIX + address


def make_code_key(code_hash: bytes) -> bytes:
    assert len(code_hash) == 32
    return CODE_PREFIX + code_hash

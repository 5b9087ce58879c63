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


# --- Ledger keys (blocks, certificates, receipts, indexes, head) -------------------------------
#
# =================  ==========================================================
# ``blk:`` H         block at height H (canonical RLP)
# ``bhx:`` hash      height of the block with this hash (8 bytes)
# ``crt:`` H         commit certificate of block H
# ``rct:`` H         receipts of block H (RLP list, one per transaction, in order)
# ``txi:`` hash      transaction location: RLP [height, index]
# ``meta:head``      head pointer (height, block hash, state commitment, timestamp)
# ``meta:genesis``   hash of the genesis this database was created from
# ``meta:floor``     lowest height whose block is still stored (pruning / snapshot restore)
# ``meta:preimages`` checkpoint height since which every changed state key has a pre-image
# ``cpt:`` H         checkpoint record at height H (height, hash, commitment, full root)
# ``cpv:`` key       pre-image of a state key as it was at the latest checkpoint
# ``cpp:`` H         the quorum proof (opaque consensus bytes) that checkpoint H is stable
# =================  ==========================================================

BLOCK_PREFIX = b"blk:"
BLOCK_HASH_PREFIX = b"bhx:"
CERTIFICATE_PREFIX = b"crt:"
RECEIPTS_PREFIX = b"rct:"
TX_INDEX_PREFIX = b"txi:"
CHECKPOINT_PREFIX = b"cpt:"
CHECKPOINT_PREIMAGE_PREFIX = b"cpv:"
CHECKPOINT_PROOF_PREFIX = b"cpp:"
HEAD_KEY = b"meta:head"
GENESIS_HASH_KEY = b"meta:genesis"
FLOOR_KEY = b"meta:floor"
PREIMAGES_KEY = b"meta:preimages"

#: Every prefix holding state entries (what ``full_state_root`` and snapshots cover).
STATE_PREFIXES = (ACCOUNT_PREFIX, STORAGE_PREFIX, CODE_PREFIX)


def make_block_key(height: int) -> bytes:
    return BLOCK_PREFIX + height_bytes(height)


def make_block_hash_key(block_hash: bytes) -> bytes:
    assert len(block_hash) == 32
    return BLOCK_HASH_PREFIX + block_hash


def make_certificate_key(height: int) -> bytes:
    return CERTIFICATE_PREFIX + height_bytes(height)


def make_receipts_key(height: int) -> bytes:
    return RECEIPTS_PREFIX + height_bytes(height)


def make_tx_index_key(tx_hash: bytes) -> bytes:
    assert len(tx_hash) == 32
    return TX_INDEX_PREFIX + tx_hash


def make_checkpoint_key(height: int) -> bytes:
    return CHECKPOINT_PREFIX + height_bytes(height)


def make_checkpoint_proof_key(height: int) -> bytes:
    return CHECKPOINT_PROOF_PREFIX + height_bytes(height)


def make_checkpoint_preimage_key(state_key: bytes) -> bytes:
    assert state_key.startswith(STATE_PREFIXES), "pre-images are kept for state keys only"
    return CHECKPOINT_PREIMAGE_PREFIX + state_key


def state_key_of_preimage(key: bytes) -> bytes:
    """Inverse of :func:`make_checkpoint_preimage_key`."""
    assert key.startswith(CHECKPOINT_PREIMAGE_PREFIX)
    return key[len(CHECKPOINT_PREIMAGE_PREFIX) :]


def height_from_key(key: bytes, prefix: bytes) -> int:
    """The height encoded in a ``prefix + H`` key."""
    assert key.startswith(prefix) and len(key) == len(prefix) + 8
    return int.from_bytes(key[len(prefix) :], "big")

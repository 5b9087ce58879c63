"""World state: accounts, contract code and storage, as a journaled overlay over a KeyValueDB.

Theory of operation
-------------------
:class:`StateDB` reads through to a :class:`~chain.db.base.KeyValueDB` and keeps every write in
an in-memory *dirty overlay* (accounts, storage slots, code). Each write appends the overlay's
previous entry to a *journal*; :meth:`StateDB.snapshot` remembers the journal length and
:meth:`StateDB.revert` pops entries back to it, so nested snapshots cost nothing until used
(the executor takes one per transaction, the VM one per call frame).

:meth:`StateDB.commit` turns the overlay into the block's *net* changes: schema key -> new
value, or ``None`` for a delete, skipping entries that ended equal to what the db holds. It
does not touch the database: the ledger puts ``writes`` into its one atomic batch
(:func:`apply_writes` does the same for tests and the simulator). Values committed are kept in
the read cache, so the same ``StateDB`` keeps reading correctly for the next block as long as
the writes of commit N are applied before commit N+1 (the cache may be dropped at a commit).

State commitment (incremental)
------------------------------
``commitment_N = SHA-256(STATE_DOMAIN || commitment_{N-1} || SHA-256(RLP(changes_N)))`` where
``changes_N`` is the list of ``[key, value]`` pairs the block changed, sorted by key, with an
empty value for a delete. Cost is proportional to the block's changes, never to the state size,
and no dict order leaks into it. Every commit advances the commitment, even with no change.
:func:`full_state_root` is the complement used at checkpoints: a Merkle root over every state
entry in key order, which a snapshot can be verified against.

Invariants
----------
* An account record exists in the db iff the account is not empty (nonce 0, balance 0, no
  code); an account that becomes empty is deleted. A zero storage value is deleted.
* Balances stay within uint256 and nonces within uint64; ``sub_balance`` and ``add_balance``
  raise (:class:`InsufficientBalance`, :class:`BalanceOverflow`) and leave state unchanged.
* Keys come only from :mod:`chain.db.schema`.

Callers: :mod:`chain.executor` (per transaction), the VM runtime (per call frame), the ledger
(commit, genesis balances), checkpoints (:func:`full_state_root`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import rlp

from chain._state_codec import (
    decode_account_fields,
    encode_account_fields,
    encode_list_payload,
    encode_pair,
    encode_pairs,
)
from chain.db.base import KeyValueDB
from chain.db.schema import (
    ACCOUNT_PREFIX,
    CODE_PREFIX,
    STORAGE_PREFIX,
    make_account_key,
    make_code_key,
    make_storage_key,
)
from chain.encoding import decode, hash32, uint64, uint256
from chain.errors import ChainError

__all__ = [
    "EMPTY_CODE_HASH",
    "EMPTY_STATE_COMMITMENT",
    "STATE_DOMAIN",
    "ZERO_WORD",
    "Account",
    "BalanceOverflow",
    "InsufficientBalance",
    "NonceOverflow",
    "StateCommit",
    "StateCorruption",
    "StateDB",
    "StateError",
    "apply_writes",
    "decode_account",
    "full_state_root",
    "read_account_fields",
]

#: Code hash of an account without code: SHA-256 of the empty string.
EMPTY_CODE_HASH: Final = hashlib.sha256(b"").digest()
#: Domain tag of the incremental state commitment.
STATE_DOMAIN: Final = b"phalanx/state/v1"
#: Commitment of the empty state before any commit (what the ledger starts genesis from).
EMPTY_STATE_COMMITMENT: Final = b"\x00" * 32
#: A 32-byte zero storage word: the value of every unset slot.
ZERO_WORD: Final = b"\x00" * 32

_UINT64_MAX: Final = (1 << 64) - 1
_UINT256_MAX: Final = (1 << 256) - 1
#: Default bound on the read cache (entries of db values kept between commits).
READ_CACHE_ENTRIES_MAX: Final = 200_000

_AccountTuple = tuple[int, int, bytes]  # (nonce, balance, code_hash)
_EMPTY: Final[_AccountTuple] = (0, 0, EMPTY_CODE_HASH)
_MISSING: Final[Any] = object()


class StateError(ChainError):
    """Base of the errors a state operation raises on purpose (state is left unchanged)."""


class InsufficientBalance(StateError):
    """Raised by ``sub_balance`` when the account holds less than the amount."""


class BalanceOverflow(StateError):
    """Raised by ``add_balance``/``set_balance`` when a balance would leave uint256."""


class NonceOverflow(StateError):
    """Raised by ``increment_nonce``/``set_nonce`` when a nonce would leave uint64."""


class StateCorruption(StateError):
    """Raised when a state record read from the database is not a valid canonical record."""


class Account(rlp.Serializable):  # type: ignore[misc]
    """An account record: ``nonce`` (uint64), ``balance`` (uint256), ``code_hash`` (32 bytes)."""

    fields = (
        ("nonce", uint64),
        ("balance", uint256),
        ("code_hash", hash32),
    )

    nonce: int
    balance: int
    code_hash: bytes

    @property
    def is_empty(self) -> bool:
        """True for the default account (nonce 0, balance 0, no code)."""
        return self.nonce == 0 and self.balance == 0 and self.code_hash == EMPTY_CODE_HASH


def decode_account(data: bytes) -> Account:
    """Decode an account record strictly.

    Raises:
        DecodeError: ``data`` is not the canonical encoding of an account.
    """
    account: Account = decode(data, Account, what="Account")
    return account


@dataclass(frozen=True)
class StateCommit:
    """What :meth:`StateDB.commit` returns.

    Attributes:
        commitment: the new state commitment (32 bytes).
        writes: schema key -> new value, or ``None`` to delete; keys in sorted order. The
            ledger puts these into its atomic batch.
        accounts: address -> ``(nonce, balance, code_hash)`` of every account among
            ``writes`` (the ledger keeps them as its cache of the head's accounts).
    """

    commitment: bytes
    writes: Mapping[bytes, bytes | None]
    accounts: Mapping[bytes, tuple[int, int, bytes]] = field(default_factory=dict)


class StateDB:
    """A write-back, journaled overlay of the world state over a KeyValueDB.

    Args:
        db: the database holding the state as of ``commitment``.
        commitment: the state commitment the db content corresponds to.
        read_cache_entries_max: soft bound on cached db reads; checked at each commit.
        head_accounts: accounts known to equal the db's (the ledger's cache of what recent
            commits wrote), consulted before a db read; never written here.
    """

    def __init__(
        self,
        db: KeyValueDB,
        commitment: bytes,
        *,
        read_cache_entries_max: int = READ_CACHE_ENTRIES_MAX,
        head_accounts: Mapping[bytes, _AccountTuple] | None = None,
    ) -> None:
        if len(commitment) != 32:
            raise ValueError("a state commitment is 32 bytes")
        self._db = db
        self._commitment = bytes(commitment)
        self._read_cache_entries_max = read_cache_entries_max
        self._head_accounts: Mapping[bytes, _AccountTuple] = {} if head_accounts is None else head_accounts
        # Dirty overlay.
        self._accounts: dict[bytes, _AccountTuple] = {}
        self._storage: dict[bytes, bytes] = {}  # storage key -> 32-byte word (ZERO_WORD = delete)
        self._code: dict[bytes, bytes] = {}  # code hash -> code
        # Values as stored in the db (or committed by us and about to be stored).
        self._clean_accounts: dict[bytes, _AccountTuple] = {}
        self._clean_storage: dict[bytes, bytes] = {}
        self._clean_code: dict[bytes, bytes] = {}
        # Journal: (overlay, key, previous entry or _MISSING); snapshots are journal lengths.
        self._journal: list[tuple[dict[bytes, Any], bytes, Any]] = []
        self._snapshots: list[int] = []

    # ------------------------------------------------------------------ reads

    @property
    def commitment(self) -> bytes:
        """The commitment of the last committed state (overlay changes not included)."""
        return self._commitment

    @property
    def has_pending_changes(self) -> bool:
        """True if the overlay holds writes not yet committed (or not reverted)."""
        return bool(self._journal or self._accounts or self._storage or self._code)

    def _account(self, address: bytes) -> _AccountTuple:
        acct = self._accounts.get(address)
        if acct is not None:
            return acct
        acct = self._clean_accounts.get(address)
        if acct is not None:
            return acct
        acct = self._head_accounts.get(address)
        if acct is None:
            acct = read_account_fields(self._db, address)
        self._clean_accounts[address] = acct
        return acct

    def get_account(self, address: bytes) -> Account:
        """The account at ``address`` (the empty account if it does not exist)."""
        nonce, balance, code_hash = self._account(address)
        return Account(nonce=nonce, balance=balance, code_hash=code_hash)

    def balance(self, address: bytes) -> int:
        """Balance of ``address`` (0 if the account does not exist)."""
        return self._account(address)[1]

    def nonce(self, address: bytes) -> int:
        """Nonce of ``address``: the nonce its next transaction must carry."""
        return self._account(address)[0]

    def code_hash(self, address: bytes) -> bytes:
        """Code hash of ``address`` (:data:`EMPTY_CODE_HASH` without code)."""
        return self._account(address)[2]

    def has_code(self, address: bytes) -> bool:
        """True if ``address`` holds contract code."""
        return self._account(address)[2] != EMPTY_CODE_HASH

    def account_exists(self, address: bytes) -> bool:
        """True unless the account is empty (nonce 0, balance 0, no code)."""
        return self._account(address) != _EMPTY

    def get_code(self, address: bytes) -> bytes:
        """The contract code at ``address`` (``b""`` without code)."""
        code_hash = self._account(address)[2]
        if code_hash == EMPTY_CODE_HASH:
            return b""
        code = self._code.get(code_hash) or self._clean_code.get(code_hash)
        if code is not None:
            return code
        code = self._db.get(make_code_key(code_hash))
        if code is None or hashlib.sha256(code).digest() != code_hash:
            raise StateCorruption(f"code {code_hash.hex()} of 0x{address.hex()} missing or corrupt")
        self._clean_code[code_hash] = code
        return code

    def _storage_word(self, key: bytes) -> bytes:
        word = self._storage.get(key)
        if word is not None:
            return word
        word = self._clean_storage.get(key)
        if word is not None:
            return word
        raw = self._db.get(key)
        if raw is None:
            word = ZERO_WORD
        elif len(raw) != 32 or raw == ZERO_WORD:
            raise StateCorruption(f"storage record {key.hex()} is not a non-zero 32-byte word")
        else:
            word = raw
        self._clean_storage[key] = word
        return word

    def get_storage(self, address: bytes, slot: bytes) -> bytes:
        """The 32-byte word at ``slot`` of ``address`` (zero if unset)."""
        return self._storage_word(make_storage_key(address, slot))

    # ----------------------------------------------------------------- writes

    def _put_account(self, address: bytes, acct: _AccountTuple) -> None:
        self._journal.append((self._accounts, address, self._accounts.get(address, _MISSING)))
        self._accounts[address] = acct

    def set_balance(self, address: bytes, amount: int) -> None:
        """Set the balance of ``address``.

        Raises:
            BalanceOverflow: ``amount`` is negative or above uint256.
        """
        if not 0 <= amount <= _UINT256_MAX:
            raise BalanceOverflow(f"balance {amount} out of range for 0x{address.hex()}")
        nonce, _, code_hash = self._account(address)
        self._put_account(address, (nonce, amount, code_hash))

    def add_balance(self, address: bytes, amount: int) -> None:
        """Credit ``amount`` (>= 0) to ``address``.

        Raises:
            BalanceOverflow: the balance would exceed uint256 (state unchanged).
        """
        assert amount >= 0, "credit a non-negative amount"
        nonce, balance, code_hash = self._account(address)
        new = balance + amount
        if new > _UINT256_MAX:
            raise BalanceOverflow(f"balance of 0x{address.hex()} would exceed uint256")
        if amount:
            self._put_account(address, (nonce, new, code_hash))

    def sub_balance(self, address: bytes, amount: int) -> None:
        """Debit ``amount`` (>= 0) from ``address``.

        Raises:
            InsufficientBalance: the account holds less than ``amount`` (state unchanged).
        """
        assert amount >= 0, "debit a non-negative amount"
        nonce, balance, code_hash = self._account(address)
        if balance < amount:
            raise InsufficientBalance(f"0x{address.hex()} holds {balance}, cannot pay {amount}")
        if amount:
            self._put_account(address, (nonce, balance - amount, code_hash))

    def set_nonce(self, address: bytes, nonce: int) -> None:
        """Set the nonce of ``address``.

        Raises:
            NonceOverflow: ``nonce`` is outside uint64.
        """
        if not 0 <= nonce <= _UINT64_MAX:
            raise NonceOverflow(f"nonce {nonce} out of range for 0x{address.hex()}")
        _, balance, code_hash = self._account(address)
        self._put_account(address, (nonce, balance, code_hash))

    def increment_nonce(self, address: bytes) -> int:
        """Add one to the nonce of ``address`` and return the new nonce.

        Raises:
            NonceOverflow: the nonce is already the largest uint64.
        """
        nonce, balance, code_hash = self._account(address)
        if nonce >= _UINT64_MAX:
            raise NonceOverflow(f"nonce of 0x{address.hex()} is exhausted")
        self._put_account(address, (nonce + 1, balance, code_hash))
        return nonce + 1

    def increment_nonce_and_debit(self, address: bytes, amount: int) -> None:
        """Add one to the nonce of ``address`` and debit ``amount``, as one write.

        The executor's plain-transfer path: the sender's nonce, amount and fee in one step.

        Raises:
            NonceOverflow: the nonce is already the largest uint64 (state unchanged).
            InsufficientBalance: the account holds less than ``amount`` (state unchanged).
        """
        assert amount >= 0, "debit a non-negative amount"
        nonce, balance, code_hash = self._account(address)
        if nonce >= _UINT64_MAX:
            raise NonceOverflow(f"nonce of 0x{address.hex()} is exhausted")
        if balance < amount:
            raise InsufficientBalance(f"0x{address.hex()} holds {balance}, cannot pay {amount}")
        self._put_account(address, (nonce + 1, balance - amount, code_hash))

    def set_code(self, address: bytes, code: bytes) -> None:
        """Install ``code`` at ``address`` (``b""`` removes it); code is stored by its hash."""
        code = bytes(code)
        nonce, balance, _ = self._account(address)
        if code:
            code_hash = hashlib.sha256(code).digest()
            self._journal.append((self._code, code_hash, self._code.get(code_hash, _MISSING)))
            self._code[code_hash] = code
        else:
            code_hash = EMPTY_CODE_HASH
        self._put_account(address, (nonce, balance, code_hash))

    def set_storage(self, address: bytes, slot: bytes, value: bytes) -> None:
        """Set the 32-byte word at ``slot`` of ``address``; a zero word deletes the slot."""
        assert len(value) == 32, "storage values are 32-byte words"
        key = make_storage_key(address, slot)
        self._storage_word(key)  # remember the db value so commit can skip no-op writes
        self._journal.append((self._storage, key, self._storage.get(key, _MISSING)))
        self._storage[key] = bytes(value)

    # ---------------------------------------------------------------- journal

    def snapshot(self) -> int:
        """Mark the current point; :meth:`revert` with the returned id undoes later changes."""
        self._snapshots.append(len(self._journal))
        return len(self._snapshots) - 1

    def revert(self, snapshot_id: int) -> None:
        """Undo every change made after ``snapshot`` returned ``snapshot_id``.

        Snapshots taken after it become invalid; earlier ones stay valid.
        """
        assert 0 <= snapshot_id < len(self._snapshots), f"unknown snapshot {snapshot_id}"
        mark = self._snapshots[snapshot_id]
        del self._snapshots[snapshot_id:]
        journal = self._journal
        while len(journal) > mark:
            overlay, key, previous = journal.pop()
            if previous is _MISSING:
                del overlay[key]
            else:
                overlay[key] = previous

    # ----------------------------------------------------------------- commit

    def commit(self) -> StateCommit:
        """Close the block: compute the net writes and the new commitment; reset the overlay.

        Returns:
            The new commitment and the writes (sorted by key) for the ledger's batch.
        """
        changes: dict[bytes, bytes | None] = {}
        accounts: dict[bytes, _AccountTuple] = {}
        clean_accounts = self._clean_accounts
        for address, acct in self._accounts.items():
            if acct == clean_accounts[address]:
                continue
            accounts[address] = acct
            nonce, balance, code_hash = acct
            empty = nonce == 0 and balance == 0 and code_hash == EMPTY_CODE_HASH
            changes[make_account_key(address)] = (
                None if empty else encode_account_fields(nonce, balance, code_hash)
            )
        clean_storage = self._clean_storage
        for key, word in self._storage.items():
            if word == clean_storage[key]:
                continue
            changes[key] = None if word == ZERO_WORD else word
        for code_hash, code in self._code.items():
            key = make_code_key(code_hash)
            if code_hash not in self._clean_code and self._db.get(key) is None:
                changes[key] = code

        writes = dict(sorted(changes.items()))
        payload = b"".join(encode_pair(k, b"" if v is None else v) for k, v in writes.items())
        digest = hashlib.sha256(encode_list_payload(payload)).digest()
        self._commitment = hashlib.sha256(STATE_DOMAIN + self._commitment + digest).digest()

        cached = len(clean_accounts) + len(clean_storage) + len(self._clean_code)
        if cached > self._read_cache_entries_max:
            clean_accounts.clear()
            clean_storage.clear()
            self._clean_code.clear()
        clean_accounts.update(self._accounts)
        clean_storage.update(self._storage)
        self._clean_code.update(self._code)
        self._accounts = {}
        self._storage = {}
        self._code = {}
        self._journal = []
        self._snapshots = []
        return StateCommit(commitment=self._commitment, writes=writes, accounts=accounts)

    def discard(self) -> None:
        """Drop every uncommitted change (e.g. after a read-only call)."""
        self._accounts = {}
        self._storage = {}
        self._code = {}
        self._journal = []
        self._snapshots = []


def read_account_fields(db: KeyValueDB, address: bytes) -> _AccountTuple:
    """``(nonce, balance, code_hash)`` of ``address`` as ``db`` holds it (empty if absent).

    Raises:
        StateCorruption: the stored record does not decode.
    """
    raw = db.get(make_account_key(address))
    if raw is None:
        return _EMPTY
    try:
        return decode_account_fields(raw)
    except (ValueError, IndexError) as e:
        raise StateCorruption(f"account record of 0x{address.hex()}: {e}") from e


def apply_writes(db: KeyValueDB, writes: Mapping[bytes, bytes | None]) -> None:
    """Apply ``StateCommit.writes`` to ``db`` in one batch (tests, simulator; the ledger
    puts the same writes into its own batch)."""
    with db.write_batch(sync=False) as batch:
        for key, value in writes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)


def full_state_root(db: KeyValueDB) -> bytes:
    """Merkle root over every state entry (accounts, code, storage) in key order.

    Leaf ``i`` is ``RLP([key, value])`` of the ``i``-th state entry; the tree is
    :func:`chain.merkle.merkle_root`. Used at checkpoints so a snapshot can be verified.
    """
    from chain.merkle import merkle_root

    leaves: list[bytes] = []
    for prefix in sorted((ACCOUNT_PREFIX, CODE_PREFIX, STORAGE_PREFIX)):
        leaves.extend(encode_pairs(db.iterate(prefix)))
    return merkle_root(leaves)

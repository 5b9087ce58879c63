"""Checkers over real nodes' histories: agreement, no lost ack, conservation, no double spend, liveness.

Theory of operation
-------------------
The checkers are pure functions over plain records (:class:`BlockRecord`, :class:`Ack`,
balances, height samples), so they are tested with fabricated histories, including the
negative cases they must flag. :mod:`testnet._collect` fills those records from the nodes'
JSON-RPC APIs (``status``, ``block``, ``account``); :func:`run_all` runs every checker and
returns one :class:`Verdict`.

* **agreement**: at every height two honest nodes both have, the block hashes are equal;
* **no lost acknowledged transaction**: a transaction acknowledged as committed (by
  ``broadcast_tx_commit``, or seen in a block) at height h is in the block at h of every
  honest node that reached h (or anywhere in its chain if the height is unknown);
* **no double spend**: within each honest chain, a (sender, nonce) pair is executed at most
  once, and a transaction hash at most once (a block may carry an already-committed
  transaction, which the executor rejects without effect: that is no spend);
* **conservation**: the balances of every account that ever appeared sum to the genesis
  supply (fees move from senders to proposers; receipts say how much moved), and, when
  receipts are known, each account's balance equals its replay from genesis;
* **liveness**: after the last fault healed, the honest nodes' height grows within a bound;
* **linearizability** (:func:`check_linearizable`): the clients' recorded history of transfers
  and balance reads is linearizable per account (:mod:`testnet.linearizability`), e.g. no
  read returns a balance older than a transfer acknowledged before the read began.

Called by :mod:`testnet.chaos`, ``phalanx testnet check`` and the e2e tests.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from testnet.linearizability import check_bank

__all__ = [
    "Ack",
    "BlockRecord",
    "TxRecord",
    "Verdict",
    "Violation",
    "check_agreement",
    "check_conservation",
    "check_double_spend",
    "check_linearizable",
    "check_liveness",
    "check_lost_acks",
    "replay_balances",
]


@dataclass(frozen=True)
class Violation:
    """One broken property, with enough detail to find it."""

    check: str
    detail: str


@dataclass(frozen=True)
class TxRecord:
    """A transaction as committed: hash, sender address, nonce, transfer and receipt figures."""

    hash: str
    sender: str
    nonce: int
    to: str = ""
    amount: int = 0
    success: bool = True
    fee_paid: int = 0


@dataclass(frozen=True)
class BlockRecord:
    """One block as a node reports it."""

    height: int
    hash: str
    txs: tuple[TxRecord, ...] = ()
    proposer: str = ""


@dataclass(frozen=True)
class Ack:
    """A transaction a client was told is committed (height when the answer said so)."""

    hash: str
    height: int | None = None


@dataclass
class Verdict:
    """The outcome of a checker run: violations and the figures behind them."""

    violations: list[Violation] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def extend(self, found: Iterable[Violation]) -> None:
        self.violations.extend(found)


Chains = Mapping[int, Mapping[int, BlockRecord]]


def check_agreement(chains: Chains) -> list[Violation]:
    """Same block hash at every height on every node given (pass honest nodes only)."""
    out: list[Violation] = []
    heights = sorted({h for chain in chains.values() for h in chain})
    for h in heights:
        hashes = {node: chain[h].hash for node, chain in chains.items() if h in chain}
        if len(set(hashes.values())) > 1:
            shown = ", ".join(f"node {n}: {v[:18]}" for n, v in sorted(hashes.items()))
            out.append(Violation("agreement", f"height {h}: different blocks ({shown})"))
    return out


def _executed(tx: TxRecord) -> bool:
    """False for a no-effect rejection (stale or used nonce: no success, no fee paid)."""
    return tx.success or tx.fee_paid > 0


def _committed_at(chain: Mapping[int, BlockRecord]) -> dict[str, int]:
    """Transaction hash -> the height that executed it (else its first inclusion), as the
    ledger's index reports it."""
    out: dict[str, int] = {}
    for h in sorted(chain):
        for tx in chain[h].txs:
            if tx.hash not in out or _executed(tx):
                out[tx.hash] = h
    return out


def check_lost_acks(acks: Iterable[Ack], chains: Chains) -> list[Violation]:
    """Every acknowledged transaction is committed on every honest node that got that far."""
    out: list[Violation] = []
    where: dict[int, dict[str, int]] = {node: _committed_at(chain) for node, chain in chains.items()}
    for ack in acks:
        for node, chain in sorted(chains.items()):
            top = max(chain, default=-1)
            found = where[node].get(ack.hash)
            if ack.height is not None:
                if top < ack.height:
                    continue  # this node has not reached the height yet: nothing to say
                if found != ack.height:
                    got = "missing" if found is None else f"at height {found}"
                    out.append(Violation("lost-ack", f"tx {ack.hash[:18]} acknowledged at height "
                                         f"{ack.height} is {got} on node {node}"))  # fmt: skip
            elif found is None:
                out.append(Violation("lost-ack", f"tx {ack.hash[:18]} acknowledged but missing "
                                     f"on node {node} (height {top})"))  # fmt: skip
    return out


def check_double_spend(chains: Chains) -> list[Violation]:
    """Within each chain, each (sender, nonce) and each tx hash at most once."""
    out: list[Violation] = []
    for node, chain in sorted(chains.items()):
        spent = [tx for b in chain.values() for tx in b.txs if _executed(tx)]
        spends = Counter((tx.sender, tx.nonce) for tx in spent)
        hashes = Counter(tx.hash for tx in spent)
        for (sender, nonce), count in sorted(spends.items()):
            if count > 1:
                out.append(Violation("double-spend", f"node {node}: sender {sender} nonce {nonce} "
                                     f"committed {count} times"))  # fmt: skip
        for tx_hash, count in sorted(hashes.items()):
            if count > 1:
                out.append(Violation("double-spend", f"node {node}: tx {tx_hash[:18]} committed "
                                     f"{count} times"))  # fmt: skip
    return out


def replay_balances(genesis: Mapping[str, int], chain: Mapping[int, BlockRecord]) -> dict[str, int]:
    """Balances after replaying the chain's transfers and receipts' fees from genesis.

    A successful transfer moves ``amount`` from sender to ``to``; every committed
    transaction moves ``fee_paid`` from its sender to the block's proposer.
    """
    balances: dict[str, int] = defaultdict(int, genesis)
    for h in sorted(chain):
        block = chain[h]
        for tx in block.txs:
            balances[tx.sender] -= tx.fee_paid
            if block.proposer:
                balances[block.proposer] += tx.fee_paid
            if tx.success and tx.to:
                balances[tx.sender] -= tx.amount
                balances[tx.to] += tx.amount
    return dict(balances)


def check_conservation(
    genesis: Mapping[str, int],
    balances: Mapping[str, int],
    chain: Mapping[int, BlockRecord] | None = None,
) -> list[Violation]:
    """Total money is the genesis supply; with a chain, every balance matches its replay.

    Args:
        genesis: genesis balances by address.
        balances: balances read from a node once the chain is quiet, covering every account
            that appeared (genesis accounts, senders, recipients, proposers).
        chain: the same node's blocks with receipts, for the per-account replay.
    """
    out: list[Violation] = []
    supply = sum(genesis.values())
    total = sum(balances.values())
    if total != supply:
        out.append(Violation("conservation", f"balances sum to {total}, genesis supply is "
                             f"{supply} (difference {total - supply:+d})"))  # fmt: skip
    if chain is not None:
        expected = replay_balances(genesis, chain)
        for addr in sorted(set(expected) | set(balances)):
            want, got = expected.get(addr, 0), balances.get(addr)
            if got is not None and got != want:
                out.append(Violation("conservation", f"account {addr}: balance {got}, replay of "
                                     f"the chain's receipts gives {want}"))  # fmt: skip
    return out


def check_liveness(
    samples: Sequence[tuple[float, int]], healed_at: float, bound_s: float
) -> tuple[list[Violation], float | None]:
    """The height grows within ``bound_s`` seconds after ``healed_at``.

    Args:
        samples: ``(time, lowest honest height)`` observations, in time order.
        healed_at: when the last fault was healed.
        bound_s: how long progress may take.

    Returns:
        The violations (empty or one) and the recovery time in seconds (None if none).
    """
    before = [h for t, h in samples if t <= healed_at]
    base = before[-1] if before else min((h for _, h in samples), default=0)
    for t, h in samples:
        if t > healed_at and h > base:
            recovery = t - healed_at
            if recovery <= bound_s:
                return [], recovery
            return [Violation("liveness", f"height grew only {recovery:.1f}s after the heal "
                              f"(bound {bound_s:.0f}s)")], recovery  # fmt: skip
    last = samples[-1][1] if samples else base
    return [Violation("liveness", f"no progress after the heal: height stayed at {last} "
                      f"(bound {bound_s:.0f}s)")], None  # fmt: skip


def check_linearizable(history: Iterable[Mapping[str, Any]], initial: Mapping[str, int]
                       ) -> tuple[list[Violation], dict[str, int]]:  # fmt: skip
    """Each account's sub-history of transfers and reads is linearizable (Wing-Gong per key).

    Args:
        history: client events ``{process, type, op, value, time}`` (see
            :func:`testnet.linearizability.check_bank`).
        initial: every account's balance before the history.

    Returns:
        One violation per non-linearizable account, and the counts: accounts, operations,
        linearizable, not_linearizable, too_large (a key past the search bounds: no answer,
        counted but not a violation).
    """
    result = check_bank(history, initial)
    keys = result.keys.values()
    counts = {
        "accounts": len(result.keys),
        "operations": sum(r.operations for r in keys),
        "linearizable": sum(r.status == "linearizable" for r in keys),
        "not_linearizable": sum(r.status == "not-linearizable" for r in keys),
        "too_large": sum(r.status == "too-large" for r in keys),
    }
    found = [Violation("linearizability", f"account {r.key}: {r.detail}")
             for r in result.violations()]  # fmt: skip
    return found, counts

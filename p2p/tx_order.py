"""Per-sender FIFO delivery of gossiped transactions: nonce ``k`` only after ``k - 1`` (sans-IO).

Theory of operation
-------------------
Gossip may bring a sender's transaction with nonce ``k`` to a node before nonce ``k - 1``.
The mempool would then refuse it (``NONCE_GAP_TOO_LARGE``) or keep it unexecutable. This
core holds such a transaction back and releases it once its predecessor was released
(or is known to be in the ledger or mempool), so a sender's transactions reach admission
in nonce order::

    offer(sender, nonce, item)
        expected = max(last released + 1, next_nonce(sender))   # oracle asked only if needed:
                   # sender unknown, or nonce above expected with nothing of it held
        nonce <  expected  -> released at once (a replacement or a late copy: the mempool judges)
        nonce == expected  -> released, then held nonce+1, nonce+2, ... of that sender, in order
        nonce >  expected  -> held back
    advance(sender, head_nonce)   # a block committed: nonces below head_nonce are used
        held ones below head_nonce are dropped (stale), then the run from head_nonce released

This is causal broadcast's hold-back (:class:`p2p.broadcast.CausalBroadcast`) reduced to
the one order transactions need: happens-before among one sender's transactions is nonce
order, and a sender's nonce *is* its sequence number. The vector-clock machinery does not
fit: its entries are per origin *node* from a fixed membership, while senders here are
unbounded, unauthenticated-until-verified accounts whose "origin" is whoever gossiped the
transaction; a vector over accounts would grow without bound and carry nothing useful
across senders (transactions of different senders are independent). So each sender gets a
FIFO hold-back keyed by nonce, and the sequence-number check is the ``deliverable`` test
of causal broadcast with a one-entry stamp.

Bounds: at most ``held_max`` transactions held in all and ``held_per_sender_max`` per
sender (over either, the *oldest* held one goes, counted in ``dropped_full``); the last
released nonce is remembered for ``senders_max`` senders (least recently used forgotten;
forgetting is safe, the ``next_nonce`` oracle is asked again). Nothing is released twice
by one offer path: an item leaves the hold-back exactly once (released or dropped).

Pure: no I/O, no clock. ``next_nonce`` is an injected query (the node answers with the
account nonce at the head plus the sender's contiguous pending run in the mempool); it is
asked only for an unknown sender, or when an offered nonce is above what this core knows and
nothing of that sender is held (while something is held the oracle was asked at the first
hold; a predecessor that reaches the ledger by another path is caught by ``advance`` after
its block commits). This keeps a burst of one sender's reordered transactions from costing
one ledger read each.

Who calls it: the node's gossip reader (``node.runtime``) before mempool admission, and
the commit listener (``advance``) after each block.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["SenderFifo", "SenderFifoStatistics"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SenderFifoStatistics:
    """Counters and sizes of a :class:`SenderFifo`."""

    held: int
    senders_held: int
    released: int
    held_total: int        # offers that were held back at least once
    dropped_full: int      # oldest held dropped to make room
    dropped_stale: int     # held ones whose nonce a committed block used
    duplicates: int        # a second item for a (sender, nonce) already held
    refused: int           # failed ``hold_check``: never held


class SenderFifo(Generic[T]):
    """Hold back each sender's items until their nonces are next (see the module docstring).

    Args:
        next_nonce: ``sender -> lowest nonce not yet known used or admitted`` (an oracle).
        held_max: items held in all.
        held_per_sender_max: items held for one sender.
        senders_max: senders whose last released nonce is remembered.
        hold_check: asked about an item only before holding it; False drops it (counted in
            ``refused``). The node checks the signature here, so a forgery never takes a
            place in the hold-back, while items released at once go to admission unchecked
            (the mempool orders its own checks, cheapest first).
    """

    def __init__(self, next_nonce: Callable[[bytes], int], *, held_max: int = 4096,
                 held_per_sender_max: int = 64, senders_max: int = 65536,
                 hold_check: Callable[[T], bool] | None = None) -> None:
        if held_max < 1 or held_per_sender_max < 1 or senders_max < 1:
            raise ValueError("SenderFifo bounds must be >= 1")
        self.next_nonce = next_nonce
        self.hold_check = hold_check
        self._refused = 0
        self.held_max = held_max
        self.held_per_sender_max = held_per_sender_max
        self.senders_max = senders_max
        self._next: OrderedDict[bytes, int] = OrderedDict()      # sender -> expected nonce
        self._held: dict[bytes, dict[int, T]] = {}               # sender -> nonce -> item
        self._age: OrderedDict[tuple[bytes, int], None] = OrderedDict()   # oldest first
        self._released = 0
        self._held_total = 0
        self._dropped_full = 0
        self._dropped_stale = 0
        self._duplicates = 0

    def __len__(self) -> int:
        return len(self._age)

    @property
    def dropped(self) -> int:
        """Held items dropped so far (bounds and stale), without building statistics."""
        return self._dropped_full + self._dropped_stale

    def holds(self, sender: bytes) -> bool:
        """True if some transaction of ``sender`` is held back."""
        return sender in self._held

    def offer(self, sender: bytes, nonce: int, item: T) -> list[T]:
        """Offer ``item``, ``sender``'s transaction with ``nonce``.

        Returns:
            The items now deliverable, in nonce order (maybe empty: ``item`` is held).
        """
        out: list[T] = []
        expected = self._next.get(sender)
        if expected is None or (nonce > expected and sender not in self._held):
            fresh = self.next_nonce(sender)
            if expected is None or fresh > expected:
                self._remember(sender, fresh)     # admitted elsewhere or committed meanwhile
                self._drain(sender, out)
                expected = self._next[sender]
        else:
            self._next.move_to_end(sender)
        if nonce < expected:
            out.append(item)
            self._released += 1
        elif nonce > expected:
            if self.hold_check is None or self.hold_check(item):
                self._hold(sender, nonce, item)
            else:
                self._refused += 1
        else:
            out.append(item)
            self._released += 1
            self._next[sender] = nonce + 1
            self._drain(sender, out)
        self._check_invariants()
        return out

    def retract(self, sender: bytes, nonce: int) -> None:
        """The item released with ``nonce`` turned out bogus (a forged signature): its nonce
        is expected again, unless later held items were already released after it."""
        if self._next.get(sender) == nonce + 1:
            self._next[sender] = nonce

    def advance(self, sender: bytes, head_nonce: int) -> list[T]:
        """Nonces below ``head_nonce`` of ``sender`` are used (a block committed).

        Returns:
            Held items that became deliverable, in nonce order.
        """
        held = self._held.get(sender)
        known = self._next.get(sender)
        if known is not None and known >= head_nonce and held is None:
            return []
        if held is not None:
            for nonce in [n for n in held if n < head_nonce]:
                self._unhold(sender, nonce)
                self._dropped_stale += 1
        if held is None and known is None:
            return []          # nothing known: the oracle will tell on the next offer
        self._remember(sender, max(known or 0, head_nonce))
        out: list[T] = []
        self._drain(sender, out)
        self._check_invariants()
        return out

    def statistics(self) -> SenderFifoStatistics:
        """Current sizes and counters."""
        return SenderFifoStatistics(len(self._age), len(self._held), self._released,
                                    self._held_total, self._dropped_full, self._dropped_stale,
                                    self._duplicates, self._refused)

    # ------------------------------------------------------------------ internals

    def _remember(self, sender: bytes, expected: int) -> None:
        self._next[sender] = expected
        self._next.move_to_end(sender)
        while len(self._next) > self.senders_max:
            old, _ = self._next.popitem(last=False)
            if old == sender:                     # only with senders_max == 0, refused above
                raise AssertionError("forgot the sender just remembered")

    def _hold(self, sender: bytes, nonce: int, item: T) -> None:
        held = self._held.get(sender)
        if held is not None and nonce in held:
            self._duplicates += 1
            return
        if held is not None and len(held) >= self.held_per_sender_max:
            oldest = next(k for k in self._age if k[0] == sender)
            self._unhold(*oldest)
            self._dropped_full += 1
        if len(self._age) >= self.held_max:
            self._unhold(*next(iter(self._age)))
            self._dropped_full += 1
        self._held.setdefault(sender, {})[nonce] = item
        self._age[(sender, nonce)] = None
        self._held_total += 1

    def _unhold(self, sender: bytes, nonce: int) -> T:
        held = self._held[sender]
        item = held.pop(nonce)
        if not held:
            del self._held[sender]
        del self._age[(sender, nonce)]
        return item

    def _drain(self, sender: bytes, out: list[T]) -> None:
        held = self._held.get(sender)
        if held is None:
            return
        nxt = self._next[sender]
        for nonce in sorted(n for n in held if n < nxt):   # below the run: the mempool judges
            out.append(self._unhold(sender, nonce))
            self._released += 1
        while nxt in held:
            out.append(self._unhold(sender, nxt))
            self._released += 1
            nxt += 1
            if sender not in self._held:
                break
            held = self._held[sender]
        self._next[sender] = nxt

    def _check_invariants(self) -> None:
        assert len(self._age) <= self.held_max, "hold-back bound broken"
        assert len(self._next) <= self.senders_max, "sender table bound broken"

"""Where two nodes' states diverged: a binary search over heights (pure, no I/O).

Why a binary search is right
----------------------------
A block header carries the state commitment *before* the block (its parent's post-state), and a
node commits block ``k + 1`` only if that root equals its own head's (``ChainApp.execute``,
``Ledger.commit_block``). So on one node, for ``k`` below its head, ``post_state(k)`` is
``header(k + 1).state_root`` of its own chain, and ``post_state(head)`` is its status'
``latest_state_root``. The commitment is chained (``commitment_N = H(domain ||
commitment_{N-1} || changes_N)``, :mod:`chain.state`): once two nodes' post-states differ they
differ at every later height. Divergence is monotone in the height, so the first diverging
height is found with O(log n) lookups.

:func:`first_divergence` compares the heights both nodes can answer for (from the higher floor,
or ``start``, to the lower head), each lookup being one ``post_state(node, height)`` call, and
remembers what it has looked up. It looks at the lowest height, then the highest, then bisects:
at most ``2 * (ceil(log2(n)) + 2)`` lookups for ``n`` heights.

Called by ``cli`` (``phalanx query diverge``) with lookups that are RPC calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Divergence", "DivergenceError", "common_range", "first_divergence"]

#: ``post_state(node, height)``: node 0 or 1, the state commitment after block ``height``.
PostState = Callable[[int, int], bytes]


class DivergenceError(ValueError):
    """Raised when two nodes have no height in common to compare (bad spans or ``start``)."""


@dataclass(frozen=True)
class Divergence:
    """The outcome of one search.

    Attributes:
        low: the lowest height compared.
        high: the highest height compared.
        height: the first height in ``[low, high]`` whose post-states differ; None when they
            agree up to ``high``.
        lookups: how many ``post_state`` calls the search made.
    """

    low: int
    high: int
    height: int | None
    lookups: int

    @property
    def at_low(self) -> bool:
        """The states differ already at the lowest height compared: they may have diverged
        earlier, below it (pruned, or below ``start``)."""
        return self.height is not None and self.height == self.low


def common_range(spans: Sequence[tuple[int, int]], start: int = 0) -> tuple[int, int]:
    """The heights both nodes can answer for: ``[max(floors, start), min(heads)]``.

    Args:
        spans: each node's ``(floor, head)``: its lowest stored block and its head height.
        start: the lowest height the caller wants compared.

    Raises:
        DivergenceError: a span is malformed or the spans do not overlap above ``start``.
    """
    if len(spans) != 2:
        raise DivergenceError(f"two nodes are compared, got {len(spans)} spans")
    for floor, head in spans:
        if floor < 0 or head < floor:
            raise DivergenceError(f"a node's span [{floor}, {head}] is not a range of heights")
    low = max(start, *(floor for floor, _ in spans))
    high = min(head for _, head in spans)
    if low > high:
        raise DivergenceError(f"no height in common to compare: from {low} up to {high}")
    return low, high


def first_divergence(
    post_state: PostState, spans: Sequence[tuple[int, int]], start: int = 0
) -> Divergence:
    """The first height at which the two nodes' post-states differ.

    Args:
        post_state: ``post_state(node, height)`` for node 0 or 1 and a height in its span.
        spans: each node's ``(floor, head)``.
        start: the lowest height to compare (``--from``).

    Returns:
        The search's outcome; ``height`` is None when the states agree up to the lower head.

    Raises:
        DivergenceError: no height in common (see :func:`common_range`).
    """
    low, high = common_range(spans, start)
    lookups = 0
    memo: dict[int, bool] = {}

    def differs(height: int) -> bool:
        nonlocal lookups
        if height not in memo:
            a = post_state(0, height)
            b = post_state(1, height)
            lookups += 2
            memo[height] = a != b
        return memo[height]

    if differs(low):
        return Divergence(low, high, low, lookups)
    if not differs(high):
        return Divergence(low, high, None, lookups)
    agree, differ = low, high  # invariant: equal at `agree`, different at `differ`
    while differ - agree > 1:
        mid = (agree + differ) // 2
        if differs(mid):
            differ = mid
        else:
            agree = mid
    return Divergence(low, high, differ, lookups)

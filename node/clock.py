"""The node's clocks: its wall clock (with a test-only skew) and the validators' median time.

Theory of operation
-------------------
*Wall clock.* :class:`NodeClock` is the one wall clock of a node: what it stamps on the
blocks it proposes and what it answers to peers' time requests. A test network can shift it
by ``[testing] clock_skew_ms`` to play a validator whose clock is wrong (refused unless the
config says ``test_network_only = true``; announced with a loud warning at start).

*Median time.* :class:`MedianTime` is the validators' median time as this node sees it: its
own clock plus the median of ``{0} + the peers' fresh Cristian offsets``
(:mod:`p2p.clocksync_service`). The lower median of ``n = 3f + 1`` clocks, ours included,
with at most ``f`` of them wrong, lies between two correct clocks: a minority of skewed or
lying clocks cannot move it. With fewer than ``times_min`` clocks known (a quorum,
``n - f``, by default) it falls back to the node's own clock.

*The timestamp rule* (:func:`timestamp_problem`, called by ``node.app`` as part of the
engine's validity check). A proposed block is refused when

1. its timestamp is more than ``bound`` ahead of the median time: a clock running ahead
   cannot push the chain's time into the future (each block's timestamp must exceed its
   parent's, so one committed future timestamp would drag every later block with it); or
2. it extends our head and its timestamp is not after the head's.

There is deliberately **no lower bound around the median time**. PBFT validates values
again when they are re-proposed: a value a backup built and forwarded, or one the old
primary had queued, is taken by the next primary after a view change and every backup runs
validity on its new pre-prepare (``consensus/pbft/replica.py`` ``_on_pre_prepare``), however
long the view changes took (timeouts double). Such a value is legitimately old; refusing
"too old" timestamps would leave it unordered for ever and can stall the chain. The lower
bound is therefore relative to the parent block (rule 2), which an honest builder always
meets (``timestamp = max(now, parent + 1)``) and which does not age. A proposer whose clock
is behind only produces blocks at ``parent + 1``: the next honest block brings the chain's
time back to real time.

A node does not apply rule 1 to blocks it built itself (it trusts its own clock, as the
proposer does under CometBFT's proposer-based timestamps); the other validators judge them.
So a validator with a skewed clock sends its skewed proposal, the honest ones refuse it,
and the view changes past it.

Called by :mod:`node.runtime` (wiring), :mod:`node.app` (the rule) and
:mod:`node.rpc_methods` (``status``). Nothing here imports trio.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["CLOCK_SKEW_MS_MAX", "MedianTime", "NodeClock", "quorum_times", "timestamp_problem"]

log = logging.getLogger("phalanx.node.clock")

#: The largest test-only skew a config may ask for (one day).
CLOCK_SKEW_MS_MAX = 86_400_000


def _wall_us() -> int:
    return time.time_ns() // 1000


class NodeClock:
    """The node's wall clock in micro- and milliseconds, shifted by a test-only skew.

    Args:
        skew_ms: added to every reading (``[testing] clock_skew_ms``; 0 in production).
        wall_us: the underlying clock (injected in tests).
    """

    def __init__(self, skew_ms: int = 0, wall_us: Callable[[], int] = _wall_us) -> None:
        if abs(skew_ms) > CLOCK_SKEW_MS_MAX:
            raise ValueError(f"clock skew {skew_ms} ms exceeds {CLOCK_SKEW_MS_MAX} ms")
        self.skew_ms = skew_ms
        self._wall_us = wall_us

    def now_us(self) -> int:
        """Microseconds since the epoch, as this node believes."""
        return self._wall_us() + self.skew_ms * 1000

    def now_ms(self) -> int:
        """Milliseconds since the epoch, as this node believes."""
        return self.now_us() // 1000


def quorum_times(validators: int) -> int:
    """Clocks needed (ours included) before the median is trusted: ``n - f``."""
    return validators - (validators - 1) // 3


class MedianTime:
    """The validators' median time, falling back to our clock with too few estimates.

    Args:
        clock: our wall clock.
        median_offset_us: returns the median of ``{0} + peers' offsets`` for at least
            ``times_min`` clocks, or None (``ClockSyncService.median_offset_us``).
        times_min: clocks needed, ours included.
    """

    def __init__(self, clock: NodeClock, median_offset_us: Callable[[int], float | None],
                 times_min: int) -> None:
        if times_min < 1:
            raise ValueError("times_min must be >= 1")
        self.clock = clock
        self._median_offset_us = median_offset_us
        self.times_min = times_min

    def offset_ms(self) -> float | None:
        """The median time minus our clock in ms, or None while too few clocks are known."""
        off = self._median_offset_us(self.times_min)
        return None if off is None else off / 1000

    def now_ms(self) -> int:
        """The validators' median time in ms (our own clock while too few are known)."""
        off = self.offset_ms()
        return self.clock.now_ms() + (0 if off is None else round(off))

    def status(self) -> dict[str, object]:
        """For the ``status`` RPC: the median's offset from our clock and where it comes from."""
        off = self.offset_ms()
        return {
            "median_time_offset_ms": None if off is None else round(off, 3),
            "median_time_source": "local-clock" if off is None else "validators",
            "median_time_ms": self.now_ms(),
            "clock_skew_ms": self.clock.skew_ms,
        }


def timestamp_problem(timestamp_ms: int, *, median_ms: int, bound_ms: int,
                      parent_timestamp_ms: int | None) -> str:
    """Why a proposed block's timestamp is refused ("" when it is acceptable).

    Args:
        timestamp_ms: the block's timestamp.
        median_ms: the validators' median time now.
        bound_ms: how far ahead of the median a timestamp may be.
        parent_timestamp_ms: the parent's timestamp when the block extends our head, else
            None (the parent is not known here yet; see the module docstring).
    """
    ahead = timestamp_ms - median_ms
    if ahead > bound_ms:
        return (f"timestamp {timestamp_ms} is {ahead} ms ahead of the validators' median time "
                f"{median_ms} (bound {bound_ms} ms)")
    if parent_timestamp_ms is not None and timestamp_ms <= parent_timestamp_ms:
        return (f"timestamp {timestamp_ms} is not after its parent's {parent_timestamp_ms}")
    return ""

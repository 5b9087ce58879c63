"""Clock-sync simulation: Cristian estimates and Berkeley rounds under drift, skew and a liar.

Theory of operation
-------------------
``n >= 3`` nodes have drifting clocks: node ``i`` reads
``base_i + tick * TICK_US * (1 + drift_i)`` microseconds, with an initial skew within
``+-SKEW_US_MAX`` and a drift within ``+-DRIFT_PPM_MAX`` ppm, drawn from the seed. Node 0
is the Berkeley coordinator of :mod:`p2p.clocksync`; the last node is an *adversarial
outlier*: its clock is ``LIAR_US`` (10 s) ahead and it ignores adjustments. Every
``PERIOD_TICKS`` the coordinator polls everyone over the seeded network (exponential delay,
loss, duplicates), finishes the round ``ROUND_WAIT_TICKS`` later and sends the adjustments;
honest followers apply what reaches them, once per round (the network duplicates). A
round's requests and replies (at most ``2 * DELAY_TICKS_MAX`` ticks) end before it
finishes, and its adjustments land before the next round starts, so no clock is stepped
during a round trip.

Checkers (the simulation knows the true clocks):

* **Cristian bound** (safety) -- every estimate the coordinator makes of an honest peer is
  within ``rtt/2`` of the true offset (plus the drift over the round trip, ``2 rho rtt``,
  and 2 us of rounding).
* **Precision** (safety) -- at the start of every round from the third on, honest nodes that
  applied the previous round's adjustment agree within ``PRECISION_US`` (two half round
  trips at the delay cap, plus drift over a period).
* **Accuracy** (safety) -- every honest clock stays within ``ACCURACY_US`` of the honest
  nodes' initial mean time (plus drift): a liar must not be able to drag the group away.

Negative control ``no-outlier-rejection``: the coordinator averages every offset including
the liar's; the honest clocks jump seconds ahead and the accuracy checker flags it.

Figures: the largest Cristian error as a fraction of ``rtt/2``, the median and largest
measured precision (us), the largest accuracy deviation (us); counts of the rounds in which
the liar was heard and dropped (``liar_dropped``) or heard and averaged in (``liar_kept``).

Called by: :mod:`testnet.sim.algos` (``phalanx sim --algo clocksync``), tests.
"""

from __future__ import annotations

import statistics

from p2p.clocksync import (
    Adjust,
    BerkeleyCoordinator,
    ClockReading,
    CristianClient,
    TimeReply,
    TimeRequest,
    decode_clock_message,
)
from testnet.sim.algos._base import AlgoConfig, AlgoResult, MessageLoop
from testnet.sim.network import LinkProfile
from testnet.sim.world import derive_rng

__all__ = ["CONTROLS", "run_clocksync"]

CONTROLS = ("no-outlier-rejection",)
TICK_US = 1_000
EPOCH_US = 1_800_000_000_000_000    # clocks read Unix-like microseconds (never negative)
PERIOD_TICKS = 100
ROUND_WAIT_TICKS = 45
SKEW_US_MAX = 50_000
DRIFT_PPM_MAX = 100
LIAR_US = 10_000_000
OUTLIER_US = 200_000
DELAY_TICKS_MAX = 20
PROFILE = LinkProfile(delay_kind="exponential", delay_ticks_min=1,
                      delay_ticks_max=DELAY_TICKS_MAX, delay_ticks_mean=3.0, drop=0.05,
                      duplicate=0.02)
_RHO = DRIFT_PPM_MAX / 1e6
PRECISION_US = 2 * DELAY_TICKS_MAX * TICK_US + 4 * _RHO * PERIOD_TICKS * TICK_US
ACCURACY_US = SKEW_US_MAX + 4 * DELAY_TICKS_MAX * TICK_US


def run_clocksync(cfg: AlgoConfig) -> AlgoResult:
    """One seeded run (``cfg.ticks * 5`` ticks); see the module docstring."""
    n = cfg.nodes
    if n < 3:
        raise ValueError("clocksync needs at least 3 nodes (coordinator, peer, liar)")
    rng = derive_rng(cfg.seed, "clocks")
    liar = n - 1
    honest = list(range(n - 1))
    drift = [rng.uniform(-_RHO, _RHO) for _ in range(n)]
    base = [float(EPOCH_US + rng.randint(-SKEW_US_MAX, SKEW_US_MAX)) for _ in range(n)]
    base[liar] += LIAR_US
    start_mean = statistics.fmean(base[i] for i in honest)
    loop = MessageLoop(cfg.seed, n, PROFILE, decode_clock_message, keep_trace=cfg.keep_trace)
    coord = BerkeleyCoordinator(0, range(n), OUTLIER_US,
                                reject_outliers=cfg.control != "no-outlier-rejection")
    servers = [CristianClient(i) for i in range(n)]
    applied_round = [0] * n
    result = AlgoResult(cfg)
    horizon = cfg.ticks * 5
    worst_ratio = 0.0
    precisions: list[float] = []
    worst_accuracy = 0.0
    liar_dropped = liar_kept = estimates = 0

    def clock(i: int, tick: int) -> float:
        return base[i] + tick * TICK_US * (1.0 + drift[i])

    def reading(i: int, tick: int) -> ClockReading:
        return ClockReading(round(clock(i, tick)))

    for t in range(horizon + 1):
        for src, dst, msg in (loop.advance() if t else []):
            if isinstance(msg, TimeRequest):
                loop.send(dst, src, servers[dst].serve(msg, reading(dst, loop.tick)))
            elif isinstance(msg, TimeReply) and dst == 0:
                est = coord.client.on_reply(src, msg, reading(0, loop.tick))
                if est is None or src == liar:
                    continue
                estimates += 1
                true = clock(src, loop.tick) - clock(0, loop.tick)
                err = abs(est.offset_us - true)
                bound = est.error_us + 2 * _RHO * est.rtt_us + 2
                worst_ratio = max(worst_ratio, err / max(est.error_us, 1.0))
                if err > bound:
                    result.fail("safety", f"cristian: estimate of node {src} off by "
                                          f"{err:.1f} us > rtt/2 bound {bound:.1f} us")
            elif isinstance(msg, Adjust) and dst not in (0, liar) \
                    and msg.round > applied_round[dst]:     # duplicates apply once
                base[dst] += msg.delta_us
                applied_round[dst] = msg.round
        phase = t % PERIOD_TICKS
        if phase == 0:
            if t >= 3 * PERIOD_TICKS:
                synced = [i for i in honest if applied_round[i] == coord.round]
                clocks = [clock(i, t) for i in synced]
                spread = max(clocks) - min(clocks)
                precisions.append(spread)
                if spread > PRECISION_US:
                    result.fail("safety", f"precision: honest clocks {spread:.0f} us apart "
                                          f"> bound {PRECISION_US:.0f} us at tick {t}")
            ideal = start_mean + t * TICK_US
            dev = max(abs(clock(i, t) - ideal) for i in honest)
            worst_accuracy = max(worst_accuracy, dev)
            if dev > ACCURACY_US + _RHO * t * TICK_US:
                result.fail("safety", f"accuracy: an honest clock is {dev:.0f} us from the "
                                      f"honest mean time at tick {t} (bound "
                                      f"{ACCURACY_US + _RHO * t * TICK_US:.0f} us)")
            for peer, req in coord.start_round(reading(0, t)):
                loop.send(0, peer, req)
        elif phase == ROUND_WAIT_TICKS:
            rnd, sends = coord.finish_round()
            liar_dropped += liar in rnd.dropped
            liar_kept += liar in rnd.offsets_us and liar not in rnd.dropped
            base[0] += rnd.adjustments[0]
            applied_round[0] = rnd.round
            for peer, adj in sends:
                loop.send(0, peer, adj)
    loop.finish(result)
    result.counts["estimates"] = estimates
    result.counts["rounds"] = coord.round
    result.counts["liar_dropped"] = liar_dropped
    result.counts["liar_kept"] = liar_kept
    result.figures["cristian_err_over_half_rtt_max"] = worst_ratio
    result.figures["precision_us_median"] = statistics.median(precisions) if precisions else 0.0
    result.figures["precision_us_max"] = max(precisions, default=0.0)
    result.figures["accuracy_us_max"] = worst_accuracy
    return result

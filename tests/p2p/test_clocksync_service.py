"""The clock-sync service over an in-memory hub and the autojump clock.

Each node's wall clock is ``virtual time + its skew``; the hub delivers a message after a
chosen one-way delay, so round trips, offsets and errors are known exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
from trio.testing import MockClock

from p2p.clocksync import Adjust, OffsetEstimate, OffsetTable, TimeReply, TimeRequest
from p2p.clocksync_service import CLOCK_MESSAGE_BYTES_MAX, ClockSyncService
from p2p.errors import QueueFull
from p2p.messages import Inbound, Kind, PeerId

Delay = Callable[[int, int], float]


class Hub:
    """Routes ``Kind.CLOCK`` payloads between fake managers after ``delay(src, dst)`` seconds."""

    def __init__(self, nursery: trio.Nursery, n: int, delay: Delay) -> None:
        self.nursery = nursery
        self.delay = delay
        self.managers = [FakeManager(self, PeerId(i), n) for i in range(n)]

    async def _deliver(self, src: PeerId, dst: PeerId, payload: bytes) -> None:
        await trio.sleep(self.delay(src, dst))
        self.managers[dst].tx.send_nowait(Inbound(src, Kind.CLOCK, 0, payload))


class FakeManager:
    """The part of PeerManager the service uses."""

    def __init__(self, hub: Hub, me: PeerId, n: int) -> None:
        self.hub = hub
        self.me = me
        self.peer_ids = tuple(PeerId(i) for i in range(n) if i != me)
        self.connected = set(self.peer_ids)
        self.reports: list[tuple[PeerId, str]] = []
        self.full = False

    def subscribe(self, kind: Kind, queue_max: int | None = None, *,
                  drop_when_full: bool = False) -> trio.MemoryReceiveChannel[Inbound]:
        assert kind is Kind.CLOCK and drop_when_full
        self.tx, rx = trio.open_memory_channel[Inbound](queue_max or 16)
        return rx

    def connected_peers(self) -> tuple[PeerId, ...]:
        return tuple(sorted(self.connected))

    def send_nowait(self, peer: PeerId, kind: Kind, payload: bytes) -> None:
        assert kind is Kind.CLOCK
        if self.full:
            raise QueueFull(f"send queue of peer {peer} is full")
        self.hub.nursery.start_soon(self.hub._deliver, self.me, peer, payload)

    def report(self, peer: PeerId, points: int, reason: str) -> bool:
        self.reports.append((peer, reason))
        return False


def _services(hub: Hub, skews_us: dict[int, int], **kw: float) -> list[ClockSyncService]:
    def clock(i: int) -> Callable[[], int]:
        return lambda: round(trio.current_time() * 1_000_000) + skews_us[i]

    return [ClockSyncService(m, m.me, clock(i), **kw)  # type: ignore[arg-type]
            for i, m in enumerate(hub.managers)]


async def _start(nursery: trio.Nursery, services: list[ClockSyncService]) -> None:
    for s in services:
        await nursery.start(s.run)


async def test_symmetric_delays_give_exact_offsets_and_the_median(
        autojump_clock: MockClock) -> None:
    skews = {0: 0, 1: 250_000, 2: -40_000, 3: 7_000_000}
    async with trio.open_nursery() as nursery:
        hub = Hub(nursery, 4, lambda a, b: 0.005)
        services = _services(hub, skews)
        await _start(nursery, services)
        await trio.sleep(3.5)
        clocks = {c.peer: c for c in services[0].peer_clocks()}
        assert set(clocks) == {1, 2, 3}
        for p, c in clocks.items():
            assert c.offset_us == pytest.approx(skews[p], abs=1)  # µs rounding of the clock
            assert c.rtt_us == pytest.approx(10_000, abs=1)
            assert 0 <= c.age_seconds <= services[0].interval_seconds
        # Median of {0, 250 ms, -40 ms, 7 s} (lower median): ours, 0.
        assert services[0].median_offset_us(times_min=3) == 0.0
        # Node 3 (7 s ahead) sees everyone about 7 s behind; its median is the honest time.
        assert services[3].median_offset_us(times_min=3) == pytest.approx(-7_000_000, abs=1)
        assert services[0].median_offset_us(times_min=5) is None  # too few clocks
        stats = services[0].statistics()
        assert stats.requests_sent >= 9 and stats.requests_served >= 9
        assert stats.estimates >= 9 and stats.dropped == ()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(("up", "down"), [(0.001, 0.030), (0.040, 0.002), (0.0, 0.1)])
async def test_asymmetric_delays_stay_within_half_the_round_trip(
        autojump_clock: MockClock, up: float, down: float) -> None:
    skews = {0: 123_456, 1: -987_654}
    async with trio.open_nursery() as nursery:
        hub = Hub(nursery, 2, lambda a, b: up if a == 0 else down)
        services = _services(hub, skews)
        await _start(nursery, services)
        await trio.sleep(1.5)
        (c,) = services[0].peer_clocks()
        true = skews[1] - skews[0]
        assert c.offset_us != true  # asymmetry shows...
        assert abs(c.offset_us - true) <= c.error_us  # ...within the Cristian bound
        assert c.error_us == c.rtt_us / 2 == pytest.approx((up + down) * 1e6 / 2, abs=1)
        nursery.cancel_scope.cancel()


async def test_a_peer_whose_clock_jumps_is_remeasured_once_old_estimates_age_out(
        autojump_clock: MockClock) -> None:
    skews = {0: 0, 1: 1_000}
    delays = {"d": 0.001}
    async with trio.open_nursery() as nursery:
        hub = Hub(nursery, 2, lambda a, b: delays["d"])
        services = _services(hub, skews, age_seconds_max=5.0)
        await _start(nursery, services)
        await trio.sleep(3.2)
        assert services[0].peer_clocks()[0].offset_us == pytest.approx(1_000, abs=1)
        # The peer's clock jumps 2 s ahead; the link gets slower at the same moment, so the
        # new estimates are looser than the old ones and lose to them while those are fresh.
        skews[1] += 2_000_000
        delays["d"] = 0.010
        await trio.sleep(2.0)
        assert services[0].peer_clocks()[0].offset_us == pytest.approx(1_000, abs=1)
        await trio.sleep(4.0)
        (c,) = services[0].peer_clocks()
        assert c.offset_us == pytest.approx(2_001_000, abs=1)
        assert c.rtt_us == pytest.approx(20_000, abs=1)
        nursery.cancel_scope.cancel()


async def test_bad_clock_messages_are_dropped_counted_and_never_crash(
        autojump_clock: MockClock) -> None:
    skews = {0: 0, 1: 500_000}
    async with trio.open_nursery() as nursery:
        hub = Hub(nursery, 2, lambda a, b: 0.002)
        services = _services(hub, skews)
        await _start(nursery, services)
        me, peer = services[0], PeerId(1)
        me.on_message(peer, b"\x00" * (CLOCK_MESSAGE_BYTES_MAX + 1))
        me.on_message(peer, b"\xc1\x80")                                  # not a clock message
        me.on_message(peer, TimeReply(1, 424242, 5).encode())             # nobody asked
        me.on_message(peer, TimeReply(2, 1, 5).encode())                  # claims another sender
        me.on_message(peer, TimeRequest(2, 1).encode())                   # same, as a request
        me.on_message(peer, Adjust(1, 1, 10_000_000).encode())            # no orders taken
        dropped = dict(me.statistics().dropped)
        assert dropped == {"oversized": 1, "malformed": 1, "unsolicited": 1,
                           "wrong-sender": 2, "unexpected": 1}
        assert [r for _, r in hub.managers[0].reports] == [
            "clock message oversized", "clock message malformed"]
        await trio.sleep(1.5)  # and the service still measures the peer
        (c,) = me.peer_clocks()
        assert c.offset_us == pytest.approx(500_000, abs=1)
        nursery.cancel_scope.cancel()


async def test_full_send_queues_and_disconnected_peers_are_skipped(
        autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        hub = Hub(nursery, 3, lambda a, b: 0.001)
        services = _services(hub, {0: 0, 1: 0, 2: 0})
        hub.managers[0].connected = {PeerId(2)}
        hub.managers[0].full = True
        assert services[0].poll() == 0
        assert dict(services[0].statistics().dropped) == {"send-failed": 1}
        hub.managers[0].full = False
        assert services[0].poll() == 1
        nursery.cancel_scope.cancel()


def test_offset_table_keeps_the_tightest_fresh_estimate_and_is_bounded() -> None:
    table = OffsetTable(age_max=10.0, samples_max=3, peers_max=2)
    table.observe(OffsetEstimate(1, 100.0, 50.0, 100), now=0.0)
    table.observe(OffsetEstimate(1, 900.0, 500.0, 1000), now=1.0)
    got = table.best(1, now=2.0)
    assert got is not None and got[0].offset_us == 100.0 and got[1] == 2.0
    assert table.best(1, now=10.5) is not None and table.best(1, now=10.5)[0].offset_us == 900.0  # type: ignore[index]
    for i in range(5):  # only the last samples_max are kept
        table.observe(OffsetEstimate(1, float(i), 1.0, 2), now=20.0 + i)
    assert len(table._samples[1]) == 3
    table.observe(OffsetEstimate(2, 0.0, 1.0, 2), now=30.0)
    table.observe(OffsetEstimate(3, 0.0, 1.0, 2), now=30.0)  # beyond peers_max: ignored
    assert set(table.fresh(now=30.0)) == {1, 2}
    table.prune(now=100.0)
    assert table.fresh(now=100.0) == {} and table._samples == {}

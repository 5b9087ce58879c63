"""Node liveness: the heartbeat format, and the phi detector plus suspicion gossip driven by
heartbeats under a mock clock (a small hub plays the p2p layer between NodeLiveness drivers).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Callable

import pytest
import rlp
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.contract import NodeId
from consensus.suspicion_gossip import SuspicionReport
from node.liveness import (
    BEAT_BYTES_MAX,
    BadBeat,
    Beat,
    LivenessConfig,
    NodeLiveness,
    decode_beat,
    encode_beat,
)
from node.metrics import NodeMetrics
from p2p.heartbeat import Heartbeat as P2PHeartbeat
from p2p.messages import PeerId

CONFIG = LivenessConfig()          # the node's defaults: 500 ms beats, phi 8, 2 s pause
TICK = CONFIG.tick_seconds
REPORT = SuspicionReport(NodeId(2), 7, (NodeId(0), NodeId(3)))

# ------------------------------------------------------------------------------ the format


@pytest.mark.parametrize("beat, wire", [
    (Beat(0, 0), "c28080"),
    (Beat(1024, 3), "c482040003"),
    (Beat(5, 1, SuspicionReport(NodeId(1), 0, ())), "c7050184c30180c0"),
    (Beat(9, 2, REPORT), "c9090286c50207c28003"),
])
def test_beat_round_trips_to_its_one_encoding(beat: Beat, wire: str) -> None:
    assert encode_beat(beat.height, beat.view, beat.report).hex() == wire
    assert decode_beat(bytes.fromhex(wire)) == beat


def test_the_original_two_field_beat_is_still_read_without_a_report() -> None:
    old = bytes(rlp.encode([77, 4]))           # what nodes sent before reports existed
    assert decode_beat(old) == Beat(77, 4, None)


@pytest.mark.parametrize("bad", [
    b"",
    b"\x80",                                    # a string, not a list
    bytes.fromhex("c0"),                        # empty list
    bytes.fromhex("c100"),                      # one field
    bytes.fromhex("c20001"),                    # height as byte 0x00: not minimal
    bytes.fromhex("c48200010a"),                # height 0x0001: not minimal
    bytes.fromhex("c28080") + b"\x00",          # trailing byte
    bytes.fromhex("c4808080c0"),                # four fields
    bytes.fromhex("c380c080"),                  # view is a list
    bytes.fromhex("c38080c0"),                  # report is a list, not bytes
    bytes.fromhex("c5808083c28080"),            # report is not a report ([0, 0])
    bytes(rlp.encode([1, 1, rlp.encode([2, 7, [3, 0]])])),   # suspects not sorted
    bytes(rlp.encode([1, 1, rlp.encode([2, 7, [3, 3]])])),   # suspects repeated
    bytes(rlp.encode([1 << 64, 0])),            # height beyond uint64
    bytes(rlp.encode([1, 1, b"x" * BEAT_BYTES_MAX])),       # oversized
])
def test_malformed_beats_are_rejected(bad: bytes) -> None:
    with pytest.raises(BadBeat):
        decode_beat(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fuzzed_bytes_decode_to_their_one_encoding_or_raise_bad_beat(data: bytes) -> None:
    try:
        beat = decode_beat(data)
    except BadBeat:
        return
    assert encode_beat(beat.height, beat.view, beat.report) == data


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 300), st.integers(0, 5), st.sets(st.integers(0, 9), max_size=5),
       st.integers(0, 40), st.integers(0, 255), st.sampled_from(["flip", "cut", "insert"]))
def test_mutated_beats_decode_to_their_one_encoding_or_raise_bad_beat(
        height: int, reporter: int, suspects: set[int], at: int, byte: int, how: str) -> None:
    wire = bytearray(encode_beat(height, 1, SuspicionReport(
        NodeId(reporter), 3, tuple(NodeId(s) for s in sorted(suspects)))))
    i = at % len(wire)
    if how == "flip":
        wire[i] ^= byte or 1
    elif how == "cut":
        del wire[i:]
    else:
        wire.insert(i, byte)
    try:
        beat = decode_beat(bytes(wire))
    except BadBeat:
        return
    assert encode_beat(beat.height, beat.view, beat.report) == bytes(wire)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
       st.none() | st.builds(lambda r, v, s: SuspicionReport(NodeId(r), v, tuple(sorted(s))),
                             st.integers(0, 50), st.integers(0, 2**64 - 1),
                             st.sets(st.integers(0, 50).map(NodeId), max_size=20)))
def test_every_beat_round_trips(height: int, view: int, report: SuspicionReport | None) -> None:
    assert decode_beat(encode_beat(height, view, report)) == Beat(height, view, report)


# ------------------------------------------------------------------------------ the driver


class Hub:
    """Plays p2p for a few NodeLiveness drivers: every 500 ms each running node's status goes
    to every other running node it has a link to, as ``p2p.heartbeat.Heartbeat`` records."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.nodes: dict[int, NodeLiveness] = {}
        self.inboxes: dict[int, trio.MemorySendChannel[P2PHeartbeat]] = {}
        self.cut: set[tuple[int, int]] = set()        # (from, to) links that drop beats
        self.status: dict[int, Callable[[NodeLiveness], bytes]] = {}
        self._scopes: dict[int, trio.CancelScope] = {}

    async def start(self, nursery: trio.Nursery, i: int, boot_ms: int = 1_000) -> NodeLiveness:
        node = NodeLiveness(i, range(self.n), quorum=2, config=CONFIG, boot_ms=boot_ms,
                            rng=random.Random(i))
        tx, rx = trio.open_memory_channel[P2PHeartbeat](64)
        scope = trio.CancelScope()

        async def serve(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await node.run(rx, task_status=task_status)

        await nursery.start(serve)
        self.nodes[i], self.inboxes[i], self._scopes[i] = node, tx, scope
        return node

    def kill(self, i: int) -> None:
        self._scopes.pop(i).cancel()
        del self.nodes[i], self.inboxes[i]

    async def beat_forever(self) -> None:
        while True:
            now = int(trio.current_time() / TICK)
            for i, node in list(self.nodes.items()):
                payload = self.status[i](node) if i in self.status else node.status_bytes(10, 0)
                for j, inbox in list(self.inboxes.items()):
                    if j != i and (i, j) not in self.cut:
                        inbox.send_nowait(P2PHeartbeat(PeerId(i), 0, payload, now))
            await trio.sleep(CONFIG.heartbeat_ms / 1000)


@contextlib.asynccontextmanager
async def running_hub(n: int) -> AsyncIterator[tuple[Hub, list[NodeLiveness], trio.Nursery]]:
    """``n`` liveness drivers started on a :class:`Hub` that beats every 500 ms."""
    hub = Hub(n)
    async with trio.open_nursery() as nursery:
        nodes = [await hub.start(nursery, i) for i in range(n)]
        nursery.start_soon(hub.beat_forever)
        yield hub, nodes, nursery
        nursery.cancel_scope.cancel()


async def _wait(what: str, check: Callable[[], bool], seconds: float = 30) -> float:
    start = trio.current_time()
    with trio.fail_after(seconds):
        while not check():
            await trio.sleep(0.05)
    return trio.current_time() - start


async def test_a_silent_peer_is_suspected_after_its_timeout_and_trusted_when_it_returns(
        autojump_clock: trio.testing.MockClock) -> None:
    async with running_hub(4) as (hub, nodes, nursery):
        await trio.sleep(20)
        assert all(nd.suspected() == [] for nd in nodes)
        assert all(p.phi < 1 for p in nodes[0].peers())
        timeout_s = next(p.timeout_ms for p in nodes[0].peers() if p.peer == 3) / 1000
        assert 2.5 <= timeout_s <= 3.5           # mean 0.5 s + 2 s pause + a few sigma
        hub.cut |= {(3, j) for j in range(3)}   # 3 goes silent (it still hears the others)
        took = await _wait("3 suspected", lambda: nodes[0].suspected() == [3])
        assert timeout_s - 0.5 <= took <= timeout_s + 0.5
        assert [p.peer for p in nodes[0].peers() if p.suspected] == [3]
        assert next(p.phi for p in nodes[0].peers() if p.peer == 3) >= CONFIG.phi_threshold
        hub.cut.clear()
        await _wait("3 trusted", lambda: nodes[0].suspected() == [], 2)
        st = nodes[0].statistics()
        assert st.suspicions == 1 and st.false_suspicions == 1 and st.bad_beats == 0
        nursery.cancel_scope.cancel()


async def test_a_crash_is_confirmed_by_a_quorum_with_its_reporters_and_cleared_after_restart(
        autojump_clock: trio.testing.MockClock) -> None:
    async with running_hub(4) as (hub, nodes, nursery):
        await trio.sleep(10)
        hub.kill(3)
        await _wait("3 confirmed everywhere",
                    lambda: all(nodes[i].confirmed() == {3: [0, 1, 2]} for i in range(3)))
        doc = nodes[1].to_json()
        assert doc["suspected"] == [3] and doc["confirmed"] == [{"node": 3, "reporters": [0, 1, 2]}]
        assert doc["quorum"] == 2
        metrics = NodeMetrics()
        nodes[1].update_metrics(metrics)
        text = metrics.render().decode()
        assert "phalanx_p2p_suspected_peers 1.0" in text
        assert "phalanx_p2p_confirmed_suspicions 1.0" in text
        assert 'phalanx_p2p_peer_phi{peer="0"}' in text
        await hub.start(nursery, 3, boot_ms=60_000)
        await _wait("3 cleared everywhere",
                    lambda: all(nodes[i].confirmed() == {} and nodes[i].suspected() == []
                                for i in range(3)), 5)
        nursery.cancel_scope.cancel()


async def test_one_silent_link_is_suspected_locally_but_not_confirmed(
        autojump_clock: trio.testing.MockClock) -> None:
    async with running_hub(4) as (hub, nodes, nursery):
        await trio.sleep(5)
        hub.cut.add((3, 0))                   # only 0 stops hearing 3
        await _wait("0 suspects 3", lambda: nodes[0].suspected() == [3])
        await _wait("1 heard 0's report", lambda: nodes[1].gossip.reporters_of(NodeId(3)) == {0})
        await trio.sleep(10)
        assert all(nd.confirmed() == {} for nd in nodes)
        nursery.cancel_scope.cancel()


def _liar(target: int, version: int) -> Callable[[NodeLiveness], bytes]:
    def status(node: NodeLiveness) -> bytes:
        return encode_beat(10, 0, SuspicionReport(node.node_id, version, (NodeId(target),)))
    return status


async def test_a_single_lying_reporter_cannot_confirm_but_two_liars_beyond_f_can(
        autojump_clock: trio.testing.MockClock) -> None:
    async with running_hub(4) as (hub, nodes, nursery):
        hub.status[1] = _liar(2, 2**63)     # 1 claims live 2 is dead, with a huge version
        await trio.sleep(10)
        assert nodes[0].gossip.reporters_of(NodeId(2)) == {1}
        assert nodes[0].confirmed() == {} and nodes[0].suspected() == []
        # Negative control: a second liar exceeds f = 1 and the quorum is fooled.
        hub.status[3] = _liar(2, 2**63)
        await _wait("confirmed by two liars", lambda: nodes[0].confirmed() == {2: [1, 3]}, 5)
        nursery.cancel_scope.cancel()


async def test_a_crashed_reporters_stale_report_does_not_help_a_liar_confirm(
        autojump_clock: trio.testing.MockClock) -> None:
    async with running_hub(4) as (hub, nodes, nursery):
        hub.cut.add((2, 3))                   # 3 stops hearing 2 and reports it ...
        await _wait("0 hears 3's report",
                    lambda: nodes[0].gossip.reporters_of(NodeId(2)) == {3})
        hub.kill(3)                           # ... then crashes holding that report
        hub.cut.clear()
        hub.status[1] = _liar(2, 2**63)       # and 1 lies that live 2 is dead
        await _wait("0 suspects the crashed 3", lambda: nodes[0].suspected() == [3])
        await trio.sleep(5)
        assert nodes[0].gossip.reporters_of(NodeId(2)) == {1, 3}   # both heard ...
        assert 2 not in nodes[0].confirmed()                       # ... one counted
        nursery.cancel_scope.cancel()


async def test_a_restarted_reporter_replaces_its_pre_crash_report(
        autojump_clock: trio.testing.MockClock) -> None:
    async with running_hub(4) as (hub, nodes, nursery):
        hub.cut.add((2, 3))                   # 3 stops hearing 2 and reports it
        await _wait("0 hears 3's report",
                    lambda: nodes[0].gossip.reporters_of(NodeId(2)) == {3})
        hub.kill(3)
        hub.cut.clear()
        await trio.sleep(2)
        assert nodes[0].gossip.reporters_of(NodeId(2)) == {3}   # the dead node's last word
        # The restarted 3 numbers its reports from 0 again, but above its previous boot.
        await hub.start(nursery, 3, boot_ms=90_000)
        await _wait("3's fresh report replaces the old one",
                    lambda: nodes[0].gossip.reporters_of(NodeId(2)) == frozenset(), 3)
        nursery.cancel_scope.cancel()


async def test_an_outage_does_not_slow_the_detection_of_the_next_crash(
        autojump_clock: trio.testing.MockClock) -> None:
    async with running_hub(4) as (hub, nodes, nursery):
        await trio.sleep(10)
        took, timeouts = [], []

        def timeout_of_3() -> int:
            return next(p.timeout_ms for p in nodes[0].peers() if p.peer == 3)

        for boot_ms in (50_000, 100_000):
            timeouts.append(timeout_of_3())
            hub.kill(3)
            took.append(await _wait("3 suspected", lambda: nodes[0].suspected() == [3]))
            await trio.sleep(30)                  # a long outage, then a restart
            await hub.start(nursery, 3, boot_ms=boot_ms)
            await _wait("3 trusted", lambda: nodes[0].suspected() == [], 2)
            await trio.sleep(10)
        timeouts.append(timeout_of_3())
        hub.kill(3)
        took.append(await _wait("3 suspected", lambda: nodes[0].suspected() == [3]))
        # Learning the 30 s gaps would have stretched the timeout to over 10 s.
        assert max(timeouts) - min(timeouts) <= 100, timeouts
        assert max(took) <= timeouts[0] / 1000 + 0.2, took
        nursery.cancel_scope.cancel()


async def test_bad_heartbeats_are_dropped_and_counted_and_the_rest_go_on(
        autojump_clock: trio.testing.MockClock) -> None:
    node = NodeLiveness(0, range(4), quorum=2, config=CONFIG, boot_ms=1, rng=random.Random(0))
    tx, rx = trio.open_memory_channel[P2PHeartbeat](16)
    heights: list[tuple[int, int]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run, rx, lambda peer, beat: heights.append((peer, beat.height)))
        for k in range(12):
            now = int(trio.current_time() / TICK)
            for peer in (1, 2):
                await tx.send(P2PHeartbeat(PeerId(peer), 0, encode_beat(k, 0), now))
            await tx.send(P2PHeartbeat(PeerId(3), 0, b"\xc4\x82\x00\x01\x01", now))  # garbage
            await tx.send(P2PHeartbeat(PeerId(9), 0, encode_beat(k, 0), now))        # a stranger
            await trio.sleep(0.5)
        st = node.statistics()
        assert st.bad_beats == 24 and st.beats == 24
        assert heights[-2:] == [(1, 11), (2, 11)] and all(p in (1, 2) for p, _ in heights)
        assert node.suspected() == [3]       # garbage is not a sign of life
        nursery.cancel_scope.cancel()


def test_config_and_boot_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        LivenessConfig(window_max=1)
    with pytest.raises(ValueError):
        NodeLiveness(0, range(4), 2, CONFIG, boot_ms=1 << 44, rng=random.Random(0))
    with pytest.raises(ValueError):
        NodeLiveness(0, range(4), 5, CONFIG, boot_ms=0, rng=random.Random(0))

"""Heartbeat failure detector: suspicion after silence, trust again with a longer timeout."""

from __future__ import annotations

import pytest

from consensus.contract import ALL, InvalidMessage, NodeId, Receive, Tick
from consensus.failure_detector import (
    Heartbeat,
    HeartbeatFailureDetector,
    Suspect,
    Trust,
    decode_heartbeat,
)

A, B, C = NodeId(0), NodeId(1), NodeId(2)


def make(adaptive: bool = True) -> HeartbeatFailureDetector:
    return HeartbeatFailureDetector(
        A, [A, B, C], heartbeat_ticks=2, timeout_ticks=5, timeout_ticks_max=20, adaptive=adaptive
    )


def hb(sender: NodeId, seq: int, epoch: int = 0) -> Receive:
    return Receive(sender, Heartbeat(sender, epoch, seq))


def test_emits_a_heartbeat_to_all_every_heartbeat_ticks() -> None:
    fd = make()
    sent = [len(fd.step(Tick(t)).send) for t in range(0, 7)]
    assert sent == [1, 0, 1, 0, 1, 0, 1]
    out = fd.step(Tick(8))
    assert out.send[0][0] is ALL
    assert out.send[0][1].sender == A and out.send[0][1].seq == 5


def test_silent_peer_is_suspected_after_its_timeout_and_only_once() -> None:
    fd = make()
    fd.step(Tick(0))
    events = []
    for t in range(1, 12):
        fd.step(hb(B, t))
        events += fd.step(Tick(t)).events
    assert events == [Suspect(C)]  # B kept beating, C was silent for > 5 ticks
    assert fd.suspected() == {C} and fd.alive() == {B}


def test_suspicion_happens_exactly_after_timeout_ticks_of_silence() -> None:
    fd = make()
    fd.step(Tick(0))
    fd.step(Tick(3))
    fd.step(hb(C, 1))  # C heard at tick 3, B never (grace from tick 0)
    assert fd.step(Tick(5)).events == []
    assert fd.step(Tick(6)).events == [Suspect(B)]
    assert fd.step(Tick(8)).events == []
    assert fd.step(Tick(9)).events == [Suspect(C)]


def test_suspected_peer_that_beats_is_trusted_and_its_timeout_doubles_up_to_the_cap() -> None:
    fd = make()
    fd.step(Tick(0))
    now, timeouts = 0, []
    for seq in range(1, 5):
        # Stay silent until suspected, then beat once.
        while C not in fd.suspected():
            now += 1
            fd.step(Tick(now))
        out = fd.step(hb(C, seq))
        assert out.events == [Trust(C)]
        timeouts.append(fd.timeout_of(C))
    assert timeouts == [10, 20, 20, 20]
    stats = fd.statistics()
    assert stats.false_suspicions == 4 and stats.suspicions >= 4


def test_non_adaptive_detector_keeps_its_timeout() -> None:
    fd = make(adaptive=False)
    fd.step(Tick(0))
    fd.step(Tick(6))
    assert B in fd.suspected()
    fd.step(hb(B, 1))
    assert fd.timeout_of(B) == 5 and B not in fd.suspected()


def test_duplicate_and_old_heartbeats_do_not_refresh_a_peer() -> None:
    fd = make()
    fd.step(Tick(0))
    fd.step(hb(B, 3))
    fd.step(Tick(4))
    fd.step(hb(B, 3))  # duplicate
    fd.step(hb(B, 2))  # reordered old one
    assert fd.statistics().heartbeats_ignored == 2
    assert Suspect(B) in fd.step(Tick(6)).events  # last fresh heartbeat was at tick 0
    fd.step(hb(B, 1, epoch=1))  # a new incarnation restarts seq numbering
    assert B not in fd.suspected()


def test_forged_or_unknown_heartbeats_are_ignored() -> None:
    fd = make()
    fd.step(Tick(0))
    fd.step(Receive(B, Heartbeat(C, 0, 1)))  # sender mismatch
    fd.step(Receive(NodeId(9), Heartbeat(NodeId(9), 0, 1)))  # not a peer
    fd.step(Receive(B, "garbage"))
    assert fd.statistics().heartbeats_ignored == 3
    assert fd.statistics().heartbeats_received == 0


def test_payload_travels_with_heartbeats() -> None:
    fd = make()
    fd.payload = b"\x07"
    ((_, msg),) = fd.step(Tick(0)).send
    other = HeartbeatFailureDetector(B, [A, B, C], 2, 5, 20)
    other.step(Tick(0))
    other.step(Receive(A, decode_heartbeat(msg.encode())))
    assert other.payload_of(A) == b"\x07"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc0",
        b"\xc4\x01\x00\x01\x80",
        b"\xc5\x01\x81\x00\x01\x80",
        b"\xc4\x01\x01\x01\x80\x00",
    ],
)
def test_decode_rejects_malformed_heartbeats(data: bytes) -> None:
    with pytest.raises(InvalidMessage):
        decode_heartbeat(data)


def test_heartbeat_round_trips() -> None:
    msg = Heartbeat(B, 3, 70000, b"xyz")
    assert decode_heartbeat(msg.encode()) == msg
    assert msg.encode() == bytes.fromhex("ca010383011170") + b"\x83xyz"

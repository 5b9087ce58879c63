"""Real TCP on 127.0.0.1 (port 0): a 4-node mesh, strangers, garbage, gossip, heartbeats."""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from p2p.config import P2PConfig
from p2p.errors import HandshakeFailed
from p2p.gossip import GossipConfig, TxGossip
from p2p.gossip_service import GossipService
from p2p.handshake import Role
from p2p.heartbeat import HeartbeatService
from p2p.messages import Inbound, Kind, PeerId
from p2p.peers import PeerInfo, PeerManager
from p2p.transport import secure_handshake

from .helpers import identity, seed

N = 4
IDS = [PeerId(i) for i in range(N)]
BASE = P2PConfig(network=b"loopback-test", listen_port=0, dial_backoff_seconds_min=0.02,
                 dial_backoff_seconds_max=0.5, handshake_timeout_seconds=5.0)


@asynccontextmanager
async def mesh(cfg: P2PConfig = BASE, services: bool = False) -> AsyncIterator[list[PeerManager]]:
    """Start N managers on port 0, tell each the others' ports, wait for the full mesh."""
    book = [PeerInfo(i, identity(i).public_key) for i in IDS]
    managers = [PeerManager(i, seed(i), book, cfg, rng=random.Random(i)) for i in IDS]
    async with trio.open_nursery() as nursery:
        ports = [await nursery.start(m.run) for m in managers]
        for m in managers:
            for i, port in zip(IDS, ports, strict=True):
                if i != m.self_id:
                    m.set_address(i, "127.0.0.1", port)
        with trio.fail_after(10):
            for m in managers:
                await m.wait_connected()
            # Settled: no twin of a simultaneous dial still handshaking (it could replace a
            # connection, and frames in flight on the loser would be lost).
            while any(m.statistics().handshakes_in_flight for m in managers):
                await trio.sleep(0.01)
        yield managers
        nursery.cancel_scope.cancel()


async def _receive(channel: trio.MemoryReceiveChannel[Inbound], count: int) -> list[Inbound]:
    got = []
    with trio.fail_after(10):
        for _ in range(count):
            got.append(await channel.receive())
    return got


async def _broadcast_round(managers: list[PeerManager], tag: bytes) -> None:
    for m in managers:
        await m.broadcast(Kind.CONSENSUS, tag + b" from %d" % m.self_id)
    for m in managers:
        got = await _receive(m.inbound, N - 1)
        assert sorted(x.peer for x in got) == [i for i in IDS if i != m.self_id]
        assert all(x.payload == tag + b" from %d" % x.peer for x in got)
        assert all(m.clock.time > x.lamport for x in got)


async def test_four_managers_form_a_full_mesh_and_broadcast(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="phalanx.p2p.peers")
    async with mesh() as managers:
        await _broadcast_round(managers, b"hello")
        # every received message is logged with its Lamport timestamp
        got = [r.getMessage() for r in caplog.records if " got CONSENSUS from " in r.getMessage()]
        assert len(got) == N * (N - 1) and all("lamport=" in line for line in got)
        for m in managers:
            s = m.statistics()
            assert s.peers_connected == N - 1 and s.frames_in == N - 1
            assert s.handshake_failures == 0 and s.bans == ()


async def test_simultaneous_dials_keep_one_connection_dialled_by_the_lower_id() -> None:
    cfg = P2PConfig(network=b"loopback-test", reverse_dial_grace_seconds=0.0,
                    dial_backoff_seconds_min=0.02, dial_backoff_seconds_max=0.2)
    async with mesh(cfg) as managers:
        for m in managers:
            for pid in m.connected_peers():
                assert m._peers[pid].dialer == min(pid, m.self_id)
        assert all(m.statistics().peers_connected == N - 1 for m in managers)
        await _broadcast_round(managers, b"after dedup")


async def test_stranger_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="phalanx.p2p.peers")
    async with mesh() as managers:
        target = managers[0]
        assert target.listen_port is not None
        stream = await trio.open_tcp_stream("127.0.0.1", target.listen_port)
        with pytest.raises(HandshakeFailed):
            await secure_handshake(stream, identity=identity(77), role=Role.INITIATOR,
                                   config=BASE, allowed={identity(0).public_key})
        await stream.aclose()
        with trio.fail_after(5):
            while target.statistics().handshake_failures < 1:
                await trio.sleep(0.01)
        assert "unknown peer identity 0x" + identity(77).public_key[:8].hex() in caplog.text
        await _broadcast_round(managers, b"still here")


@pytest.mark.parametrize(
    "garbage",
    [
        random.Random(1).randbytes(512),  # random bytes: an absurd length header
        b"\x00\x00\x00\x40" + random.Random(2).randbytes(64),  # plausible length, junk hello
        b"\x7f\xff\xff\xff" + b"x" * 100,  # an oversized frame
    ],
    ids=["random", "junk-hello", "oversized"],
)
async def test_garbage_on_the_port_closes_that_connection_and_the_mesh_keeps_working(
    garbage: bytes,
) -> None:
    async with mesh() as managers:
        target = managers[1]
        assert target.listen_port is not None
        stream = await trio.open_tcp_stream("127.0.0.1", target.listen_port)
        await stream.send_all(garbage)
        with trio.fail_after(5):
            while await stream.receive_some(4096):  # the hello, then EOF when we're cut off
                pass
        await stream.aclose()
        assert target.statistics().handshake_failures == 1
        assert all(m.statistics().peers_connected == N - 1 for m in managers)
        await _broadcast_round(managers, b"after garbage")


async def test_gossip_reaches_every_node_exactly_once_without_echo() -> None:
    def tx_hash(tx: bytes) -> bytes:
        return hashlib.sha256(tx).digest()

    async with mesh() as managers:
        gossips = [GossipService(m, TxGossip(GossipConfig(batch_ticks_max=2), tx_hash))
                   for m in managers]
        async with trio.open_nursery() as nursery:
            for g in gossips:
                await nursery.start(g.run)
            txs = [b"tx-%03d" % i for i in range(40)]
            for tx in txs:
                await gossips[0].submit(tx)
            for g in gossips[1:]:
                with trio.fail_after(10):
                    got = [await g.delivered.receive() for _ in txs]
                assert sorted(tx for _, tx in got) == txs
            await trio.sleep(0.3)  # relays settle: any late duplicate or echo would show now
            nursery.cancel_scope.cancel()
    origin = gossips[0].core.statistics()
    assert origin.delivered == 0 and origin.duplicates == 0  # nothing came back to node 0
    for g in gossips[1:]:
        assert g.core.statistics().delivered == len(txs)
        assert g.delivered.statistics().current_buffer_used == 0  # nothing delivered twice


async def test_heartbeats_reach_every_peer_with_the_status_payload() -> None:
    async with mesh() as managers:
        def status_of(m: PeerManager) -> Callable[[], bytes]:
            return lambda: b"height=7 view=%d" % m.self_id

        services = [HeartbeatService(m, status_of(m), interval_seconds=0.05) for m in managers]
        async with trio.open_nursery() as nursery:
            for s in services:
                await nursery.start(s.run)
            for s in services:
                heard: dict[PeerId, bytes] = {}
                with trio.fail_after(5):
                    while len(heard) < N - 1:
                        hb = await s.received.receive()
                        heard[hb.peer] = hb.status
                assert heard == {p: b"height=7 view=%d" % p for p in heard}
            nursery.cancel_scope.cancel()
        for s, m in zip(services, managers, strict=True):
            assert {p for p, _ in s.statistics().last_seen} == set(IDS) - {m.self_id}

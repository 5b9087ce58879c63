"""The fault proxy: pure rules, and real TCP forwarding through partition, heal and delay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from testnet._procs import free_ports
from testnet.proxy import ProxyControl, ProxyError, Rules, serve_links


def test_partition_blocks_exactly_the_cross_links() -> None:
    rules = Rules().partition([[0, 1], [2, 3]], 4)
    assert not rules.link(0, 1).blocked and not rules.link(3, 2).blocked
    for a in (0, 1):
        for b in (2, 3):
            assert rules.link(a, b).blocked and rules.link(b, a).blocked
    assert len(rules.blocked) == 8


def test_node_in_no_group_is_isolated() -> None:
    rules = Rules().partition([[0, 1, 2]], 4)
    assert all(rules.link(3, j).blocked and rules.link(j, 3).blocked for j in range(3))
    assert not rules.link(0, 2).blocked


def test_partition_rejects_unknown_and_repeated_nodes() -> None:
    with pytest.raises(ProxyError, match="no node 4"):
        Rules().partition([[0, 4]], 4)
    with pytest.raises(ProxyError, match="two groups"):
        Rules().partition([[0, 1], [1, 2]], 4)


def test_delay_and_loss_apply_to_every_link_of_the_node() -> None:
    rules = Rules().with_delay(2, 150).with_loss(1, 50.0)
    assert rules.link(0, 2).delay_ms == 150 and rules.link(2, 3).delay_ms == 150
    assert rules.link(0, 3).delay_ms == 0
    assert rules.link(1, 0).loss == pytest.approx(0.5)
    assert rules.link(1, 2).loss == pytest.approx(0.5) and rules.link(0, 3).loss == 0
    assert Rules().with_loss(1, 50).with_loss(2, 50).link(1, 2).loss == pytest.approx(0.75)
    with pytest.raises(ProxyError):
        Rules().with_loss(0, 101)
    with pytest.raises(ProxyError):
        Rules().with_delay(0, -1)


def test_heal_and_json_round_trip() -> None:
    rules = Rules().partition([[0], [1, 2]], 3).with_delay(0, 10).with_loss(2, 5)
    again = Rules.from_json(json.loads(json.dumps(rules.to_json())))
    assert again == rules and not again.healthy
    assert Rules().healthy and Rules().with_delay(1, 0).healthy


async def _echo_server(port: int) -> None:
    async def echo(stream: trio.SocketStream) -> None:
        async with stream:
            try:
                async for data in stream:
                    await stream.send_all(data)
            except trio.BrokenResourceError:
                pass

    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    await trio.serve_listeners(echo, listeners)


async def _round_trip(port: int, payload: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(payload)
        got = b""
        with trio.fail_after(5):
            while len(got) < len(payload):
                data = await stream.receive_some(65536)
                if not data:
                    break
                got += data
        return got


async def test_proxy_forwards_partitions_heals_and_delays(tmp_path: Path) -> None:
    echo_port, proxy_port = free_ports(2)
    control = ProxyControl(tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_echo_server, echo_port)
        await trio.sleep(0.05)
        await nursery.start(lambda task_status: serve_links(
            control, {(0, 1): (proxy_port, echo_port)}, task_status=task_status))
        assert await _round_trip(proxy_port, b"hello" * 1000) == b"hello" * 1000

        # A live connection is cut by the partition; new ones are refused until healed.
        live = await trio.open_tcp_stream("127.0.0.1", proxy_port)
        await live.send_all(b"x")
        assert await live.receive_some(10) == b"x"
        await trio.to_thread.run_sync(control.set, Rules().partition([[0], [1]], 2))
        with trio.fail_after(5):
            assert await live.receive_some(10) == b""
        await live.aclose()
        assert await _round_trip(proxy_port, b"ping") == b""

        await trio.to_thread.run_sync(control.set, Rules())
        assert await _round_trip(proxy_port, b"pong") == b"pong"

        await trio.to_thread.run_sync(control.set, Rules().with_delay(1, 200))
        start = trio.current_time()
        assert await _round_trip(proxy_port, b"slow") == b"slow"
        # Both directions are held for 200 ms: a lower bound, never a speed claim.
        assert trio.current_time() - start >= 0.35
        nursery.cancel_scope.cancel()


async def test_total_loss_closes_connections(tmp_path: Path) -> None:
    echo_port, proxy_port = free_ports(2)
    control = ProxyControl(tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_echo_server, echo_port)
        await nursery.start(lambda task_status: serve_links(
            control, {(0, 1): (proxy_port, echo_port)}, task_status=task_status))
        await trio.to_thread.run_sync(control.set, Rules().with_loss(0, 100))
        assert await _round_trip(proxy_port, b"lost") == b""
        nursery.cancel_scope.cancel()

"""Four PBFT validators as real processes: CLI transactions, bad input, crash and catch-up,
and a view change after the primary dies.

One network serves the whole module (started once); the tests run in file order and each
leaves the network committing, so later ones build on it.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chain.tx import make_transaction
from cli.cmd_query import find_field
from node.client import RpcClient, RpcClientError
from p2p.handshake import Handshake, Identity, Role
from tests.e2e.net import Network, address, cli, make_network, phalanx, running, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    network = make_network(tmp_path_factory.mktemp("pbft4"), 4, users=3)
    with running(network):
        yield network


def _balance(node_url: str, who: str) -> int:
    with RpcClient(node_url) as c:
        return int(find_field(c.account(who), "balance"))


def _send(net: Network, user: int, to: str, amount: int, *nodes: int,
          subprocess: bool = False) -> dict[str, Any]:
    urls = net.urls(nodes or None)
    run = phalanx if subprocess else cli
    result = run("tx", "send", "--key", str(net.user_key_files[user]), "--to", to,
                     "--amount", str(amount), "--wait", "--json", "--node", urls)  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def _view(node_url: str) -> int:
    with RpcClient(node_url, timeout=3) as c:
        state = c.status()
    view = find_field(state, "view")
    assert view is not None, f"status has no view: {state}"
    return int(view)


def _block_hash(node_url: str, height: int) -> str:
    with RpcClient(node_url, timeout=5) as c:
        block = c.block(height)
    found = find_field(block, "hash", "block_hash")
    assert found, f"block {height} has no hash: {block}"
    return str(found)


def test_four_validators_commit_transactions_sent_through_the_cli(net: Network) -> None:
    to = address(net.users[1])
    before = _balance(net.nodes[0].url, to)
    first = _send(net, 0, to, 1000, subprocess=True)
    second = _send(net, 0, to, 234, 2, 3, subprocess=True)
    assert second["nonce"] == first["nonce"] + 1
    height = int(find_field(second, "height"))
    net.wait_height(height)
    balances = {_balance(n.url, to) for n in net.nodes}
    assert balances == {before + 1234}
    assert len({_block_hash(n.url, height) for n in net.nodes}) == 1


def _post(url: str, content: bytes) -> httpx.Response:
    return httpx.post(url + "/", content=content, headers={"content-type": "application/json"},
                      timeout=10)  # fmt: skip


def _rpc_error(url: str, method: str, params: dict[str, Any]) -> RpcClientError:
    with RpcClient(url) as c, pytest.raises(RpcClientError) as err:
        c.call(method, params)
    return err.value


def test_bad_api_input_is_answered_with_clear_errors(net: Network) -> None:
    url = net.nodes[1].url
    assert _post(url, b"{not json").json()["error"]["code"] == -32700
    assert _post(url, b'{"jsonrpc": "2.0", "id": 1, "method": "nope"}').json()["error"]["code"] == -32601
    assert _post(url, b'{"id": 1}').json()["error"]["code"] == -32600
    big = _post(url, b'{"jsonrpc": "2.0", "id": 1, "method": "status", "params": {"x": "'
                + b"a" * (1024 * 1024) + b'"}}')  # fmt: skip
    assert big.status_code == 413 and big.json()["error"]["code"] == -32600

    user = net.users[2]
    with RpcClient(url) as c:
        nonce = int(find_field(c.account(address(user)), "nonce") or 0)
    good: dict[str, Any] = dict(chain_id=net.chain_id, nonce=nonce, to=net.users[0].address, amount=1, fee=1,
                gas_limit=21_000)  # fmt: skip
    wrong_chain = make_transaction(user, **{**good, "chain_id": net.chain_id + 1})
    err = _rpc_error(url, "broadcast_tx_sync", {"tx": "0x" + wrong_chain.encoded.hex()})
    assert "WRONG_CHAIN_ID" in err.message.upper()
    tx = make_transaction(user, **good)
    raw = bytearray(tx.encoded)
    raw[-1] ^= 0x01  # last byte of the signature
    err = _rpc_error(url, "broadcast_tx_sync", {"tx": "0x" + bytes(raw).hex()})
    assert "BAD_SIGNATURE" in err.message.upper()
    err = _rpc_error(url, "broadcast_tx_sync", {"tx": "0xzz"})
    assert err.code in (-32602,) or "ENCODING" in err.message.upper()
    # A nonce already used: send one for real first.
    result = cli("tx", "send", "--key", str(net.user_key_files[2]), "--to",
                     address(net.users[0]), "--amount", "1", "--wait", "--node", url)  # fmt: skip
    assert result.returncode == 0, result.stderr
    stale = make_transaction(user, **{**good, "amount": 2})
    rejected = cli("tx", "send", "--key", str(net.user_key_files[2]), "--to",
                  address(net.users[0]), "--amount", "2", "--nonce", str(nonce), "--node", url)  # fmt: skip
    assert rejected.returncode == 1
    assert rejected.stderr.startswith("error: rejected: NONCE_TOO_LOW"), rejected.stderr
    err = _rpc_error(url, "broadcast_tx_sync", {"tx": "0x" + stale.encoded.hex()})
    assert "NONCE_TOO_LOW" in err.message.upper()
    _send(net, 2, address(net.users[0]), 5, 1)  # and the node still commits


def _closed_by_peer(sock: socket.socket, timeout: float = 15) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


def test_bad_p2p_input_closes_the_connection_and_the_node_keeps_committing(net: Network) -> None:
    target = net.nodes[2]
    height = target.height()
    port = target.p2p_port
    with socket.create_connection(("127.0.0.1", port)) as s:  # random bytes
        s.sendall(os.urandom(4096))
        assert _closed_by_peer(s)
    with socket.create_connection(("127.0.0.1", port)) as s:  # oversized frame header
        s.sendall((2**31).to_bytes(4, "big") + b"\x00" * 64)
        assert _closed_by_peer(s)
    with socket.create_connection(("127.0.0.1", port)) as s:  # failed handshake: a bad hello
        s.sendall((40).to_bytes(4, "big") + b"\xc0" * 40)
        assert _closed_by_peer(s)
    with socket.create_connection(("127.0.0.1", port)) as s:  # a stranger's key
        stranger = Handshake(identity=Identity(os.urandom(32)), role=Role.INITIATOR,
                             network=b"phalanx/local", allowed={target.key.public_key.raw},
                             ephemeral_secret=os.urandom(32), nonce=os.urandom(32),
                             expected_peer=target.key.public_key.raw)  # fmt: skip
        for body in stranger.start():
            s.sendall(len(body).to_bytes(4, "big") + body)
        assert _closed_by_peer(s)
        assert not stranger.done
    with socket.create_connection(("127.0.0.1", port)) as s:  # silence: handshake timeout
        assert _closed_by_peer(s, timeout=30)
    assert target.running
    net.wait_height(height + 2, timeout=60)


def _liveness(node_url: str) -> dict[str, Any]:
    with RpcClient(node_url, timeout=3) as c:
        doc: dict[str, Any] = c.status()["liveness"]
    return doc


def _sees_crash_of(node_url: str, victim: int, others: tuple[int, ...]) -> bool:
    doc = _liveness(node_url)
    phi = {p["id"]: p["phi"] for p in doc["peers"]}
    return (victim in doc["suspected"] and phi[victim] >= doc["phi_threshold"]
            and {"node": victim, "reporters": list(others)} in doc["confirmed"])


def _trusts_all(node_url: str) -> bool:
    doc = _liveness(node_url)
    return bool(doc["suspected"] == [] and doc["confirmed"] == [])


def test_killed_validator_restarts_and_catches_up_to_the_same_head_and_state(net: Network) -> None:
    victim = net.nodes[3]
    others = (0, 1, 2)
    wait_until("every validator trusting the others", lambda: all(
        _trusts_all(net.nodes[i].url) for i in range(4)), 30)
    victim.kill()
    to = address(net.users[1])
    doc = _send(net, 0, to, 77, *others)
    height = int(find_field(doc, "height"))
    net.wait_height(height + 2, only=others)
    # The failure detectors suspect the dead validator, and the gossip of their reports
    # confirms it by a quorum (f + 1 = 2): each survivor lists all three reporters.
    wait_until("3 suspected and confirmed by the others", lambda: all(
        _sees_crash_of(net.nodes[i].url, 3, others) for i in others), 30)
    victim.start()
    target = net.nodes[0].height()
    net.wait_height(target, timeout=90, only=(3,))
    assert _block_hash(victim.url, target) == _block_hash(net.nodes[0].url, target)
    for who in (address(u) for u in net.users):
        assert _balance(victim.url, who) == _balance(net.nodes[1].url, who)
    wait_until("3 trusted again and no suspicion confirmed", lambda: all(
        _trusts_all(net.nodes[i].url) for i in others), 30)


def test_killing_the_primary_elects_a_new_one_and_commits_continue(net: Network) -> None:
    view = _view(net.nodes[0].url)
    primary = net.nodes[view % 4]
    primary.kill()
    others = [n.index for n in net.nodes if n is not primary]
    doc = _send(net, 1, address(net.users[0]), 9, *others)
    assert int(find_field(doc, "height")) > 0
    wait_until("a view change", lambda: all(_view(net.nodes[i].url) > view for i in others), 60)
    height = max(net.nodes[i].height() for i in others)
    net.wait_height(height + 2, only=others)


def test_validators_exit_cleanly_on_sigterm(net: Network) -> None:
    running_nodes = [n for n in net.nodes if n.running]
    for node in running_nodes:
        assert node.proc is not None
        node.proc.terminate()
    codes = [node.stop() for node in running_nodes]
    assert codes == [0] * len(running_nodes), "\n".join(n.log_tail(10) for n in running_nodes)

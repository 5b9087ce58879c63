"""``phalanx query diverge`` against two fake nodes (JSON-RPC over ``httpx.MockTransport``):
the first diverging height, fork or execution, the first differing receipt, pruned blocks and
exit codes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

import cli._output
from tests.e2e.net import cli as run_cli

A, B = "http://node-a:1", "http://node-b:2"


@dataclass
class FakeNode:
    """A chain of ``head`` blocks; from ``diverged_at`` on its post-states are its own."""

    head: int
    floor: int = 0
    diverged_at: int | None = None
    fork: bool = False  # the block at diverged_at is another block
    bad_receipt: int | None = None  # index of the receipt that differs at diverged_at
    calls: list[str] = field(default_factory=list)

    def _mine(self, height: int) -> bool:
        return self.diverged_at is not None and height >= self.diverged_at

    def post_state(self, height: int) -> str:
        return f"0x{'b' if self._mine(height) else 'a'}{height:04x}"

    def block_hash(self, height: int) -> str:
        return f"0x{'f' if self.fork and self._mine(height) else 'c'}{height:04x}"

    def answer(self, method: str, params: dict[str, Any]) -> Any:
        self.calls.append(method)
        if method == "status":
            return {"latest_block_height": self.head, "height": self.head,
                    "latest_state_root": self.post_state(self.head),
                    "earliest_block_height": self.floor}
        if method == "block":
            h = int(params["height"])
            if h < self.floor:
                raise LookupError(f"block {h}: pruned (earliest {self.floor})")
            if h > self.head:
                raise LookupError(f"block {h} is not committed yet")
            return {"height": h, "hash": self.block_hash(h), "state_root": self.post_state(h - 1),
                    "txs": [{"hash": f"0x{h:04x}{i:02x}"} for i in range(3)]}
        if method == "tx":
            tx_hash = str(params["hash"])
            h, index = int(tx_hash[2:6], 16), int(tx_hash[6:], 16)
            gas = 21_000 + (h == self.diverged_at and index == self.bad_receipt)
            return {"hash": tx_hash, "height": h, "index": index,
                    "receipt": {"tx_hash": tx_hash, "status": 1, "gas_used": gas,
                                "fee_paid": gas, "reason": ""}}
        raise AssertionError(method)


def _install(monkeypatch: pytest.MonkeyPatch, a: FakeNode, b: FakeNode) -> None:
    nodes = {"node-a": a, "node-b": b}

    def handler(request: httpx.Request) -> httpx.Response:
        node = nodes.get(request.url.host)
        if node is None:
            raise httpx.ConnectError("connection refused")
        body = json.loads(request.content)
        try:
            result = node.answer(body["method"], body.get("params") or {})
        except LookupError as e:
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"],
                                             "error": {"code": -32004, "message": str(e)}})
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": result})

    monkeypatch.setattr(cli._output, "client_transport", httpx.MockTransport(handler))


def _run(*args: str) -> tuple[int, str, str]:
    done = run_cli("query", "diverge", *args)
    return done.returncode, done.stdout, done.stderr


def test_an_execution_divergence_names_the_height_and_the_receipt(
        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = FakeNode(head=900), FakeNode(head=517, diverged_at=517, bad_receipt=1)
    _install(monkeypatch, a, b)
    code, out, err = _run(A, B, "--json")
    assert code == 1, err
    report = json.loads(out)
    assert report["height"] == 517 and report["kind"] == "execution"
    assert report["compared"] == {"from": 0, "to": 517}
    diff = report["first_differing_tx"]
    assert diff["index"] == 1 and diff["fields"] == ["fee_paid", "gas_used"]
    assert [r["gas_used"] for r in diff["receipts"]] == [21_000, 21_001]
    assert report["lookups"] <= 2 * 10 + 4
    code, out, _ = _run(A, B)
    assert code == 1
    assert "first diverging height: 517" in out and "execution divergence" in out
    assert "index 1" in out and "gas_used" in out


def test_a_fork_is_told_apart_and_agreement_exits_0(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, FakeNode(head=40), FakeNode(head=60, diverged_at=33, fork=True))
    code, out, _ = _run(A, B)
    assert code == 1
    assert "first diverging height: 33" in out and "a fork" in out
    _install(monkeypatch, FakeNode(head=40), FakeNode(head=60))
    code, out, _ = _run(A, B)
    assert code == 0 and "no divergence up to height 40" in out


def test_receipts_that_agree_say_the_state_writes_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, FakeNode(head=20), FakeNode(head=20, diverged_at=7))
    code, out, _ = _run(A, B)
    assert code == 1 and "first diverging height: 7" in out
    assert "receipts agree; the state writes differ" in out


def test_pruned_heights_and_unreachable_nodes_are_clear_errors(
        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = FakeNode(head=100, floor=50), FakeNode(head=100, diverged_at=80)
    _install(monkeypatch, a, b)
    code, out, err = _run(A, B, "--from", "10")
    assert code == 1, err
    assert "keeps blocks from 50 on" in out and "first diverging height: 80" in out
    a.floor = 120  # pruned past the other node's head: nothing in common
    a.head = 130
    code, _, err = _run(A, B)
    assert code == 2 and "no height in common" in err and "Traceback" not in err
    a.floor, a.head = 50, 100

    def prune_on_read(method: str, params: dict[str, Any], orig: Any = a.answer) -> Any:
        if method == "block":  # pruned between the status and the read
            raise LookupError(f"block {params['height']}: pruned")
        return orig(method, params)

    monkeypatch.setattr(a, "answer", prune_on_read)
    code, _, err = _run(A, B)
    assert code == 2 and "cannot read block" in err and "--from" in err
    code, _, err = _run(A, "http://nowhere:3")
    assert code == 2 and "cannot reach node at http://nowhere:3" in err
    code, _, err = _run(A, B, "--from", "-1")
    assert code == 2 and "--from" in err

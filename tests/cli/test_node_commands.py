"""``phalanx init|keys|tx|query|start`` through the real entry point, against a fake node.

The fake node (an ``httpx.MockTransport``) decodes every submitted transaction with the real
decoder and checks its signature, chain id and nonce, so the tests show that the CLI signs
what the chain accepts; it answers rejections the way the node API does (a JSON-RPC error
whose message starts with the reason).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

import cli._output
from chain.genesis import load_genesis
from chain.keys import PrivateKey, format_address, load_key_file, save_key_file
from chain.tx import decode_transaction
from chain.vm.abi import encode_call
from chain.vm.assembler import deploy_code
from cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "contracts"
CHAIN_ID = 42


class FakeNode:
    def __init__(self) -> None:
        self.height = 7
        self.nonces: dict[str, int] = {}
        self.txs: list[Any] = []
        self.calls: list[tuple[str, Any]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        method, params = body["method"], body.get("params") or {}
        self.calls.append((method, params))
        try:
            result = getattr(self, "rpc_" + method)(**params)
        except _Timeout as e:
            return _answer(body["id"], error={"code": -32002, "message": str(e)})
        except _Reject as e:
            return _answer(body["id"], error={"code": -32010, "message": str(e),
                                              "data": {"reason": e.reason}})  # fmt: skip
        except AttributeError:
            return _answer(body["id"], error={"code": -32601, "message": f"method not found: {method}"})
        return _answer(body["id"], result=result)

    def rpc_status(self) -> Any:
        return {"node_info": {"chain_id": CHAIN_ID, "moniker": "fake"},
                "sync_info": {"latest_block_height": self.height}}  # fmt: skip

    def rpc_account(self, address: str) -> Any:
        return {"address": address, "balance": 1000, "nonce": self.nonces.get(address, 0)}

    def _admit(self, tx: str) -> Any:
        decoded = decode_transaction(bytes.fromhex(tx.removeprefix("0x")))
        if decoded.chain_id != CHAIN_ID:
            raise _Reject("wrong_chain_id", f"WRONG_CHAIN_ID: made for {decoded.chain_id}")
        if not decoded.verify_signature():
            raise _Reject("bad_signature", "BAD_SIGNATURE: signature does not verify")
        sender = format_address(decoded.sender_address)
        expected = self.nonces.get(sender, 0)
        if decoded.nonce < expected:
            raise _Reject("nonce_too_low",  # the reason said twice, as a layered server may
                          f"NONCE_TOO_LOW: NONCE_TOO_LOW: nonce {decoded.nonce} is used; "
                          f"the next nonce is {expected}")
        self.txs.append(decoded)
        return decoded

    def rpc_broadcast_tx_sync(self, tx: str) -> Any:
        decoded = self._admit(tx)
        return {"hash": "0x" + decoded.hash.hex()}

    def rpc_broadcast_tx_commit(self, tx: str, timeout: float = 30) -> Any:
        assert 0 < timeout <= 120
        decoded = self._admit(tx)
        sender = format_address(decoded.sender_address)
        self.nonces[sender] = decoded.nonce + 1
        self.height += 1
        creation = decoded.to == b""
        return {
            "hash": "0x" + decoded.hash.hex(),
            "height": self.height,
            "receipt": {
                "status": 1 if decoded.amount != 666 else 0,
                "gas_used": 21000,
                "reason": "" if decoded.amount != 666 else "reverted at pc 40",
                "logs": [{"address": "0x" + "cc" * 20, "topics": ["0x" + "dd" * 32], "data": "0x05"}],
                "contract_address": "0x" + "cc" * 20 if creation else "",
                "return_data": "0x" + ("00" * 31 + "01" if decoded.amount != 666
                                       else b"insufficient balance".hex()),
            },
        }

    def rpc_block(self, height: int | None = None) -> Any:
        if height is not None and height > self.height:
            raise _Reject("not_found", f"block {height} is not committed yet (head is {self.height})")
        return {"height": self.height if height is None else height, "hash": "0x" + "ab" * 32}

    def rpc_tx(self, hash: str) -> Any:
        return {"hash": hash, "height": 3, "receipt": {"status": 1}}

    def rpc_call(self, to: str, data: str, sender: str | None = None) -> Any:
        return {"success": True, "gas_used": 300, "return_data": "0x" + "00" * 31 + "2a", "to": to,
                "data": data}


class _Timeout(Exception):
    pass


class _Reject(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _answer(id_: Any, result: Any = None, error: Any = None) -> httpx.Response:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": id_}
    if error is not None:
        body["error"] = error
    else:
        body["result"] = result
    return httpx.Response(200, json=body)


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> FakeNode:
    fake = FakeNode()
    monkeypatch.setattr(cli._output, "client_transport", httpx.MockTransport(fake.handler))
    return fake


@pytest.fixture
def key_file(tmp_path: Path) -> tuple[Path, PrivateKey]:
    key = PrivateKey.from_seed(b"\x07" * 32)
    path = tmp_path / "user.json"
    save_key_file(path, key)
    return path, key


NODE = ["--node", "http://fake:26657"]


def _json_out(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


# --- init / keys ---------------------------------------------------------------------------


def test_init_creates_key_genesis_and_config_funding_its_own_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    assert main(["init", "--home", str(home), "--chain-id", "9", "--moniker", "alpha", "--json"]) == 0
    out = _json_out(capsys)
    key_path = home / "keys" / "validator.json"
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    key = load_key_file(key_path)
    assert out["address"] == format_address(key.address)
    genesis = load_genesis(home / "genesis.json")
    assert genesis.chain_id == 9 and genesis.engine == "pbft" and genesis.n == 1
    assert genesis.validators[0].public_key == key.public_key.raw
    assert dict(genesis.balances)[key.address] > 0
    assert (home / "config.toml").exists()
    from node.config import load_config

    assert load_config(home).node.moniker == "alpha"


def test_init_refuses_an_existing_home_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    assert main(["init", "--home", str(home)]) == 0
    first = load_key_file(home / "keys" / "validator.json")
    (home / "data" / "stale").write_text("old ledger")
    capsys.readouterr()
    assert main(["init", "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--force" in err and err.count("\n") == 1
    assert load_key_file(home / "keys" / "validator.json").address == first.address
    assert main(["init", "--home", str(home), "--force"]) == 0
    assert load_key_file(home / "keys" / "validator.json").address != first.address
    assert not (home / "data" / "stale").exists()


def test_init_uses_phalanx_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHALANX_HOME", str(tmp_path / "envhome"))
    assert main(["init"]) == 0
    assert (tmp_path / "envhome" / "genesis.json").exists()


def test_keys_new_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "k.json"
    assert main(["keys", "new", "--out", str(path), "--json"]) == 0
    made = _json_out(capsys)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert main(["keys", "show", str(path)]) == 0
    shown = capsys.readouterr().out
    assert made["address"] in shown and made["public_key"] in shown
    assert load_key_file(path).public_key.raw.hex() == made["public_key"]
    assert "seed" not in shown
    assert main(["keys", "new", "--out", str(path)]) == 2
    assert "exists" in capsys.readouterr().err


def test_keys_show_home_validator_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "h"
    main(["init", "--home", str(home), "--json"])
    address = _json_out(capsys)["address"]
    assert main(["keys", "show", "--home", str(home), "--json"]) == 0
    assert _json_out(capsys)["address"] == address


def test_keys_show_refuses_a_world_readable_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "k.json"
    main(["keys", "new", "--out", str(path)])
    path.chmod(0o644)
    capsys.readouterr()
    assert main(["keys", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert "too open" in err and err.count("\n") == 1


# --- tx ----------------------------------------------------------------------------------


def test_tx_send_signs_for_the_nodes_chain_with_the_accounts_nonce(
    node: FakeNode, key_file: tuple[Path, PrivateKey], capsys: pytest.CaptureFixture[str]
) -> None:
    path, key = key_file
    node.nonces[format_address(key.address)] = 3
    to = "0x" + "ab" * 20
    assert main(["tx", "send", "--key", str(path), "--to", to, "--amount", "25", *NODE]) == 0
    (tx,) = node.txs
    assert (tx.chain_id, tx.nonce, tx.to, tx.amount) == (CHAIN_ID, 3, bytes.fromhex("ab" * 20), 25)
    assert tx.sender == key.public_key.raw and tx.verify_signature()
    assert [m for m, _ in node.calls] == ["status", "account", "broadcast_tx_sync"]
    assert "0x" + tx.hash.hex() in capsys.readouterr().out


def test_tx_send_wait_prints_height_and_receipt(
    node: FakeNode, key_file: tuple[Path, PrivateKey], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = key_file
    args = ["tx", "send", "--key", str(path), "--to", "0x" + "01" * 20, "--amount", "5", "--wait"]
    assert main([*args, *NODE]) == 0
    out = capsys.readouterr().out
    assert "committed: transfer" in out and "in block 8" in out and "gas_used" in out
    assert main([*args, "--json", *NODE]) == 0
    doc = _json_out(capsys)
    assert doc["height"] == 9 and doc["nonce"] == 1 and doc["receipt"]["status"] == 1


def test_tx_send_with_explicit_nonce_fee_and_gas_skips_the_account_lookup(
    node: FakeNode, key_file: tuple[Path, PrivateKey]
) -> None:
    path, _ = key_file
    argv = ["tx", "send", "--key", str(path), "--to", "0x" + "01" * 20, "--amount", "1",
            "--nonce", "4", "--fee", "3", "--gas-limit", "30000", *NODE]  # fmt: skip
    assert main(argv) == 0
    (tx,) = node.txs
    assert (tx.nonce, tx.fee, tx.gas_limit) == (4, 3, 30000)
    assert "account" not in [m for m, _ in node.calls]


def test_tx_send_rejection_is_one_clear_line(
    node: FakeNode, key_file: tuple[Path, PrivateKey], capsys: pytest.CaptureFixture[str]
) -> None:
    path, key = key_file
    node.nonces[format_address(key.address)] = 5
    argv = ["tx", "send", "--key", str(path), "--to", "0x" + "01" * 20, "--amount", "1",
            "--nonce", "2", *NODE]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == "error: rejected: NONCE_TOO_LOW: nonce 2 is used; the next nonce is 5\n"


def test_tx_send_wait_timeout_is_not_called_a_rejection(
    node: FakeNode, key_file: tuple[Path, PrivateKey], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    def slow(tx: str, timeout: float = 30) -> Any:
        raise _Timeout(f"transaction 0x12 not committed within {timeout:g} s")

    monkeypatch.setattr(node, "rpc_broadcast_tx_commit", slow)
    path, _ = key_file
    argv = ["tx", "send", "--key", str(path), "--to", "0x" + "01" * 20, "--amount", "1",
            "--wait", "--wait-timeout", "5", *NODE]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == "error: node error -32002: transaction 0x12 not committed within 5 s\n"


def test_tx_send_failed_receipt_exits_non_zero(
    node: FakeNode, key_file: tuple[Path, PrivateKey], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = key_file
    argv = ["tx", "send", "--key", str(path), "--to", "0x" + "01" * 20, "--amount", "666",
            "--wait", *NODE]  # fmt: skip
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED: transfer") and "reverted at pc 40" in out
    assert "return text: 'insufficient balance'" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--to", "0x1234", "--amount", "1"], "must have 40 hex digits"),
        (["--to", "0x" + "01" * 20, "--amount", "-1"], "--amount: must be >= 0"),
    ],
)
def test_tx_send_bad_arguments_are_one_line(
    node: FakeNode, key_file: tuple[Path, PrivateKey], capsys: pytest.CaptureFixture[str],
    argv: list[str], message: str,
) -> None:  # fmt: skip
    path, _ = key_file
    assert main(["tx", "send", "--key", str(path), *argv, *NODE]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert node.txs == []


def test_tx_send_to_an_unreachable_node(
    key_file: tuple[Path, PrivateKey], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = key_file
    argv = ["tx", "send", "--key", str(path), "--to", "0x" + "01" * 20, "--amount", "1",
            "--node", "http://127.0.0.1:1", "--timeout", "2"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach node at http://127.0.0.1:1") and err.count("\n") == 1


def test_tx_deploy_assembly_sends_init_code_with_empty_to(
    node: FakeNode, key_file: tuple[Path, PrivateKey], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = key_file
    token = EXAMPLES / "token.asm"
    assert main(["tx", "deploy", str(token), "--key", str(path), "--wait", *NODE]) == 0
    (tx,) = node.txs
    assert tx.to == b"" and tx.data == deploy_code(token.read_text())
    assert "contract address: 0x" + "cc" * 20 in capsys.readouterr().out


def test_tx_deploy_hex_file(node: FakeNode, key_file: tuple[Path, PrivateKey], tmp_path: Path) -> None:
    path, _ = key_file
    code = deploy_code((EXAMPLES / "counter.asm").read_text())
    hex_file = tmp_path / "counter.hex"
    hex_file.write_text("0x" + code.hex() + "\n")
    assert main(["tx", "deploy", str(hex_file), "--key", str(path), *NODE]) == 0
    assert node.txs[0].data == code


def test_tx_call_with_abi_arguments(
    node: FakeNode, key_file: tuple[Path, PrivateKey]
) -> None:
    path, _ = key_file
    contract = "0x" + "cc" * 20
    argv = ["tx", "call", contract, "--call", "1 0x1234 10", "--key", str(path), *NODE]
    assert main(argv) == 0
    (tx,) = node.txs
    assert tx.to == bytes.fromhex("cc" * 20) and tx.data == encode_call(1, 0x1234, 10)


# --- query -------------------------------------------------------------------------------


def test_query_status_account_block_tx_json(
    node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", "status", "--json", *NODE]) == 0
    assert _json_out(capsys)["node_info"]["chain_id"] == CHAIN_ID
    addr = "0x" + "0A" * 20
    assert main(["query", "account", addr, "--json", *NODE]) == 0
    assert _json_out(capsys) == {"address": addr.lower(), "balance": 1000, "nonce": 0}
    assert main(["query", "block", "3", "--json", *NODE]) == 0
    assert _json_out(capsys)["height"] == 3
    assert main(["query", "tx", "ab" * 32, "--json", *NODE]) == 0
    assert _json_out(capsys)["hash"] == "0x" + "ab" * 32


def test_query_human_output_and_errors(node: FakeNode, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "block", *NODE]) == 0
    out = capsys.readouterr().out
    assert "height: 7" in out
    assert main(["query", "block", "99", *NODE]) == 1
    assert "block 99 is not committed yet" in capsys.readouterr().err
    assert main(["query", "tx", "0x12", *NODE]) == 2
    assert "32 bytes" in capsys.readouterr().err
    # bytes.fromhex would skip the spaces and accept 32 bytes here; the CLI must not
    calls = len(node.calls)
    assert main(["query", "tx", "ab" * 31 + " a b", *NODE]) == 2
    assert "HASH: not hex" in capsys.readouterr().err
    assert len(node.calls) == calls  # refused before any request


def test_query_call_sends_call_data_and_prints_return_words(
    node: FakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = "0x" + "cc" * 20
    assert main(["query", "call", contract, "--data", "02" + "00" * 32, *NODE]) == 0
    assert node.calls[-1] == ("call", {"to": contract, "data": "0x02" + "00" * 32})
    assert "return words: 42" in capsys.readouterr().out
    assert main(["query", "call", contract, "--call", "3", "--json", *NODE]) == 0
    assert node.calls[-1][1]["data"] == "0x03"
    assert main(["query", "call", contract, "--data", "zz", *NODE]) == 2


def test_node_defaults_to_the_homes_rpc_address(
    tmp_path: Path, node: FakeNode, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    seen: list[str] = []
    handler = node.handler

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return handler(request)

    monkeypatch.setattr(cli._output, "client_transport", httpx.MockTransport(spy))
    home = tmp_path / "h"
    main(["init", "--home", str(home)])
    assert main(["query", "status", "--home", str(home)]) == 0
    assert seen == ["http://127.0.0.1:26657/"]


# --- start -------------------------------------------------------------------------------


def test_start_without_config_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["start", "--home", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "no config file" in err and "phalanx init" in err and err.count("\n") == 1


def test_start_with_a_bad_config_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "h"
    main(["init", "--home", str(home)])
    config = home / "config.toml"
    config.write_text(config.read_text().replace('engine = "pbft"', 'engine = "raft"'))
    capsys.readouterr()
    assert main(["start", "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert "consensus.engine" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("message", "data", "text"),
    [
        ("nonce 1 is used", {"reason": "nonce_too_low"}, "NONCE_TOO_LOW: nonce 1 is used"),
        ("FEE_TOO_LOW: pay more", {"reason": "fee_too_low"}, "FEE_TOO_LOW: pay more"),
        ("X: X: twice", {"reason": "x"}, "X: twice"),
        ("no reason given", None, "no reason given"),
    ],
)
def test_rejection_text_names_the_reason_once(message: str, data: Any, text: str) -> None:
    from cli.cmd_tx import rejection_text

    assert rejection_text(message, data) == text


def test_start_with_a_key_that_is_not_a_validator_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "h"
    main(["init", "--home", str(home)])
    save_key_file(home / "keys" / "validator.json", PrivateKey.from_seed(b"\x09" * 32))
    capsys.readouterr()
    assert main(["start", "--home", str(home)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: cannot start the node: ") and "not a validator" in err

"""``phalanx tx``: build, sign and submit transactions to a node.

* ``phalanx tx send --to ADDR --amount N``            a transfer
* ``phalanx tx deploy FILE.asm|FILE.bin|FILE.hex``    a contract creation (empty ``to``; the
  data is init code: assembly goes through ``chain.vm.assembler.deploy_code``)
* ``phalanx tx call ADDR --data HEX [--amount N]``    a contract call (or ``--call 'SEL ARG...'``)

Common options: ``--key FILE`` (default: the home's validator key), ``--fee F`` (per gas),
``--gas-limit G``, ``--nonce N`` (default: the account's next nonce from the ``account``
method), ``--wait`` (``broadcast_tx_commit``: prints the height and the receipt; without it
``broadcast_tx_sync`` prints the hash once the mempool admitted it), ``--node``, ``--json``.

The chain id is read from ``status``, so a transaction is always signed for the chain the
node runs. A rejection prints ``rejected: REASON: what to do`` and exits 1; a committed
transaction that failed (revert, out of gas) prints its receipt and exits 1 too.

Called by: :mod:`cli.main` (discovered through ``register``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cli._output import add_node_options, emit, home_of, node_client, print_fields
from cli.cmd_query import add_call_data_options, check_address, find_field, parse_call_data

__all__ = ["DEFAULT_FEE", "register", "rejection_text"]

DEFAULT_FEE = 1
TRANSFER_GAS = 21_000
CONTRACT_GAS = 2_000_000


def register(subparsers: Any) -> None:
    """Add ``phalanx tx send|deploy|call``."""
    p = subparsers.add_parser("tx", help="sign and submit transactions",
                              description="Build, sign and submit transactions to a node.")
    sub = p.add_subparsers(dest="tx_command", metavar="ACTION")
    sub.required = True

    s = sub.add_parser("send", help="transfer value to an address")
    s.add_argument("--to", required=True, metavar="ADDR")
    s.add_argument("--amount", type=int, required=True, metavar="N")
    _common(s, TRANSFER_GAS)
    s.set_defaults(func=_send)

    d = sub.add_parser("deploy", help="deploy a contract (FILE.asm, or bytes/hex)")
    d.add_argument("file", type=Path, metavar="FILE")
    d.add_argument("--amount", type=int, default=0, metavar="N", help="value for the constructor")
    _common(d, CONTRACT_GAS)
    d.set_defaults(func=_deploy)

    c = sub.add_parser("call", help="call a contract in a transaction")
    c.add_argument("address", metavar="ADDR")
    add_call_data_options(c)
    c.add_argument("--amount", type=int, default=0, metavar="N", help="value sent with the call")
    _common(c, CONTRACT_GAS)
    c.set_defaults(func=_call)


def _common(p: argparse.ArgumentParser, gas: int) -> None:
    p.add_argument("--key", type=Path, default=None, metavar="FILE",
                   help="signing key file (default: the home's keys/validator.json)")
    p.add_argument("--fee", type=int, default=DEFAULT_FEE, metavar="F",
                   help=f"fee per unit of gas (default {DEFAULT_FEE})")
    p.add_argument("--gas-limit", type=int, default=gas, metavar="G",
                   help=f"most gas the transaction may use (default {gas})")
    p.add_argument("--nonce", type=int, default=None, metavar="N",
                   help="the nonce (default: the account's next nonce)")
    p.add_argument("--wait", action="store_true",
                   help="wait until committed; print the height and the receipt")
    p.add_argument("--wait-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="how long the node waits for the commit with --wait (default 30)")
    add_node_options(p)


def rejection_text(message: str, data: Any) -> str:
    """``REASON: message`` for a typed rejection (the reason upper-cased, said once)."""
    reason = find_field(data, "reason", "code") if isinstance(data, dict) else data
    if isinstance(reason, str) and reason:
        tag = reason.upper() + ": "
        while message.upper().startswith(tag + tag):  # said twice by some layers
            message = message[len(tag):]
        if not message.upper().startswith(tag):
            return tag + message
    return message


def _submit(args: argparse.Namespace, *, to: bytes, amount: int, data: bytes, what: str) -> int:
    from chain.keys import format_address, load_key_file
    from chain.tx import make_transaction
    from cli.main import CliError
    from node.client import NodeUnreachableError, RpcClientError

    for name in ("amount", "fee", "gas_limit", "nonce"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise CliError(f"--{name.replace('_', '-')}: must be >= 0, got {value}")
    key_path = args.key if args.key is not None else home_of(args) / "keys" / "validator.json"
    key = load_key_file(key_path)
    sender = format_address(key.address)
    client = node_client(args)
    try:
        status = client.status()
        chain_id = find_field(status, "chain_id")
        if chain_id is None:
            raise CliError("the node's status has no chain_id")
        nonce = args.nonce
        if nonce is None:
            account = client.account(sender)
            found = find_field(account, "next_nonce", "pending_nonce", "nonce")
            nonce = int(found) if found is not None else 0
        tx = make_transaction(
            key, chain_id=int(chain_id), nonce=nonce, to=to, amount=amount,
            fee=args.fee, gas_limit=args.gas_limit, data=data,
        )  # fmt: skip
        tx_hash = "0x" + tx.hash.hex()
        if args.wait:
            result = client.broadcast_tx_commit(tx.encoded, key=key.address,
                                                wait=args.wait_timeout)  # fmt: skip
        else:
            result = client.broadcast_tx_sync(tx.encoded, key=key.address)
    except NodeUnreachableError as e:
        raise CliError(e.message, 1) from None
    except RpcClientError as e:
        if isinstance(e.data, dict) and e.data.get("reason"):  # a typed rejection
            raise CliError(f"rejected: {rejection_text(e.message, e.data)}", 1) from None
        raise CliError(f"node error {e.code}: {e.message}", 1) from None
    finally:
        client.close()
    out: dict[str, Any] = {"hash": tx_hash, "from": sender, "nonce": nonce, "kind": what}
    if isinstance(result, dict):
        out.update({k: v for k, v in result.items() if k not in out})
    else:
        out["result"] = result
    failed = _receipt_failed(out)
    emit(args, out, lambda: _print_submitted(out, args.wait))
    return 1 if failed else 0


def _receipt_failed(out: dict[str, Any]) -> bool:
    receipt = out.get("receipt")
    if not isinstance(receipt, dict):
        return False
    status = receipt.get("status")
    success = receipt.get("success")
    return success is False or status in (0, "0", "failure", "FAILURE", "failed")


def _print_submitted(out: dict[str, Any], waited: bool) -> None:
    from cli.cmd_query import print_call_result, print_return_data

    if not waited:
        print(f"accepted {out['kind']} {out['hash']} (nonce {out['nonce']}); "
              "not committed yet (use --wait to wait for it)")  # fmt: skip
        return
    height = find_field(out, "height")
    state = "FAILED" if _receipt_failed(out) else "committed"
    print(f"{state}: {out['kind']} {out['hash']} in block {height} (nonce {out['nonce']})")
    receipt = out.get("receipt")
    if isinstance(receipt, dict):
        print("receipt:")
        print_fields(receipt, indent="  ")
        print_return_data(receipt.get("return_data"), indent="  ")
        contract = receipt.get("contract_address")
        if contract:
            print(f"contract address: {contract}")
    else:
        print_call_result(out)


def _send(args: argparse.Namespace) -> int:
    from chain.keys import parse_address

    to = parse_address(check_address(args.to))
    return _submit(args, to=to, amount=args.amount, data=b"", what="transfer")


def _read_code(path: Path) -> bytes:
    from chain.vm.assembler import deploy_code
    from cli.main import CliError

    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CliError(f"{path}: {e.strerror or e}") from None
    if path.suffix == ".asm":
        return deploy_code(raw.decode("utf-8"))
    try:
        text = "".join(raw.decode("ascii").split()).removeprefix("0x")
        if path.suffix == ".hex" or (text and all(c in "0123456789abcdefABCDEF" for c in text)):
            return bytes.fromhex(text)
    except (UnicodeDecodeError, ValueError):
        if path.suffix == ".hex":
            raise CliError(f"{path}: not hex") from None
    return raw


def _deploy(args: argparse.Namespace) -> int:
    from cli.main import CliError

    code = _read_code(args.file)
    if not code:
        raise CliError(f"{args.file}: no code")
    return _submit(args, to=b"", amount=args.amount, data=code, what="deployment")


def _call(args: argparse.Namespace) -> int:
    from chain.keys import parse_address

    to = parse_address(check_address(args.address))
    return _submit(args, to=to, amount=args.amount, data=parse_call_data(args), what="call")

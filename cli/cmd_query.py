"""``phalanx query``: read a node's state through its RPC API.

* ``phalanx query status``                 chain id, height, head hash, view, peers...
* ``phalanx query account ADDR``           balance, nonce (and code hash for a contract)
* ``phalanx query block [HEIGHT]``         a block (the head without HEIGHT)
* ``phalanx query tx HASH``                a committed transaction with its receipt
* ``phalanx query call ADDR --data HEX``   a read-only contract call (``call`` RPC method):
  nothing it does is kept; or ``--call 'SEL ARG...'`` with the call-data ABI of docs/vm.md
* ``phalanx query diverge URL_A URL_B``    the first height and transaction where two nodes'
  states differ (:mod:`cli.query_diverge`; exit 1 when they do)

All take ``--node URL[,URL...]`` and ``--json``. Reads are monotonic across nodes (see
:mod:`node.client`). Errors are one line with exit code 1.

Called by: :mod:`cli.main` (discovered through ``register``).
"""

from __future__ import annotations

import argparse
from typing import Any

from cli._output import (
    add_node_options,
    emit,
    node_client,
    parse_hex,
    print_fields,
    rpc_errors,
)
from cli.query_diverge import register_diverge

__all__ = ["find_field", "parse_call_data", "register"]


def register(subparsers: Any) -> None:
    """Add ``phalanx query status|account|block|tx|call|diverge``."""
    p = subparsers.add_parser("query", help="read a node's state over RPC",
                              description="Read chain state from a running node.")
    sub = p.add_subparsers(dest="query_command", metavar="WHAT")
    sub.required = True

    s = sub.add_parser("status", help="the node's status (height, chain id, view, peers)")
    add_node_options(s)
    s.set_defaults(func=_status)

    a = sub.add_parser("account", help="an account's balance and nonce")
    a.add_argument("address", metavar="ADDR")
    add_node_options(a)
    a.set_defaults(func=_account)

    b = sub.add_parser("block", help="a block by height (default: the head)")
    b.add_argument("height", type=int, nargs="?", default=None, metavar="HEIGHT")
    add_node_options(b)
    b.set_defaults(func=_block)

    t = sub.add_parser("tx", help="a committed transaction and its receipt")
    t.add_argument("hash", metavar="HASH")
    add_node_options(t)
    t.set_defaults(func=_tx)

    c = sub.add_parser("call", help="a read-only contract call (nothing is kept)")
    c.add_argument("address", metavar="ADDR")
    add_call_data_options(c)
    c.add_argument("--from", dest="sender", default=None, metavar="ADDR",
                   help="the caller address the contract sees (default: zero)")
    add_node_options(c)
    c.set_defaults(func=_call)

    register_diverge(sub)


def add_call_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--data", default=None, metavar="HEX", help="call data as hex")
    g.add_argument("--call", default=None, metavar="'SEL ARG...'",
                   help="call data by selector and word arguments (docs/vm.md ABI)")


def parse_call_data(args: argparse.Namespace) -> bytes:
    """Call data from ``--data HEX`` or ``--call 'SEL ARG...'``."""
    from chain.vm.abi import encode_call
    from cli.main import CliError

    if args.call is not None:
        parts = args.call.split()
        if not parts:
            raise CliError("--call needs a selector")
        try:
            numbers = [int(x, 0) for x in parts]
            return encode_call(numbers[0], *numbers[1:])
        except ValueError as e:
            raise CliError(f"--call {args.call!r}: {e}") from None
    return parse_hex(str(args.data), "--data", spaces=True)


def find_field(obj: Any, *names: str, depth: int = 3) -> Any:
    """The first value under one of ``names`` in ``obj`` or its nested objects (breadth first)."""
    level = [obj]
    for _ in range(depth + 1):
        nxt: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                for name in names:
                    if name in item and not isinstance(item[name], dict | list):
                        return item[name]
                nxt.extend(v for v in item.values() if isinstance(v, dict))
        level = nxt
    return None


def check_address(text: str) -> str:
    from chain.keys import format_address, parse_address

    return format_address(parse_address(text))


def _status(args: argparse.Namespace) -> int:
    with node_client(args) as client, rpc_errors():
        result = client.status()
    emit(args, result, lambda: print_fields(result, order=("chain_id", "height", "moniker")))
    return 0


def _account(args: argparse.Namespace) -> int:
    address = check_address(args.address)
    with node_client(args) as client, rpc_errors():
        result = client.account(address)
    emit(args, result, lambda: print_fields(result, order=("address", "balance", "nonce")))
    return 0


def _block(args: argparse.Namespace) -> int:
    from cli.main import CliError

    if args.height is not None and args.height < 0:
        raise CliError(f"HEIGHT must be >= 0, got {args.height}")
    with node_client(args) as client, rpc_errors():
        result = client.block(args.height)
    emit(args, result, lambda: print_fields(result, order=("height", "hash")))
    return 0


def _tx(args: argparse.Namespace) -> int:

    tx_hash = parse_hex(args.hash, "HASH", size=32)
    with node_client(args) as client, rpc_errors():
        result = client.tx("0x" + tx_hash.hex())
    emit(args, result, lambda: print_fields(result, order=("hash", "height", "index")))
    return 0


def _call(args: argparse.Namespace) -> int:
    address = check_address(args.address)
    data = parse_call_data(args)
    extra = {} if args.sender is None else {"sender": check_address(args.sender)}
    with node_client(args) as client, rpc_errors():
        result = client.contract_call(address, data, **extra)
    emit(args, result, lambda: print_call_result(result))
    ok = find_field(result, "success", "ok")
    return 1 if ok is False else 0


def print_call_result(result: Any) -> None:
    """A call or receipt: status, gas, return words, logs, reason."""
    print_fields(result, order=("success", "status", "gas_used", "return_data", "reason"))
    print_return_data(find_field(result, "return_data", "return", "output"))


def print_return_data(data: Any, indent: str = "") -> None:
    """Return data read for people: 32-byte words as numbers, printable bytes as text."""
    if not (isinstance(data, str) and data.startswith("0x") and len(data) > 2):
        return
    try:
        raw = bytes.fromhex(data[2:])
    except ValueError:
        return
    if len(raw) % 32 == 0:
        words = [int.from_bytes(raw[i : i + 32], "big") for i in range(0, len(raw), 32)]
        print(f"{indent}return words: " + " ".join(str(w) for w in words))
    elif raw.isascii() and raw.decode("ascii").isprintable():
        print(f"{indent}return text: {raw.decode('ascii')!r}")

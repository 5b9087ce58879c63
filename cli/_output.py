"""Shared output and option helpers of the node commands (human text or ``--json``).

Every node command accepts ``--json`` (one JSON document on stdout, machine-readable, keys
sorted) and otherwise prints short ``label: value`` lines. Commands that talk to a node also
take ``--node URL[,URL...]`` (default: the ``rpc.listen`` address in ``--home``'s config, else
``$PHALANX_NODE``, else ``http://127.0.0.1:26657``), ``--strategy`` and ``--timeout``.

RPC failures become a :class:`~cli.main.CliError`: one line, non-zero exit, no traceback.

Called by ``cli.cmd_init``, ``cmd_keys``, ``cmd_tx``, ``cmd_query`` (and anyone who wants the
same look).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_NODE",
    "add_home_option",
    "add_json_option",
    "add_node_options",
    "emit",
    "home_of",
    "node_client",
    "parse_hex",
    "print_fields",
    "rpc_errors",
]

DEFAULT_NODE = "http://127.0.0.1:26657"

#: Tests replace this to give every client an ``httpx.MockTransport``.
client_transport: Any = None


def add_json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document")


def add_home_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", type=Path, default=None,
                   help="node home directory (default $PHALANX_HOME or ~/.phalanx)")


def add_node_options(p: argparse.ArgumentParser) -> None:
    """``--node``, ``--strategy``, ``--timeout``, ``--home`` and ``--json``."""
    p.add_argument("--node", default=None, metavar="URL[,URL...]",
                   help="node RPC URL(s), comma-separated (default: the home's rpc.listen, "
                   "$PHALANX_NODE, or " + DEFAULT_NODE + ")")
    p.add_argument("--strategy", default="round-robin",
                   choices=("round-robin", "least-outstanding", "sticky"),
                   help="how to spread calls over several nodes (default round-robin)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    add_home_option(p)
    add_json_option(p)


def home_of(args: argparse.Namespace) -> Path:
    from node.config import default_home

    home = getattr(args, "home", None)
    return Path(home).expanduser() if home is not None else default_home()


def _default_nodes(args: argparse.Namespace) -> str:
    from node.config import CONFIG_FILE, ConfigError, load_config

    home = home_of(args)
    if (home / CONFIG_FILE).exists():
        try:
            host_port = load_config(home).rpc.listen
        except ConfigError:
            pass
        else:
            host, _, port = host_port.rpartition(":")
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            return f"http://{host}:{port}"
    return os.environ.get("PHALANX_NODE") or DEFAULT_NODE


def node_client(args: argparse.Namespace) -> Any:
    """An :class:`~node.client.RpcClient` for the command's ``--node`` options."""
    from cli.main import CliError
    from node.client import RpcClient

    text = args.node if args.node else _default_nodes(args)
    try:
        return RpcClient(text, timeout=args.timeout, strategy=args.strategy,
                         transport=client_transport)  # fmt: skip
    except ValueError as e:
        raise CliError(f"--node: {e}") from None


@contextmanager
def rpc_errors() -> Iterator[None]:
    """Turn RPC client errors into one-line CLI errors (exit code 1)."""
    from cli.main import CliError
    from node.client import NodeUnreachableError, RpcClientError

    try:
        yield
    except NodeUnreachableError as e:
        raise CliError(e.message, 1) from None
    except RpcClientError as e:
        raise CliError(f"node error {e.code}: {e.message}", 1) from None


def emit(args: argparse.Namespace, data: Any, human: Callable[[], None] | None = None) -> None:
    """Print ``data`` as JSON with ``--json``, else call ``human`` (or print the fields)."""
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    elif human is not None:
        human()
    else:
        print_fields(data)


def print_fields(data: Any, indent: str = "", order: Sequence[str] = ()) -> None:
    """Print a JSON-like value as aligned ``key: value`` lines (nested with indentation)."""
    if not isinstance(data, dict):
        print(f"{indent}{_scalar(data)}")
        return
    keys = [k for k in order if k in data] + [k for k in data if k not in order]
    width = max((len(str(k)) for k in keys), default=0)
    for k in keys:
        v = data[k]
        if isinstance(v, dict) and v:
            print(f"{indent}{k}:")
            print_fields(v, indent + "  ")
        elif isinstance(v, list) and v and any(isinstance(x, dict | list) for x in v):
            print(f"{indent}{k}: ({len(v)})")
            for i, item in enumerate(v):
                print(f"{indent}  [{i}]")
                print_fields(item, indent + "    ")
        else:
            print(f"{indent}{str(k) + ':':<{width + 1}} {_scalar(v)}")


def _scalar(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "-"
    if isinstance(v, dict):
        return "{}"
    return str(v)


def parse_hex(text: str, what: str, *, size: int | None = None, spaces: bool = False) -> bytes:
    """Bytes from user-supplied hex (an optional ``0x``), or a one-line :class:`CliError`.

    Args:
        text: what the user typed or a file held.
        what: how the error names the input (``"--data"``, ``"HASH"``).
        size: the exact byte length required, if any.
        spaces: whether whitespace between digits is allowed (hex files wrap lines).

    Stricter than ``bytes.fromhex``, which skips spaces anywhere: the digits must be hex
    digits only, so a length check on the result means what it says.
    """
    from chain.keys import hex_digits_to_bytes
    from cli.main import CliError

    compact = "".join(text.split()) if spaces else text
    if compact[:2] in ("0x", "0X"):
        compact = compact[2:]
    raw = hex_digits_to_bytes(compact)
    if raw is None:
        raise CliError(f"{what}: not hex: {text[:80]!r}")
    if size is not None and len(raw) != size:
        raise CliError(f"{what} must be {size} bytes of hex, got {len(raw)} bytes")
    return raw

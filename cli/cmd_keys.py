"""``phalanx keys``: create and show Ed25519 key files.

* ``phalanx keys new --out FILE [--force]``: a fresh key written atomically with mode 0600;
  an existing file is kept unless ``--force``.
* ``phalanx keys show [FILE | --home H]``: address and public key (never the seed) of a key
  file, or of the home's validator key (``keys/validator.json``). This is also what
  CometBFT users know as ``show-validator``.

Called by: :mod:`cli.main` (discovered through ``register``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cli._output import add_home_option, add_json_option, emit, home_of

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``phalanx keys new|show``."""
    p = subparsers.add_parser("keys", help="create and show key files",
                              description="Create and show Ed25519 key files.")
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION")
    sub.required = True

    n = sub.add_parser("new", help="create a key file (mode 0600)",
                       description="Create a fresh Ed25519 key file, readable by you only.")
    n.add_argument("--out", type=Path, required=True, metavar="FILE", help="where to write it")
    n.add_argument("--force", action="store_true", help="overwrite an existing file")
    add_json_option(n)
    n.set_defaults(func=_new)

    s = sub.add_parser("show", help="print a key file's address and public key",
                       description="Print the address and public key of FILE, or of the "
                       "home's validator key.")
    s.add_argument("file", type=Path, nargs="?", default=None, metavar="FILE")
    add_home_option(s)
    add_json_option(s)
    s.set_defaults(func=_show)


def _describe(path: Path, key: Any) -> dict[str, Any]:
    from chain.keys import format_address

    return {
        "file": str(path),
        "address": format_address(key.address),
        "public_key": key.public_key.raw.hex(),
    }


def _new(args: argparse.Namespace) -> int:
    from chain.keys import PrivateKey, save_key_file
    from cli.main import CliError

    out: Path = args.out
    if out.exists() and not args.force:
        raise CliError(f"{out} exists; use --force to overwrite it")
    if not out.parent.is_dir():
        raise CliError(f"{out.parent}: no such directory")
    key = PrivateKey.generate()
    save_key_file(out, key)
    data = _describe(out, key)
    emit(args, data, lambda: _print_key(data, "wrote"))
    return 0


def _show(args: argparse.Namespace) -> int:
    from chain.keys import load_key_file
    from cli.main import CliError
    from node.config import KEY_FILE

    if args.file is not None and args.home is not None:
        raise CliError("give FILE or --home, not both")
    path: Path = args.file if args.file is not None else home_of(args) / KEY_FILE
    key = load_key_file(path)
    data = _describe(path, key)
    emit(args, data, lambda: _print_key(data, "key"))
    return 0


def _print_key(data: dict[str, Any], verb: str) -> None:
    print(f"{verb} {data['file']}")
    print(f"address:    {data['address']}")
    print(f"public key: {data['public_key']}")

"""``phalanx contract``: build assembly into deployable bytecode, and disassemble bytecode.

* ``phalanx contract build FILE.asm [-o OUT] [--hex] [--raw]`` writes the bytes a
  contract-creation transaction carries as data (init code; a file without ``.runtime`` gets
  the standard loader), or with ``--raw`` exactly the assembled bytes. Without ``-o`` the
  output goes next to the source (``FILE.bin``, or ``FILE.hex`` with ``--hex``). Prints the
  size and SHA-256 of what it wrote and, for init code, of the runtime code it deploys.
* ``phalanx contract disasm FILE`` prints assembly text that re-assembles to the same bytes;
  FILE may hold raw bytes or hex (``0x`` optional, whitespace ignored).

Called by: :mod:`cli.main` (discovered through ``register``).
"""

from __future__ import annotations

import argparse
import hashlib
import string
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "contract", help="build and disassemble contract bytecode",
        description="Assemble contract source into deployable bytecode, or disassemble it.")
    sub = p.add_subparsers(dest="contract_command", metavar="ACTION")
    sub.required = True

    b = sub.add_parser("build", help="assemble FILE.asm into deployable bytecode",
                       description="Assemble FILE.asm; the output is a creation tx's data.")
    b.add_argument("file", type=Path, metavar="FILE.asm")
    b.add_argument("-o", "--output", type=Path, default=None, metavar="OUT",
                   help="output path (default: FILE.bin, or FILE.hex with --hex)")
    b.add_argument("--hex", action="store_true", help="write hex text instead of raw bytes")
    b.add_argument("--raw", action="store_true",
                   help="write the assembled bytes as written, without the deploy loader")
    b.set_defaults(func=_build)

    d = sub.add_parser("disasm", help="disassemble bytecode (raw or hex) into assembly",
                       description="Print assembly that re-assembles to the same bytes.")
    d.add_argument("file", type=Path, metavar="FILE")
    d.set_defaults(func=_disasm)


def _build(args: argparse.Namespace) -> int:
    from chain.vm.assembler import LOADER_BYTES, assemble, deploy_code

    source = args.file.read_text(encoding="utf-8")
    assembly = assemble(source)
    if args.raw:
        code = assembly.code
        runtime = None
    else:
        code = deploy_code(source)
        runtime = assembly.runtime_code
    out: Path = args.output or args.file.with_suffix(".hex" if args.hex else ".bin")
    if args.hex:
        out.write_text(code.hex() + "\n", encoding="ascii")
    else:
        out.write_bytes(code)
    print(f"wrote {out}: {len(code)} bytes, sha256 {hashlib.sha256(code).hexdigest()}")
    if runtime is not None:
        how = "constructor" if assembly.runtime_offset is not None else f"{LOADER_BYTES}-byte loader"
        print(f"runtime code: {len(runtime)} bytes, code hash "
              f"{hashlib.sha256(runtime).hexdigest()} (init code: {how})")
    return 0


def _read_code(path: Path) -> bytes:
    raw = path.read_bytes()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return raw
    compact = "".join(text.split())
    if compact.lower().startswith("0x"):
        compact = compact[2:]
    if compact and len(compact) % 2 == 0 and all(c in string.hexdigits for c in compact):
        return bytes.fromhex(compact)
    return raw


def _disasm(args: argparse.Namespace) -> int:
    from chain.vm.disassembler import disassemble

    print(disassemble(_read_code(args.file)), end="")
    return 0

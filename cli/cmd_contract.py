"""``phalanx contract``: build assembly into deployable bytecode, and disassemble bytecode.

* ``phalanx contract build FILE.asm [-o OUT] [--hex] [--raw]`` writes the bytes a
  contract-creation transaction carries as data (init code; a file without ``.runtime`` gets
  the standard loader), or with ``--raw`` exactly the assembled bytes. Without ``-o`` the
  output goes next to the source (``FILE.bin``, or ``FILE.hex`` with ``--hex``). Prints the
  size and SHA-256 of what it wrote and, for init code, of the runtime code it deploys.
* ``phalanx contract disasm FILE`` prints assembly text that re-assembles to the same bytes;
  FILE may hold raw bytes or hex (``0x`` optional, whitespace ignored).
* ``phalanx contract run FILE [--call "SEL ARG..."]... [--data HEX]... [--value N] [--gas N]``
  deploys FILE (assembly, or deployable bytes/hex) on a scratch in-memory state and makes the
  given calls in order, printing for each: success, gas used, return words, logs, reason. No
  node is involved; nothing is kept.

Called by: :mod:`cli.main` (discovered through ``register``).
"""

from __future__ import annotations

import argparse
import hashlib
import string
from pathlib import Path
from typing import Any

from cli._output import parse_hex

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``phalanx contract build|disasm|run`` to the command line."""
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

    r = sub.add_parser("run", help="deploy and call a contract on a scratch state (no node)",
                       description="Deploy FILE on an in-memory state, then make the calls in "
                       "order. Call data: --call 'SELECTOR ARG...' (numbers or 0x-hex, each "
                       "argument a 32-byte word) or --data HEX.")
    r.add_argument("file", type=Path, metavar="FILE", help="FILE.asm, or deployable bytes/hex")
    r.add_argument("--call", action="append", default=[], metavar="'SEL ARG...'",
                   help="a call by selector and word arguments (repeatable)")
    r.add_argument("--data", action="append", default=[], metavar="HEX",
                   help="a call with raw call data (repeatable; after the --call ones)")
    r.add_argument("--value", type=int, default=0, help="value sent with each call (default 0)")
    r.add_argument("--gas", type=int, default=1_000_000,
                   help="gas for the deployment and for each call (default 1000000)")
    r.set_defaults(func=_run)


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


def _parse_call(text: str) -> bytes:
    from chain.vm.abi import encode_call
    from cli.main import CliError

    parts = text.split()
    if not parts:
        raise CliError("--call needs a selector")
    try:
        numbers = [int(p, 0) for p in parts]
        return encode_call(numbers[0], *numbers[1:])
    except ValueError as e:
        raise CliError(f"bad --call {text!r}: {e}") from None


def _run(args: argparse.Namespace) -> int:
    from chain.db.memory import MemoryDB
    from chain.runtime import ExecutionContext
    from chain.state import StateDB
    from chain.vm.assembler import deploy_code
    from chain.vm.runtime import Outcome, run_call, run_create

    if args.file.suffix == ".asm":
        init = deploy_code(args.file.read_text(encoding="utf-8"))
    else:
        init = _read_code(args.file)
    calls = [_parse_call(c) for c in args.call]
    for text in args.data:
        calls.append(parse_hex(text, "--data"))
    state = StateDB(MemoryDB(), bytes(32))
    sender = b"\x5e" * 20
    state.set_balance(sender, 10**30)
    ctx = ExecutionContext(chain_id=1, height=1, timestamp=0, proposer=bytes(20))

    def show(what: str, out: Outcome) -> None:
        status = "ok" if out.success else f"FAILED ({out.reason})"
        print(f"{what}: {status}, gas {out.gas_used}, {out.steps} instructions")
        data = out.return_data
        if data:
            if len(data) % 32 == 0:
                words = [f"0x{data[i:i + 32].hex().lstrip('0') or '0'}" for i in range(0, len(data), 32)]
                print(f"  return: {' '.join(words)}")
            else:
                print(f"  return: 0x{data.hex()}")
            if data.isascii() and data.decode("ascii").isprintable():
                print(f"  return text: {data.decode('ascii')!r}")
        for i, log in enumerate(out.logs):
            topics = " ".join("0x" + t.hex() for t in log.topics)
            print(f"  log {i}: topics [{topics}] data 0x{log.data.hex()}")

    deployed = run_create(state, ctx, sender=sender, nonce=0, value=0, init_code=init,
                          gas=args.gas)  # fmt: skip
    show("deploy", deployed)
    if not deployed.success:
        return 1
    address = deployed.contract_address
    print(f"  address 0x{address.hex()}, code {len(state.get_code(address))} bytes")
    failed = 0
    for data in calls:
        out = run_call(state, ctx, sender=sender, to=address, value=args.value, data=data,
                       gas=args.gas)  # fmt: skip
        show(f"call 0x{data[:1].hex()} ({len(data)} bytes of call data)", out)
        failed += not out.success
    return 1 if failed else 0

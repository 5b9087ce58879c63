"""Assembly text to bytecode.

Syntax (one instruction per line, case-insensitive mnemonics, ``;`` starts a comment)::

    .const INC 0x01          ; a named number, defined before use
    start:                   ; a label: emits JUMPDEST at this address
        PUSH 0               ; PUSH picks the smallest width (PUSH1..PUSH32)
        PUSH2 0x0001         ; an explicit width is kept (values must fit)
        PUSH @start          ; a label's address, always as PUSH2
        JUMP
    .byte 0xfe 0x00          ; raw bytes, as written
    .runtime                 ; what follows is the deployed code (see below)

Deployment model: a contract-creation transaction's data is *init code*; it runs once and
its RETURN data becomes the contract's code. A file with a ``.runtime`` line carries its
own init code before that line (a constructor) and the runtime code after it; labels after
``.runtime`` count from the start of the runtime code, and ``@runtime.offset`` and
``@runtime.size`` give the runtime's place in the whole output so the constructor can
CODECOPY and RETURN it. :func:`deploy_code` wraps a file without ``.runtime`` in a standard
12-byte loader, so every source file builds to deployable transaction data.

Errors are :class:`AssemblyError` with the 1-based line number. Used by the CLI
(``phalanx contract build``), the examples and the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from chain.vm.errors import AssemblyError
from chain.vm.opcodes import BY_NAME, Op, push_op

__all__ = ["LOADER_BYTES", "Assembly", "assemble", "deploy_code", "loader_for"]

_LABEL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PUSH_N_RE = re.compile(r"^PUSH([1-9]|[12][0-9]|3[0-2])$")
_LABEL_WIDTH = 2
_SPECIAL_LABELS = ("runtime.offset", "runtime.size")
#: Size of the standard loader :func:`loader_for` puts in front of runtime code.
LOADER_BYTES = 12
CODE_BYTES_MAX = 0xFFFF  # labels are PUSH2


@dataclass(frozen=True, slots=True)
class Assembly:
    """Assembled output.

    Attributes:
        code: every byte, in order (init code then runtime code if ``.runtime`` was used).
        labels: label name -> address (runtime labels count from the runtime's start).
        runtime_offset: where the runtime code starts in ``code``, or None without ``.runtime``.
    """

    code: bytes
    labels: dict[str, int] = field(default_factory=dict)
    runtime_offset: int | None = None

    @property
    def runtime_code(self) -> bytes:
        """The code a deployment stores: after ``.runtime`` if present, else all of it."""
        return self.code if self.runtime_offset is None else self.code[self.runtime_offset :]


@dataclass(slots=True)
class _Item:
    line: int
    offset: int
    section: int  # 0 = before .runtime, 1 = after
    raw: bytes = b""  # fixed bytes
    push_width: int = 0  # for a PUSH whose operand is resolved in pass 2
    operand: str = ""


def _parse_number(text: str, line: int) -> int:
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        raise AssemblyError(f"bad number {text!r}", line) from None
    if value < 0:
        raise AssemblyError(f"negative number {text!r}", line)
    if value >= 1 << 256:
        raise AssemblyError(f"number {text!r} does not fit in 256 bits", line)
    return value


def _width_of(value: int) -> int:
    return max(1, (value.bit_length() + 7) // 8)


def assemble(source: str) -> Assembly:
    """Assemble ``source`` text.

    Returns:
        The :class:`Assembly` with the bytes and the label table.

    Raises:
        AssemblyError: on any bad line, unknown or duplicate label, or oversize value.
    """
    items: list[_Item] = []
    labels: dict[str, tuple[int, int, int]] = {}  # name -> (address, section, line)
    consts: dict[str, int] = {}
    offset = 0
    section = 0
    runtime_offset: int | None = None

    for lineno, full_line in enumerate(source.splitlines(), start=1):
        text = full_line.split(";", 1)[0].strip()
        while text and ":" in text.split()[0]:
            head, _, text = text.partition(":")
            name = head.strip()
            text = text.strip()
            if not _LABEL_RE.match(name):
                raise AssemblyError(f"bad label name {name!r}", lineno)
            if name in labels or name in consts:
                raise AssemblyError(f"duplicate name {name!r}", lineno)
            base = runtime_offset or 0
            labels[name] = (offset - base, section, lineno)
            items.append(_Item(lineno, offset, section, raw=bytes([Op.JUMPDEST])))
            offset += 1
        if not text:
            continue
        words = text.split()
        mnemonic = words[0].upper()
        args = words[1:]
        if mnemonic == ".RUNTIME":
            if args:
                raise AssemblyError(".runtime takes no operand", lineno)
            if runtime_offset is not None:
                raise AssemblyError("only one .runtime section is allowed", lineno)
            runtime_offset = offset
            section = 1
        elif mnemonic == ".CONST":
            if len(args) != 2 or not _LABEL_RE.match(args[0]):
                raise AssemblyError("expected .const NAME VALUE", lineno)
            if args[0] in consts or args[0] in labels:
                raise AssemblyError(f"duplicate name {args[0]!r}", lineno)
            consts[args[0]] = _parse_number(args[1], lineno)
        elif mnemonic == ".BYTE":
            if not args:
                raise AssemblyError(".byte needs at least one value", lineno)
            raw = bytearray()
            for arg in args:
                value = _parse_number(arg, lineno)
                if value > 0xFF:
                    raise AssemblyError(f".byte value {arg} exceeds 0xff", lineno)
                raw.append(value)
            items.append(_Item(lineno, offset, section, raw=bytes(raw)))
            offset += len(raw)
        elif mnemonic == "PUSH" or _PUSH_N_RE.match(mnemonic):
            if len(args) != 1:
                raise AssemblyError(f"{mnemonic} takes exactly one operand", lineno)
            operand = args[0]
            if mnemonic == "PUSH":
                if operand.startswith("@"):
                    width = _LABEL_WIDTH
                elif operand in consts:
                    width = _width_of(consts[operand])
                elif _LABEL_RE.match(operand):
                    raise AssemblyError(
                        f"unknown constant {operand!r} (define it above; labels need @)", lineno
                    )
                else:
                    width = _width_of(_parse_number(operand, lineno))
            else:
                width = int(mnemonic[4:])
            items.append(_Item(lineno, offset, section, push_width=width, operand=operand))
            offset += 1 + width
        elif mnemonic in BY_NAME:
            if args:
                raise AssemblyError(f"{mnemonic} takes no operand", lineno)
            items.append(_Item(lineno, offset, section, raw=bytes([BY_NAME[mnemonic].code])))
            offset += 1
        else:
            raise AssemblyError(f"unknown instruction {words[0]!r}", lineno)

    if offset > CODE_BYTES_MAX:
        raise AssemblyError(f"code of {offset} bytes exceeds {CODE_BYTES_MAX}")
    total = offset

    def resolve(item: _Item) -> int:
        operand = item.operand
        if operand.startswith("@"):
            name = operand[1:]
            if name in _SPECIAL_LABELS:
                if runtime_offset is None:
                    raise AssemblyError(f"{operand} needs a .runtime section", item.line)
                return runtime_offset if name == "runtime.offset" else total - runtime_offset
            if name not in labels:
                raise AssemblyError(f"unknown label {name!r}", item.line)
            address, label_section, _ = labels[name]
            if label_section != item.section:
                raise AssemblyError(
                    f"label {name!r} is in the other section (before/after .runtime)", item.line
                )
            return address
        if operand in consts:
            return consts[operand]
        if _LABEL_RE.match(operand):
            raise AssemblyError(f"unknown constant {operand!r} (labels need @)", item.line)
        return _parse_number(operand, item.line)

    out = bytearray()
    for item in items:
        assert len(out) == item.offset
        if item.push_width:
            value = resolve(item)
            if _width_of(value) > item.push_width:
                raise AssemblyError(
                    f"value {value:#x} does not fit in PUSH{item.push_width}", item.line
                )
            out.append(push_op(item.push_width))
            out += value.to_bytes(item.push_width, "big")
        else:
            out += item.raw
    return Assembly(
        code=bytes(out),
        labels={name: address for name, (address, _, _) in labels.items()},
        runtime_offset=runtime_offset,
    )


def loader_for(runtime_code: bytes) -> bytes:
    """The standard 12-byte init code that returns the ``runtime_code`` appended to it."""
    size = len(runtime_code)
    if size > CODE_BYTES_MAX:
        raise AssemblyError(f"runtime code of {size} bytes exceeds {CODE_BYTES_MAX}")
    loader = bytes(
        [
            Op.PUSH1 + 1, *size.to_bytes(2, "big"),  # size
            Op.DUP1,                                  # size size
            Op.PUSH1, LOADER_BYTES,                   # size size offset
            Op.PUSH1, 0,                              # size size offset dest
            Op.CODECOPY,                              # size
            Op.PUSH1, 0,                              # size 0
            Op.RETURN,
        ]
    )  # fmt: skip
    assert len(loader) == LOADER_BYTES
    return loader


def deploy_code(source: str) -> bytes:
    """Transaction data that deploys ``source``: as written with ``.runtime``, else loader+code.

    Raises:
        AssemblyError: the source does not assemble.
    """
    assembly = assemble(source)
    if assembly.runtime_offset is not None:
        return assembly.code
    return loader_for(assembly.code) + assembly.code

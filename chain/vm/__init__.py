"""The Phalanx contract VM: deterministic 256-bit contracts metered by gas.

Pure and bounded: integer arithmetic only, no clock, randomness or I/O, and every run is
limited in steps, stack depth, memory, call depth, code size and return data. See
``docs/vm.md`` for the instruction set, gas schedule, deployment model and call-data ABI.

Modules: :mod:`~chain.vm.opcodes` (instruction table), :mod:`~chain.vm.gas` (gas schedule),
:mod:`~chain.vm.interpreter` (the machine), :mod:`~chain.vm.runtime` (the executor hook),
:mod:`~chain.vm.assembler` / :mod:`~chain.vm.disassembler` (text <-> bytecode),
:mod:`~chain.vm.abi` (call-data convention), :mod:`~chain.vm.errors` (VMError hierarchy).
"""

from chain.vm.abi import decode_words, encode_call
from chain.vm.assembler import Assembly, assemble, deploy_code
from chain.vm.disassembler import disassemble
from chain.vm.errors import AssemblyError, VMError, VMFault
from chain.vm.host import Message, VMConfig, VMState
from chain.vm.interpreter import CodeCache, FrameResult, Machine
from chain.vm.runtime import Outcome, VMRuntime, contract_address, run_call, run_create

__all__ = [
    "Assembly",
    "AssemblyError",
    "CodeCache",
    "FrameResult",
    "Machine",
    "Message",
    "Outcome",
    "VMConfig",
    "VMError",
    "VMFault",
    "VMRuntime",
    "VMState",
    "assemble",
    "contract_address",
    "decode_words",
    "deploy_code",
    "disassemble",
    "encode_call",
    "run_call",
    "run_create",
]

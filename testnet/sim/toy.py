"""A deliberately small engine that honours the engine contract, for testing the simulator.

Theory of operation
-------------------
Node 0 is a fixed sequencer. ``Propose(value)`` at a follower becomes a ``ToyRequest`` to the
sequencer; the sequencer numbers each new value, persists ``("order", seq, value)`` before
sending, and broadcasts a signed ``ToyOrder(seq, value)``. Followers deliver orders in
sequence; every ``sync_ticks`` they send ``ToySync(next_seq)`` and the sequencer answers with
up to ``window`` orders from there, so lost messages are repaired. A delivery's certificate
is the sequencer's one signature (a quorum of one).

It tolerates crashes (the sequencer restores its numbering from its records) and message
loss, but not a lying sequencer: twins of node 0 assign different values to one seq, which
is exactly what the simulator's negative controls need. Not for production use.

Called by: the simulator (engine name ``"toy"``) and the simulator's own tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rlp

from consensus.contract import (
    ALL,
    Applied,
    Certificate,
    ConsensusBug,
    Delivery,
    Input,
    InvalidMessage,
    NodeId,
    Output,
    Propose,
    Receive,
    Signer,
    Tick,
    Verifier,
)

__all__ = [
    "ToyConfig",
    "ToyEngine",
    "ToyOrder",
    "ToyRequest",
    "ToySync",
    "decode_message",
    "verify_delivery",
]

SEQUENCER = NodeId(0)
_TAG_REQUEST = b"\x01"
_TAG_ORDER = b"\x02"
_TAG_SYNC = b"\x03"
_VALUE_BYTES_MAX = 4096


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def _order_signed_bytes(seq: int, value: bytes) -> bytes:
    return b"toy-order" + bytes(rlp.encode([seq, _digest(value)]))


@dataclass(frozen=True, slots=True)
class ToyRequest:
    value: bytes

    def encode(self) -> bytes:
        return _TAG_REQUEST + bytes(rlp.encode([self.value]))


@dataclass(frozen=True, slots=True)
class ToyOrder:
    seq: int
    value: bytes
    signature: bytes

    def encode(self) -> bytes:
        return _TAG_ORDER + bytes(rlp.encode([self.seq, self.value, self.signature]))


@dataclass(frozen=True, slots=True)
class ToySync:
    next_seq: int

    def encode(self) -> bytes:
        return _TAG_SYNC + bytes(rlp.encode([self.next_seq]))


def _uint(raw: Any) -> int:
    if not isinstance(raw, bytes) or (raw[:1] == b"\x00"):
        raise InvalidMessage("bad integer")
    return int.from_bytes(raw, "big")


def _blob(raw: Any, limit: int = _VALUE_BYTES_MAX) -> bytes:
    if not isinstance(raw, bytes) or len(raw) > limit:
        raise InvalidMessage("bad byte string")
    return raw


def decode_message(data: bytes) -> ToyRequest | ToyOrder | ToySync:
    """Decode one toy message strictly; raise :class:`InvalidMessage` for anything else."""
    if len(data) < 2 or len(data) > 2 * _VALUE_BYTES_MAX:
        raise InvalidMessage("toy message of impossible length")
    try:
        body = rlp.decode(data[1:], strict=True)
    except rlp.DecodingError as e:
        raise InvalidMessage(f"toy message: {e}") from e
    if not isinstance(body, list):
        raise InvalidMessage("toy message is not a list")
    tag = data[:1]
    if tag == _TAG_REQUEST and len(body) == 1:
        return ToyRequest(_blob(body[0]))
    if tag == _TAG_ORDER and len(body) == 3:
        return ToyOrder(_uint(body[0]), _blob(body[1]), _blob(body[2], 256))
    if tag == _TAG_SYNC and len(body) == 1:
        return ToySync(_uint(body[0]))
    raise InvalidMessage("unknown toy message")


def verify_delivery(delivery: Delivery, verifier: Verifier) -> bool:
    """True if the delivery carries the sequencer's signature over (seq, digest(value))."""
    cert = delivery.certificate
    if cert.seq != delivery.seq or cert.digest != _digest(delivery.value):
        return False
    if cert.signers() != (SEQUENCER,):
        return False
    return verifier.verify(SEQUENCER, _order_signed_bytes(cert.seq, delivery.value),
                           cert.signatures[0][1])


@dataclass(frozen=True, slots=True)
class ToyConfig:
    n: int
    sync_ticks: int = 4
    window: int = 16
    pending_max: int = 256
    log_max: int = 100_000


class ToyEngine:
    """The toy sequencer engine (see the module docstring)."""

    def __init__(self, config: ToyConfig, node_id: NodeId, signer: Signer,
                 verifier: Verifier) -> None:
        self.config = config
        self.node_id = node_id
        self._signer = signer
        self._verifier = verifier
        self._orders: dict[int, bytes] = {}   # sequencer: seq -> value (its whole log)
        self._numbered: dict[bytes, int] = {}
        self._signatures: dict[int, bytes] = {}
        self._pending: dict[int, ToyOrder] = {}  # follower: orders above next_deliver
        self._next_deliver = 1
        self._dropped = 0
        self._restored = False
        self._stepped = False

    # -- contract -----------------------------------------------------------------------------
    def restore(self, records: Sequence[Any]) -> None:
        if self._stepped:
            raise ConsensusBug("restore after step")
        for record in records:
            kind, seq, value = record
            if kind != "order":
                raise ConsensusBug(f"unknown toy record {kind!r}")
            self._orders[seq] = value
            self._numbered[value] = seq
        self._restored = True

    def statistics(self) -> dict[str, int]:
        return {"next_deliver": self._next_deliver, "ordered": len(self._orders),
                "dropped": self._dropped}

    def step(self, event: Input) -> Output:
        self._stepped = True
        out = Output()
        if isinstance(event, Propose):
            self._on_value(event.value, out)
        elif isinstance(event, Receive):
            self._on_receive(event.sender, event.message, out)
        elif isinstance(event, Tick):
            if event.now % self.config.sync_ticks == 0 and self.node_id != SEQUENCER:
                out.send.append((SEQUENCER, ToySync(self._next_deliver)))
        elif isinstance(event, Applied):
            pass
        self._deliver_ready(out)
        if len(self._pending) > self.config.pending_max:
            raise ConsensusBug("toy pending log over its bound")
        return out

    # -- handlers -----------------------------------------------------------------------------
    def _on_receive(self, sender: NodeId, msg: Any, out: Output) -> None:
        if isinstance(msg, ToyRequest):
            if self.node_id == SEQUENCER:
                self._on_value(msg.value, out)
        elif isinstance(msg, ToyOrder):
            if sender != SEQUENCER or not self._verifier.verify(
                    SEQUENCER, _order_signed_bytes(msg.seq, msg.value), msg.signature):
                self._dropped += 1
                return
            if self._next_deliver <= msg.seq < self._next_deliver + self.config.window:
                self._pending.setdefault(msg.seq, msg)
        elif isinstance(msg, ToySync):
            if self.node_id == SEQUENCER:
                for seq in range(msg.next_seq, msg.next_seq + self.config.window):
                    if seq not in self._orders:
                        break
                    out.send.append((sender, self._order(seq)))
        else:
            self._dropped += 1

    def _on_value(self, value: bytes, out: Output) -> None:
        if self.node_id != SEQUENCER:
            out.send.append((SEQUENCER, ToyRequest(value)))
            return
        if value in self._numbered:
            return
        if len(self._orders) >= self.config.log_max:
            self._dropped += 1
            return
        seq = len(self._orders) + 1
        self._orders[seq] = value
        self._numbered[value] = seq
        out.persist.append(("order", seq, value))
        order = self._order(seq)
        out.send.append((ALL, order))
        self._pending[seq] = order

    def _order(self, seq: int) -> ToyOrder:
        sig = self._signatures.get(seq)
        value = self._orders[seq]
        if sig is None:
            sig = self._signer.sign(_order_signed_bytes(seq, value))
            self._signatures[seq] = sig
        return ToyOrder(seq, value, sig)

    def _deliver_ready(self, out: Output) -> None:
        if self.node_id == SEQUENCER:
            while self._next_deliver in self._orders:
                order = self._order(self._next_deliver)
                self._pending.pop(order.seq, None)
                out.deliver.append(self._delivery(order))
                self._next_deliver += 1
            return
        while self._next_deliver in self._pending:
            order = self._pending.pop(self._next_deliver)
            out.deliver.append(self._delivery(order))
            self._next_deliver += 1

    def _delivery(self, order: ToyOrder) -> Delivery:
        cert = Certificate(order.seq, 0, _digest(order.value), ((SEQUENCER, order.signature),))
        return Delivery(order.seq, order.value, cert)
